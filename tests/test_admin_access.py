"""Everything of the operator's side is for ADMIN_IDS only: anyone else who sends an admin
command or forges an admin button gets exactly what a made-up command or a stale button gets
(the menu) — nothing tells them the command exists — and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.filters.callback_data import CallbackData
from sqlalchemy import select

from db.models import Broadcast, BroadcastRecipient, Order, SupportTicket
from handlers.callbacks import AdminOrderCallback, BroadcastCallback, TicketCallback
from services.admin.tickets import Asker
from tests.admin_chat import ADMIN, buy
from tests.fakes.telegram import ApiCall
from tests.helpers import BotEnv, answers, make_user

MALLORY = make_user(6666, username="mallory", first_name="Mallory")
ALICE = make_user(1001, username="alice_t", first_name="Alice")
COMMANDS = ("/admin", "/order", "/order 1001", "/order @alice_t", "/tickets", "/broadcast")


def forged_buttons(public_id: str, ticket: int, broadcast: int) -> list[CallbackData]:
    """Every admin button there is, naming real objects."""
    orders: list[CallbackData] = [AdminOrderCallback(step="show", order=public_id)]
    for step in ("ask", "do"):
        for action in ("retry", "refund", "resend", "resolve"):
            orders.append(AdminOrderCallback(step=step, order=public_id, action=action))
    return [
        *orders,
        TicketCallback(ticket=ticket),
        TicketCallback(ticket=ticket, where="list"),
        *(
            BroadcastCallback(action="audience", id=broadcast, audience=code)
            for code in ("all", "buyers", "en", "ru")
        ),
        BroadcastCallback(action="send", id=broadcast),
        BroadcastCallback(action="cancel", id=broadcast),
        BroadcastCallback(action="cancel", id=0),
    ]


def seen(calls: list[ApiCall]) -> list[tuple[str, Any, Any]]:
    """What the sender saw: each call's method, text and buttons."""
    return [
        (
            c.method,
            c.params.get("text") or c.params.get("caption"),
            c.params.get("reply_markup"),
        )
        for c in calls
    ]


@pytest.fixture
async def shop(bot_env: BotEnv) -> tuple[str, int, int]:
    """A delivered order, an open ticket and a broadcast draft for the forged buttons to name."""
    public_id = await buy(bot_env, ALICE, "charge-alice")
    admin = bot_env.deps.admin
    opened = await admin.tickets.open(Asker(1001, 1001, "Alice", "alice_t", "en"), "Hi", None)
    assert opened.ticket_id is not None
    draft = await admin.broadcasts.draft(ADMIN.id, ADMIN.id, "News", None, "all")
    return public_id, opened.ticket_id, draft.broadcast_id


async def test_admin_commands_are_unknown_commands_to_anyone_else(
    bot_env: BotEnv, shop: tuple[str, int, int]
) -> None:
    unknown = seen(await bot_env.send(MALLORY, "/nosuchcommand"))
    assert unknown[0][1] == "I don't know that command. Here is the menu:"
    for command in COMMANDS:
        assert seen(await bot_env.send(MALLORY, command)) == unknown, command
    # Nor does typing a message afterwards reach a broadcast form.
    await bot_env.send(MALLORY, "Free eSIMs for everyone!")
    async with bot_env.deps.session_factory() as session:
        assert (await session.scalars(select(Broadcast.text))).all() == ["News"]
    # The admin gets the real screens for the very same commands.
    for command, shows in zip(
        COMMANDS,
        ("Dashboard", "Usage", "Order", "Order", "Open tickets: 1", "Send the message"),
        strict=True,
    ):
        calls = await bot_env.send(ADMIN, command)
        assert shows in str(calls[0].params.get("text")), command
    assert not bot_env.error_logs


async def test_forged_admin_buttons_are_stale_buttons_to_anyone_else(
    bot_env: BotEnv, shop: tuple[str, int, int]
) -> None:
    public_id, ticket, broadcast = shop
    await bot_env.send(MALLORY, "/start")
    stale = answers(await bot_env.press(MALLORY, "xx:forged"))[0].params
    assert stale["text"] == "This button is out of date. Here is the menu."
    menu = bot_env.screen(MALLORY).text
    refunds = len(bot_env.fake_telegram.calls_to("refundStarPayment"))
    for data in forged_buttons(public_id, ticket, broadcast):
        (answer,) = answers(await bot_env.press(MALLORY, data))
        assert answer.params == {**stale, "callback_query_id": answer.params["callback_query_id"]}
        assert bot_env.screen(MALLORY).text == menu, data
    # Nothing happened: no refund, the order, the ticket and the draft are as they were.
    assert len(bot_env.fake_telegram.calls_to("refundStarPayment")) == refunds
    async with bot_env.deps.session_factory() as session:
        order = await session.scalar(select(Order).where(Order.public_id == public_id))
        assert order is not None and order.status == "delivered"
        opened = await session.get(SupportTicket, ticket)
        assert opened is not None and opened.status == "open"
        draft = await session.get(Broadcast, broadcast)
        assert draft is not None and (draft.status, draft.audience) == ("draft", "all")
        assert (await session.scalars(select(BroadcastRecipient))).all() == []
    assert not bot_env.error_logs
