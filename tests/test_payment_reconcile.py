"""Telegram's Stars ledger is the truth: a payment whose update never arrived (a crash, a
deploy, a database failure while it was handled) is recorded and fulfilled, or refunded; a
refund we recorded that Telegram does not show is reported to the admins."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiogram.types import User
from sqlalchemy import select, update

from bot.payments import create_payment_reconciler
from db.base import utcnow
from db.models import Order, OrderStatus
from db.models.events import RECONCILER, OrderEvent
from db.repositories.orders import OrderRepository
from services.payment_reconciler import PaymentReconciler
from tests.fakes.telegram import ApiCall
from tests.helpers import (
    ADMIN_ID,
    BotEnv,
    database_down,
    make_user,
    successful_payment_update,
)
from tests.test_purchase import (
    get_invoice,
    invoice_amount,
    load_order,
    open_confirmation,
    pay,
    transactions,
    worker,
)

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True

DAY = 24 * 3600


def reconciler(env: BotEnv, clock: Callable[[], datetime] | None = None) -> PaymentReconciler:
    """The production reconciler; with `clock`, one whose passes happen at that time."""
    made = create_payment_reconciler(env.deps, env.bot)
    if clock is not None:
        made.clock = clock
    return made


async def invoiced(env: BotEnv, user: User) -> tuple[str, int]:
    """The user's order awaiting payment: (public id, price in Stars)."""
    await open_confirmation(env, user)
    invoice = await get_invoice(env, user)
    return str(invoice.params["payload"]), invoice_amount(invoice)


async def paid(env: BotEnv, user: User, charge_id: str) -> str:
    """An order paid through the bot, its update handled as usual; its public id."""
    await open_confirmation(env, user)
    invoice = await get_invoice(env, user)
    await pay(env, user, invoice, charge_id=charge_id)
    return str(invoice.params["payload"])


def to_chat(env: BotEnv, chat_id: int) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in env.fake_telegram.calls_to("sendMessage")
        if c.params.get("chat_id") == chat_id
    ]


def refunds(env: BotEnv) -> list[tuple[int, str]]:
    calls: list[ApiCall] = env.fake_telegram.calls_to("refundStarPayment")
    return [(c.params["user_id"], c.params["telegram_payment_charge_id"]) for c in calls if c.ok]


async def set_order(env: BotEnv, public_id: str, **values: Any) -> None:
    async with env.deps.session_factory() as session:
        await session.execute(update(Order).where(Order.public_id == public_id).values(**values))
        await session.commit()


async def events_of_charge(env: BotEnv, charge_id: str) -> list[OrderEvent]:
    """The events of the order that holds the Stars charge `charge_id`."""
    async with env.deps.session_factory() as session:
        order_id = await session.scalar(
            select(Order.id).where(Order.telegram_payment_charge_id == charge_id)
        )
        assert order_id is not None, charge_id
        return list(await OrderRepository(session).events(order_id))


def withdrawal(number: int, date: int) -> dict[str, Any]:
    """An outgoing transaction of the bot's own (Stars withdrawn to Fragment)."""
    return {
        "id": f"withdrawal-{number}",
        "amount": 1000,
        "date": date,
        "receiver": {"type": "fragment"},
    }


