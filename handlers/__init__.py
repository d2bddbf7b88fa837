"""aiogram routers, one per feature; `feature_routers()` gives them in dispatch order."""

from __future__ import annotations

from aiogram import Router


def feature_routers() -> list[Router]:
    """Fresh routers in the order updates try them: specific first, the fallback last."""
    from handlers import browse, common, fallback, myesims, purchase, support, topup

    return [
        support.create_router(),  # first: a command typed instead of a question clears it
        common.create_router(),
        # Commands and buttons of its own only: early, so /myesims skips the routers below.
        myesims.create_router(),
        purchase.create_router(),  # before browse: its Buy handler wins
        topup.create_router(),  # owns the Top up buttons of /myesims and notifications
        browse.create_router(),
        fallback.create_router(),  # always last
    ]
