"""The operator's side in the chat: /admin, /order, /tickets and answers to tickets,
/broadcast. One router for ADMIN_IDS only (handlers.admin.access)."""

from __future__ import annotations

from aiogram import Router

from handlers.admin import broadcast, dashboard, orders, tickets
from handlers.admin.access import is_admin


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="admin")
    router.message.filter(is_admin)
    router.callback_query.filter(is_admin)
    # The broadcast form first: while it waits for the message, that message is the broadcast.
    router.include_routers(
        broadcast.create_router(),
        dashboard.create_router(),
        orders.create_router(),
        tickets.create_router(),
    )
    return router
