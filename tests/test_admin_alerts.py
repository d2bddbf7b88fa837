"""Alerts reach the operators: markup in a supplier's error cannot break them, a refused one is
sent again until it arrives, a refund owed by hand is recalled daily, and a user's support
question goes to the admins but never into the logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bot.messenger import AiogramMessenger
from db.base import utcnow
from db.engine import create_engine, create_session_factory
from db.models import Order, OrderStatus
from services.admin_alerts import AdminAlerts, alert_html
from services.refund_reminders import RefundDueReminder
from tests.helpers import ADMIN_ID, BotEnv, make_user
from tests.test_fiat import PROVIDER_TOKEN, pay_by_card
from tests.test_purchase import get_invoice, load_order, open_confirmation
from tests.test_purchase import worker as make_worker

SECOND_ADMIN = 900_000_002
# The bot takes card payments in euros (refunds of those are made by hand).
CARD_PAYMENTS = pytest.mark.parametrize(
    "bot_env_settings",
    [{"payment_currency": "EUR", "payment_provider_token": PROVIDER_TOKEN}],
    ids=["cards"],
)


class Clock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> datetime:
        return self.now


def to_admin(env: BotEnv, admin_id: int = ADMIN_ID) -> list[str]:
    """Plain texts of the messages an admin received."""
    return [
        str(call.params.get("text", ""))
        for call in env.fake_telegram.calls_to("sendMessage")
        if call.ok and call.params.get("chat_id") == admin_id
    ]


def delivered_text(env: BotEnv, admin_id: int = ADMIN_ID) -> list[str]:
    """What the admin's chat shows (markup parsed, as Telegram renders it)."""
    return [
        m.text or "" for m in env.fake_telegram.chat(admin_id) if m.from_bot and m.text is not None
    ]


def alerts_for(env: BotEnv, clock: Clock, admins: frozenset[int] = frozenset({ADMIN_ID})) -> Any:
    return AdminAlerts(env.deps.session_factory, admins, clock=clock)


@pytest.fixture
def messenger(bot_env: BotEnv) -> AiogramMessenger:
    return AiogramMessenger(bot_env.bot)


async def test_an_alert_quoting_markup_arrives_as_text(
    bot_env: BotEnv, messenger: AiogramMessenger
) -> None:
    said = "eSIM Go said: <html><body>502 Bad Gateway</body></html> & retry"
    await bot_env.deps.alerts.alert(messenger, said)

    assert delivered_text(bot_env) == [said]


async def test_values_in_an_alert_template_are_escaped_and_its_markup_kept(
    bot_env: BotEnv, messenger: AiogramMessenger
) -> None:
    await bot_env.deps.alerts.alert(
        messenger,
        alert_html("🚨 <b>Order {order}</b>: {reason}", order="A<1>", reason="x & <y>"),
    )

    [raw] = to_admin(bot_env)
    assert raw.startswith("🚨 <b>Order A&lt;1&gt;</b>: x &amp; &lt;y&gt;")
    assert delivered_text(bot_env) == ["🚨 Order A<1>: x & <y>"]


async def _refund_due_order(env: BotEnv, error: str) -> Order:
    """A card payment whose order eSIM Go refuses for good: an admin must refund it by hand."""
    bob = make_user(2002)
    await open_confirmation(env, bob)
    invoice = await get_invoice(env, bob)
    env.fake_esimgo.fail_next("POST /orders", status=400, body={"message": error}, times=5)
    await pay_by_card(env, bob, invoice, charge_id="card-charge-9")
    await make_worker(env).run_once()
    order = await load_order(env, str(invoice.params["payload"]))
    assert order.status == OrderStatus.REFUND_DUE
    return order


@CARD_PAYMENTS
async def test_the_refund_by_hand_alert_arrives_though_the_supplier_error_has_markup(
    bot_env: BotEnv,
) -> None:
    order = await _refund_due_order(bot_env, "Bundle <esim_1GB_7D_GB_V2> retired & gone")

    [alert] = [t for t in delivered_text(bot_env) if "Refund due" in t]
    assert order.public_id in alert and "stripe-card-charge-9" in alert
    assert "Bundle <esim_1GB_7D_GB_V2> retired & gone" in alert


async def test_a_refused_alert_is_sent_again_until_it_arrives(
    bot_env: BotEnv, messenger: AiogramMessenger
) -> None:
    clock = Clock()
    alerts = alerts_for(bot_env, clock)
    bot_env.fake_telegram.fail_next("sendMessage", 500, "Internal Server Error", times=2)

    await alerts.alert(messenger, "⚠️ eSIM Go balance too low")
    assert to_admin(bot_env) == []
    clock.now += timedelta(minutes=1)
    assert await alerts.deliver_due(messenger) == 0  # refused once more
    clock.now += timedelta(hours=1)
    assert await alerts.deliver_due(messenger) == 1
    clock.now += timedelta(hours=1)
    assert await alerts.deliver_due(messenger) == 0

    assert to_admin(bot_env) == ["⚠️ eSIM Go balance too low"]


