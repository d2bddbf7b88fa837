"""An operator who takes card payments (a provider token and a fiat currency) instead of Stars."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from aiogram.types import User

from db.models import OrderStatus
from tests.fakes.telegram import ApiCall
from tests.helpers import (
    ADMIN_ID,
    BotEnv,
    database_down,
    make_user,
    pre_checkout_update,
    successful_payment_update,
)
from tests.test_purchase import get_invoice, invoice_amount, load_order, open_confirmation
from tests.test_purchase import worker as make_worker

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True

PROVIDER_TOKEN = "284685063:TEST:ZmFrZS1wcm92aWRlcg"


async def pay_by_card(env: BotEnv, user: User, invoice: ApiCall, charge_id: str) -> None:
    """Pre-checkout (must be accepted) and the payment, in the invoice's currency."""
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    currency = str(invoice.params["currency"])
    calls = await env.feed(
        pre_checkout_update(user, payload=payload, total_amount=amount, currency=currency)
    )
    (answer,) = [c for c in calls if c.method == "answerPreCheckoutQuery"]
    assert answer.params.get("ok") is True, answer.params
    await env.feed(
        successful_payment_update(
            user,
            payload=payload,
            total_amount=amount,
            currency=currency,
            charge_id=charge_id,
            provider_charge_id=f"stripe-{charge_id}",
        )
    )


@pytest.fixture
def bot_env_settings() -> dict[str, Any]:
    return {"payment_currency": "EUR", "payment_provider_token": PROVIDER_TOKEN}


async def test_a_card_payment_in_euros_is_invoiced_in_cents_and_delivered(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1001, language_code="ru")
    await open_confirmation(env, alice)
    confirmation = env.screen(alice).text or ""
    assert "€" in confirmation and "⭐" not in confirmation

    invoice = await get_invoice(env, alice)
    assert invoice.params["currency"] == "EUR"
    assert invoice.params["provider_token"] == PROVIDER_TOKEN
    order = await load_order(env, str(invoice.params["payload"]))
    amount = invoice_amount(invoice)
    assert amount == order.price and order.price_currency == "EUR"
    # Minor units: a tidy price in cents ends in 49 or 99 (never a whole-euro count of Stars).
    assert amount % 100 in (49, 99)
    assert f"{amount // 100},{amount % 100:02d}" in confirmation, "written the Russian way"

    await pay_by_card(env, alice, invoice, charge_id="card-charge-1")
    await make_worker(env).run_once()

    assert len(env.fake_telegram.calls_to("sendPhoto")) == 1
    paid = await load_order(env, order.public_id)
    assert paid.status == OrderStatus.DELIVERED
    assert paid.telegram_payment_charge_id == "card-charge-1"


async def test_a_failed_card_order_is_left_for_an_admin_to_refund(bot_env: BotEnv) -> None:
    env = bot_env
    bob = make_user(2002)
    await open_confirmation(env, bob)
    invoice = await get_invoice(env, bob)
    # The bundle disappears at eSIM Go after payment: a permanent failure.
    env.fake_esimgo.fail_next(
        "POST /orders", status=400, body={"message": "Bundle not found"}, times=5
    )
    await pay_by_card(env, bob, invoice, charge_id="card-charge-2")
    await make_worker(env).run_once()

    order = await load_order(env, str(invoice.params["payload"]))
    assert order.status == OrderStatus.REFUND_DUE
    assert not env.fake_telegram.calls_to("refundStarPayment"), "no refund API for cards"
    to_admins = [
        str(call.params.get("text"))
        for call in env.fake_telegram.calls_to("sendMessage")
        if call.params.get("chat_id") == ADMIN_ID
    ]
    assert any(order.public_id in t and "stripe-card-charge-2" in t for t in to_admins)
    to_bob = [
        str(call.params.get("text"))
        for call in env.fake_telegram.calls_to("sendMessage")
        if call.params.get("chat_id") == bob.id
    ]
    assert any("€" in text for text in to_bob[-1:]), to_bob[-1:]


async def test_a_card_payment_that_cannot_be_stored_alerts_the_admins_with_its_charge(
    bot_env: BotEnv,
) -> None:
    """Telegram's Stars ledger cannot show a card payment: nothing would find it again."""
    env = bot_env
    carol = make_user(2003)
    await open_confirmation(env, carol)
    invoice = await get_invoice(env, carol)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    payment = successful_payment_update(
        carol,
        payload=payload,
        total_amount=amount,
        currency="EUR",
        charge_id="card-charge-3",
        provider_charge_id="stripe-card-charge-3",
    )
    async with database_down(env) as down:
        # The update fails (long polling logs it, a webhook answers 5xx): not the subject here.
        with contextlib.suppress(Exception):
            await down.feed(payment)

    to_admins = [
        str(call.params.get("text"))
        for call in env.fake_telegram.calls_to("sendMessage")
        if call.params.get("chat_id") == ADMIN_ID
    ]
    assert len(to_admins) == 1, to_admins
    assert "stripe-card-charge-3" in to_admins[0] and payload in to_admins[0]
    assert str(carol.id) in to_admins[0]