async def test_a_payment_whose_update_never_arrived_is_recorded_and_delivered(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice = make_user(3101)
    public_id, amount = await invoiced(env, alice)
    # Telegram took the Stars; the successful_payment update was lost.
    env.fake_telegram.add_star_payment(alice.id, public_id, amount, charge_id="lost-1")
    env.deps.fulfilment_wake.clear()

    summary = await reconciler(env).reconcile_once()

    assert summary.recorded == 1 and summary.refunds == 0
    order = await load_order(env, public_id)
    assert (order.status, order.telegram_payment_charge_id) == (OrderStatus.PAID, "lost-1")
    assert env.deps.fulfilment_wake.is_set(), "fulfilment starts at once"
    await worker(env).run_once()
    [photo] = env.fake_telegram.calls_to("sendPhoto")
    assert photo.params["chat_id"] == alice.id
    assert (await load_order(env, public_id)).status == OrderStatus.DELIVERED
    assert not refunds(env) and not to_chat(env, ADMIN_ID)


async def test_a_payment_recovered_from_the_ledger_is_recorded_paid_by_the_reconciler(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice = make_user(3113)
    public_id, amount = await invoiced(env, alice)
    env.fake_telegram.add_star_payment(alice.id, public_id, amount, charge_id="lost-actor")

    assert (await reconciler(env).reconcile_once()).recorded == 1

    [paid_event] = await events_of_charge(env, "lost-actor")
    assert (paid_event.from_status, paid_event.to_status) == ("awaiting_payment", "paid")
    assert (paid_event.actor, paid_event.note) == (RECONCILER, "charge lost-actor")


async def test_a_payment_whose_update_failed_in_long_polling_is_recorded_by_the_next_pass(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    bob = make_user(3112)
    public_id, amount = await invoiced(env, bob)
    update = successful_payment_update(
        bob, payload=public_id, total_amount=amount, charge_id="p-1"
    )
    async with database_down(env) as down:
        # Long polling confirms the update with its next getUpdates: it is never delivered again.
        with pytest.raises(OSError):
            await down.feed(update)
    assert (await load_order(env, public_id)).status == OrderStatus.AWAITING_PAYMENT

    assert (await reconciler(env).reconcile_once()).recorded == 1
    await worker(env).run_once()
    [photo] = env.fake_telegram.calls_to("sendPhoto")
    assert photo.params["chat_id"] == bob.id


async def test_a_payment_naming_no_order_is_refunded_to_its_payer_and_alerted(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    mallory = make_user(3102, username="mallory")
    env.fake_telegram.add_star_payment(mallory.id, "NOSUCHORDER", 75, charge_id="stray-1")

    summary = await reconciler(env).reconcile_once()
    await worker(env).run_once()

    assert (summary.unknown, summary.refunds) == (1, 1)
    assert refunds(env) == [(mallory.id, "stray-1")]
    stray_event = (await events_of_charge(env, "stray-1"))[0]
    assert (stray_event.from_status, stray_event.to_status) == (None, "failed")
    assert stray_event.actor == RECONCILER
    [alert] = to_chat(env, ADMIN_ID)
    assert "stray-1" in alert and "NOSUCHORDER" in alert and str(mallory.id) in alert
    assert "refunded" in to_chat(env, mallory.id)[-1]
    assert transactions(env) == 0


async def test_a_payment_for_someone_elses_order_is_refunded_and_alerted(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice, mallory = make_user(3103), make_user(3104, username="mallory")
    public_id, amount = await invoiced(env, alice)
    env.fake_telegram.add_star_payment(mallory.id, public_id, amount, charge_id="foreign-1")

    summary = await reconciler(env).reconcile_once()
    await worker(env).run_once()

    assert (summary.unknown, summary.refunds) == (1, 1)
    assert refunds(env) == [(mallory.id, "foreign-1")]
    assert (await load_order(env, public_id)).status == OrderStatus.AWAITING_PAYMENT
    assert any("foreign-1" in text for text in to_chat(env, ADMIN_ID))


async def test_a_lost_payment_for_an_order_that_expired_is_refunded(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(3105)
    public_id, amount = await invoiced(env, alice)
    env.fake_telegram.add_star_payment(alice.id, public_id, amount, charge_id="late-2")
    await set_order(env, public_id, expires_at=utcnow() - timedelta(minutes=1))
    async with env.deps.session_factory() as session:
        assert await env.deps.orders.expire_unpaid(session) == 1

    summary = await reconciler(env).reconcile_once()
    await worker(env).run_once()

    assert (summary.recorded, summary.refunds, summary.unknown) == (0, 1, 0)
    assert refunds(env) == [(alice.id, "late-2")]
    assert transactions(env) == 0 and not env.fake_telegram.calls_to("sendPhoto")
    assert "refunded" in to_chat(env, alice.id)[-1]
    assert not to_chat(env, ADMIN_ID)


async def test_payments_already_handled_are_left_alone(bot_env: BotEnv) -> None:
    env = bot_env
    alice, bob = make_user(3106), make_user(3107)
    public_id = await paid(env, alice, "seen-1")
    # Bob paid and was refunded before this bot version kept a ledger: nothing is left to do.
    env.fake_telegram.add_star_payment(bob.id, "OLDORDER", 40, charge_id="old-1")
    await env.bot.refund_star_payment(user_id=bob.id, telegram_payment_charge_id="old-1")
    env.fake_telegram.clear_calls()

    for _ in range(2):
        summary = await reconciler(env).reconcile_once()
        assert (summary.recorded, summary.refunds, summary.unknown) == (0, 0, 0)
    await worker(env).run_once()
    assert not env.fake_telegram.calls_to("refundStarPayment")
    assert (await load_order(env, public_id)).telegram_payment_charge_id == "seen-1"
    assert not to_chat(env, ADMIN_ID)


async def test_the_ledger_is_read_from_the_newest_back_to_what_was_seen(bot_env: BotEnv) -> None:
    env = bot_env
    two_days_ago = int(time.time()) - 2 * DAY
    # One a minute: the first page reaches back well past what was handled before.
    env.fake_telegram.star_transactions.extend(
        withdrawal(n, two_days_ago + 60 * n) for n in range(250)
    )
    first = await reconciler(env).reconcile_once()
    assert (first.read, first.pages) == (250, 3)  # 100 + 100 + 50: back to the beginning

    alice = make_user(3108)
    public_id, amount = await invoiced(env, alice)
    env.fake_telegram.add_star_payment(alice.id, public_id, amount, charge_id="new-1")
    env.fake_telegram.clear_calls()
    second = await reconciler(env).reconcile_once()

    # One page holds the new payment and transactions long seen: no need to read further.
    [page] = env.fake_telegram.calls_to("getStarTransactions")
    assert int(page.params.get("offset") or 0) == 0
    assert (second.pages, second.recorded) == (1, 1)
    assert (await load_order(env, public_id)).status == OrderStatus.PAID


async def test_a_ledger_listed_oldest_first_is_read_to_its_end(bot_env: BotEnv) -> None:
    """The Bot API documents getStarTransactions as chronological: a new payment then sits on
    the last page, not the first, and must still be found without rereading everything."""
    env = bot_env
    env.fake_telegram.star_newest_first = False
    two_days_ago = int(time.time()) - 2 * DAY
    env.fake_telegram.star_transactions.extend(
        withdrawal(n, two_days_ago + 60 * n) for n in range(250)
    )
    first = await reconciler(env).reconcile_once()
    assert first.read == 250

    alice = make_user(3109)
    public_id, amount = await invoiced(env, alice)
    env.fake_telegram.add_star_payment(alice.id, public_id, amount, charge_id="new-2")
    env.fake_telegram.clear_calls()
    second = await reconciler(env).reconcile_once()

    assert second.recorded == 1
    assert (await load_order(env, public_id)).status == OrderStatus.PAID
    offsets = [
        int(c.params.get("offset") or 0) for c in env.fake_telegram.calls_to("getStarTransactions")
    ]
    assert offsets[0] == 0 and max(offsets) >= 150, "read on from what was seen, not from 0"
    assert len(offsets) <= 3


async def test_a_recorded_refund_that_telegram_does_not_show_is_alerted_once(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice, bob = make_user(3109), make_user(3110)
    alice_order = await paid(env, alice, "really-refunded")
    bob_order = await paid(env, bob, "never-refunded")
    # Alice's order fails and the worker refunds it through Telegram.
    await set_order(env, alice_order, status=OrderStatus.FAILED, failure_reason="rejected: x")
    await worker(env).run_once()
    assert refunds(env) == [(alice.id, "really-refunded")]
    # Bob's order says refunded, but the refund never reached Telegram.
    await set_order(
        env, bob_order, status=OrderStatus.REFUNDED, refunded_at=utcnow(), failure_reason="x"
    )
    env.fake_telegram.clear_calls()

    # The next passes, minutes later: each refund had all the time it needs to show.
    later = reconciler(env, clock=lambda: utcnow() + timedelta(minutes=5))
    for _ in range(2):
        summary = await later.reconcile_once()
        assert summary.missing_refunds == 1
    alerts = [t for t in to_chat(env, ADMIN_ID) if "never-refunded" in t]
    assert len(alerts) == 1 and bob_order in alerts[0], "alerted once"
    assert not [t for t in to_chat(env, ADMIN_ID) if "really-refunded" in t]


async def test_each_reconciliation_logs_one_line_with_its_counts(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = bot_env
    carol = make_user(3111)
    public_id, amount = await invoiced(env, carol)
    env.fake_telegram.add_star_payment(carol.id, public_id, amount, charge_id="logged-1")
    env.fake_telegram.add_star_payment(carol.id, "NOSUCHORDER", 10, charge_id="logged-2")
    caplog.set_level(logging.INFO, logger="services.payment_reconciler")

    await reconciler(env).reconcile_once()

    lines = [r.getMessage() for r in caplog.records if r.name == "services.payment_reconciler"]
    assert len(lines) == 1, lines
    assert "payments reconciled:" in lines[0]
    for count in ("2 read", "1 recorded", "1 to refund", "1 unknown", "0 refunds missing"):
        assert count in lines[0], lines[0]