async def test_a_flood_wait_is_honoured_before_the_alert_is_sent_again(
    bot_env: BotEnv, messenger: AiogramMessenger
) -> None:
    clock = Clock()
    alerts = alerts_for(bot_env, clock)
    bot_env.fake_telegram.fail_next("sendMessage", retry_after=30)

    await alerts.alert(messenger, "↩️ Order refunded")
    attempts = len(bot_env.fake_telegram.calls_to("sendMessage"))
    clock.now += timedelta(seconds=20)
    await alerts.deliver_due(messenger)
    assert len(bot_env.fake_telegram.calls_to("sendMessage")) == attempts, "sent within 30 s"
    clock.now += timedelta(seconds=11)
    assert await alerts.deliver_due(messenger) == 1

    assert to_admin(bot_env) == ["↩️ Order refunded"]


async def test_a_dedup_key_is_spent_only_when_its_alert_was_delivered(
    bot_env: BotEnv, messenger: AiogramMessenger
) -> None:
    clock = Clock()
    alerts = alerts_for(bot_env, clock)
    bot_env.fake_telegram.fail_next("sendMessage", 500, "Internal Server Error")

    await alerts.alert_once(messenger, "low-balance:today", "⚠️ balance low")
    await alerts.alert_once(messenger, "low-balance:today", "⚠️ balance low")
    assert to_admin(bot_env) == []
    clock.now += timedelta(minutes=5)
    await alerts.deliver_due(messenger)
    assert not await alerts.alert_once(messenger, "low-balance:today", "⚠️ balance low")
    clock.now += timedelta(hours=5)
    await alerts.deliver_due(messenger)

    assert to_admin(bot_env) == ["⚠️ balance low"]


async def test_each_admin_gets_the_alert_though_one_of_them_is_unreachable(
    bot_env: BotEnv, messenger: AiogramMessenger
) -> None:
    clock = Clock()
    alerts = alerts_for(bot_env, clock, frozenset({ADMIN_ID, SECOND_ADMIN}))
    bot_env.fake_telegram.fail_next("sendMessage", 400, "Bad Request: chat not found")

    assert await alerts.alert_once(messenger, "k", "🚨 stray payment")
    clock.now += timedelta(hours=2)
    await alerts.deliver_due(messenger)

    assert to_admin(bot_env, ADMIN_ID) == ["🚨 stray payment"]
    assert to_admin(bot_env, SECOND_ADMIN) == ["🚨 stray payment"]


@pytest.fixture
async def background_sender(
    bot_env: BotEnv, messenger: AiogramMessenger
) -> AsyncIterator[AdminAlerts]:
    alerts = bot_env.deps.alerts
    task = asyncio.create_task(alerts.run(messenger))
    try:
        yield alerts
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_background_sender_delivers_a_refused_alert(
    bot_env: BotEnv, messenger: AiogramMessenger, background_sender: AdminAlerts
) -> None:
    bot_env.fake_telegram.fail_next("sendMessage", retry_after=1)
    await background_sender.alert(messenger, "⛔ insufficient balance")

    async with asyncio.timeout(10):
        while not to_admin(bot_env):  # noqa: ASYNC110 - the fake has no "message arrived" event
            await asyncio.sleep(0.05)
    assert to_admin(bot_env) == ["⛔ insufficient balance"]


@CARD_PAYMENTS
async def test_a_refund_owed_by_hand_is_recalled_daily_until_resolved(
    bot_env: BotEnv, messenger: AiogramMessenger
) -> None:
    order = await _refund_due_order(bot_env, "Bundle not found")
    announced = len(to_admin(bot_env))
    clock = Clock()
    reminder = RefundDueReminder(bot_env.deps.session_factory, bot_env.deps.alerts, clock=clock)

    await reminder.remind(messenger)
    assert len(to_admin(bot_env)) == announced, "announced today already"
    for day in (1, 2):
        clock.now = utcnow() + timedelta(days=day, minutes=1)
        await reminder.remind(messenger)
        await reminder.remind(messenger)
        assert len(to_admin(bot_env)) == announced + day
        reminder_text = to_admin(bot_env)[-1]
        assert order.public_id in reminder_text and "stripe-card-charge-9" in reminder_text

    async with bot_env.deps.session_factory() as session:
        await session.execute(
            update(Order).where(Order.id == order.id).values(status=OrderStatus.REFUNDED.value)
        )
        await session.commit()
    clock.now += timedelta(days=1)
    await reminder.remind(messenger)
    assert len(to_admin(bot_env)) == announced + 2


async def test_a_support_question_reaches_the_admins_but_not_the_logs(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = make_user(1001)
    await bot_env.send(alice, "/paysupport")
    await bot_env.tap(alice, "Another question")
    question = "My passport number is X1234567, the eSIM will not connect"

    await bot_env.send(alice, question)

    [to_support] = to_admin(bot_env)
    assert question in to_support
    assert "X1234567" not in caplog.text


async def test_an_alert_still_goes_out_once_when_the_database_is_down(
    bot_env: BotEnv, messenger: AiogramMessenger
) -> None:
    dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        alerts = AdminAlerts(create_session_factory(dead), {ADMIN_ID})
        await alerts.alert(messenger, "🚨 database unreachable")
    finally:
        await dead.dispose()

    assert to_admin(bot_env) == ["🚨 database unreachable"]
