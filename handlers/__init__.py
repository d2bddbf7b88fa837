"""aiogram routers, one per feature; `feature_routers()` gives them in dispatch order."""

from __future__ import annotations

from aiogram import Router

from handlers import browse, common, fallback, myesims, purchase, sandbox, support, topup


def feature_routers(*, sandbox_mode: bool = False) -> list[Router]:
    """Fresh routers in the order updates try them: specific first, the fallback last. The
    sandbox's router only in sandbox mode."""
    sandboxed = [sandbox.create_router()] if sandbox_mode else []
    return [
        support.create_router(),  # first: a command typed instead of a question clears it
        *sandboxed,
        common.create_router(),
        # The next four answer disjoint commands, callback data and messages; the busiest
        # (/myesims, typed searches) come first so that they cross fewer routers.
        myesims.create_router(),
        browse.create_router(),
        purchase.create_router(),
        topup.create_router(),  # owns the Top up buttons of /myesims and notifications
        fallback.create_router(),  # always last
    ]
