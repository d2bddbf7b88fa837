"""Webhook mode: Telegram hears back about a payment only once it is handled; a failure is 5xx,
so Telegram delivers the update again instead of the payment being lost."""

from __future__ import annotations

from aiogram.types import Update

from db.models import OrderStatus
from tests.fakes.telegram import ApiCall
from tests.helpers import (
    BotEnv,
    database_down,
    make_user,
    message_update,
    pre_checkout_update,
    successful_payment_update,
)
from tests.test_purchase import get_invoice, invoice_amount, load_order, open_confirmation
from tests.test_webhook_mode import SECRET, post_update, wait_for_message, webhook_env
from tests.tracking_helpers import start_server_env, stop_server_env

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True


async def deliver(env: BotEnv, update: Update) -> int:
    """Telegram POSTs the update to the bot's webhook; the HTTP status it gets back."""
    server = await start_server_env(webhook_env(env))
    try:
        return await post_update(server, update, SECRET)
    finally:
        await stop_server_env(server)


def pre_checkout_answers(env: BotEnv) -> list[ApiCall]:
    return env.fake_telegram.calls_to("answerPreCheckoutQuery")


async def test_a_payment_that_cannot_be_stored_gets_a_5xx_and_is_stored_when_delivered_again(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice = make_user(7101)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    paid = successful_payment_update(alice, payload=payload, total_amount=amount, charge_id="wh-1")
    env.fake_telegram.add_star_payment(alice.id, payload, amount, charge_id="wh-1")

    async with database_down(env) as down:
        status = await deliver(down, paid)
    assert status >= 500, "a 200 would tell Telegram the payment was handled"
    assert (await load_order(env, payload)).status == OrderStatus.AWAITING_PAYMENT

    # The database is back and Telegram delivers the same update again.
    assert await deliver(env, paid) == 200
    # Handled before the answer: by the time Telegram has its 200 the payment is stored.
    order = await load_order(env, payload)
    assert (order.status, order.telegram_payment_charge_id) == (OrderStatus.PAID, "wh-1")
    thanks = [
        c
        for c in env.fake_telegram.calls_to("sendMessage")
        if c.params["chat_id"] == alice.id and "Payment received" in str(c.params["text"])
    ]
    assert len(thanks) == 1


async def test_a_pre_checkout_is_answered_before_the_webhook_and_5xx_when_it_cannot_be(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice = make_user(7102)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)

    query = pre_checkout_update(alice, payload=payload, total_amount=amount, query_id="pcq-wh-1")
    async with database_down(env) as down:
        assert await deliver(down, query) >= 500
    assert not pre_checkout_answers(env)

    again = pre_checkout_update(alice, payload=payload, total_amount=amount, query_id="pcq-wh-2")
    assert await deliver(env, again) == 200
    [answer] = pre_checkout_answers(env)
    assert answer.params["pre_checkout_query_id"] == "pcq-wh-2"
    assert answer.params["ok"] is True


async def test_other_updates_are_still_answered_at_once_and_handled_after(
    bot_env: BotEnv,
) -> None:
    server = await start_server_env(webhook_env(bot_env))
    try:
        alice = make_user(7103)
        assert await post_update(server, message_update(alice, "/start"), SECRET) == 200
        [answer] = await wait_for_message(server, alice.id)
        assert "Travel eSIMs" in str(answer.params["text"])
    finally:
        await stop_server_env(server)
