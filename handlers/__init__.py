"""aiogram routers, one per feature; `feature_routers()` gives them in dispatch order."""

from __future__ import annotations

from aiogram import Router

from handlers import (
    admin,
    browse,
    common,
    doctor,
    fallback,
    gifts,
    inline,
    myesims,
    phone_check,
    purchase,
    reminders,
    sandbox,
    start_links,
    support,
    support_replies,
    topup,
)


def feature_routers(*, sandbox_mode: bool = False) -> list[Router]:
    """Fresh routers in the order updates try them: specific first, the fallback last. The
    sandbox's router only in sandbox mode."""
    sandboxed = [sandbox.create_router()] if sandbox_mode else []
    return [
        support.create_router(),  # first: a command typed instead of a question clears it
        *sandboxed,
        admin.create_router(),  # ADMIN_IDS only; anyone else skips it at its router filter
        support_replies.create_router(),  # a user's reply to the support team's answer
        start_links.create_router(),  # before common: /start with a link's parameter
        common.create_router(),
        # The next four answer disjoint commands, callback data and messages; the busiest
        # (/myesims, typed searches) come first so that they cross fewer routers.
        myesims.create_router(),
        browse.create_router(),
        purchase.create_router(),
        topup.create_router(),  # owns the Top up buttons of /myesims and notifications
        doctor.create_router(),  # "It doesn't work" and "Refund" on an eSIM of /myesims
        phone_check.create_router(),
        gifts.create_router(),
        reminders.create_router(),
        inline.create_router(),
        fallback.create_router(),  # always last
    ]
