"""Buying through the real dispatcher: confirm → invoice → pre-checkout → payment → eSIM photo."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
import zxingcpp
from aiogram.types import User
from PIL import Image
from sqlalchemy import select, update

from bot.app import create_fulfilment_worker
from db.base import utcnow
from db.models import Esim, Order, OrderStatus
from handlers.callbacks import BundleCallback, CountryCallback, OrderCallback
from services.fulfilment import FulfilmentWorker
from tests.fakes.telegram import ApiCall
from tests.helpers import (
    ADMIN_ID,
    BotEnv,
    answers,
    make_user,
    pre_checkout_update,
    successful_payment_update,
)

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True

GB = "esim_1GB_7D_GB_V2"


def worker(env: BotEnv) -> FulfilmentWorker:
    """The production worker, driven explicitly with run_once()."""
    return create_fulfilment_worker(env.deps)


async def open_confirmation(env: BotEnv, user: User, bundle: str = GB) -> None:
    """Browse to the bundle card and press Buy."""
    await env.send(user, "/start")
    await env.press(user, BundleCallback(action="show", bundle=bundle, iso="GB"))
    await env.tap(user, "🛒")


async def get_invoice(env: BotEnv, user: User) -> ApiCall:
    """From the confirmation, press Pay; returns the sendInvoice call."""
    calls = await env.tap(user, "💳")
    invoices = [c for c in calls if c.method == "sendInvoice"]
    assert len(invoices) == 1, [c.method for c in calls]
    assert invoices[0].ok
    return invoices[0]


def invoice_amount(invoice: ApiCall) -> int:
    return sum(int(p["amount"]) for p in invoice.params["prices"])


async def pay(
    env: BotEnv, user: User, invoice: ApiCall, charge_id: str = "charge-1"
) -> list[ApiCall]:
    """Pre-checkout (must be accepted) then successful_payment, as Telegram sends them."""
    payload = str(invoice.params["payload"])
    amount = invoice_amount(invoice)
    calls = await env.feed(pre_checkout_update(user, payload=payload, total_amount=amount))
    answer = [c for c in calls if c.method == "answerPreCheckoutQuery"]
    assert answer and answer[0].params.get("ok") is True, answer
    return await env.feed(
        env.successful_payment(user, payload=payload, total_amount=amount, charge_id=charge_id)
    )


async def load_order(env: BotEnv, public_id: str) -> Order:
    async with env.deps.session_factory() as session:
        result = await session.execute(select(Order).where(Order.public_id == public_id))
        return result.scalar_one()


def decode_qr(png: bytes) -> str:
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(results) == 1
    return str(results[0].text)


def transactions(env: BotEnv) -> int:
    return len(
        [
            r
            for r in env.fake_esimgo.calls("POST /orders")
            if (r.json or {}).get("type") == "transaction"
        ]
    )


async def test_happy_path_delivers_one_photo_whose_qr_is_the_lpa(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1001)
    await open_confirmation(env, alice)
    confirmation = env.screen(alice)
    assert confirmation.text is not None
    assert "Confirm your order" in confirmation.text
    assert "7 days from first use" in confirmation.text
    assert "United Kingdom" in confirmation.text
    assert any("Back" in t for t in confirmation.button_texts())
    assert any("Cancel" in t for t in confirmation.button_texts())

    invoice = await get_invoice(env, alice)
    assert invoice.params["currency"] == "XTR"
    assert not invoice.params.get("provider_token")
    public_id = str(invoice.params["payload"])
    order = await load_order(env, public_id)
    assert order.status == OrderStatus.AWAITING_PAYMENT
    assert invoice_amount(invoice) == order.price
    assert env.fake_esimgo.calls("POST /orders")[-1].json["type"] == "validate"

    calls = await pay(env, alice, invoice)
    texts = [c.params.get("text", "") for c in calls if c.method == "sendMessage"]
    assert any("Payment received" in t for t in texts)
    assert (await load_order(env, public_id)).status == OrderStatus.PAID

    assert await worker(env).run_once() >= 1
    photos = env.fake_telegram.calls_to("sendPhoto")
    assert len(photos) == 1
    photo = photos[0]
    assert photo.params["chat_id"] == alice.id, "the buyer's private chat, nobody else's"
    bought = env.fake_esimgo.orders[0]
    esim = bought["order"][0]["esims"][0]
    lpa = f"LPA:1${env.fake_esimgo.smdp_address}${esim['matchingId']}"
    assert decode_qr(next(iter(photo.files.values()))) == lpa
    caption = str(photo.params.get("caption"))
    assert esim["iccid"] in caption and esim["matchingId"] in caption
    markup = str(photo.params.get("reply_markup"))
    assert "esimsetup.apple.com" in markup and "esimsetup.android.com" in markup
    assert "instructions" in markup.lower()

    order = await load_order(env, public_id)
    assert order.status == OrderStatus.DELIVERED
    assert order.delivered_at is not None
    assert order.telegram_user_id == alice.id
    assert order.telegram_username == alice.username
    assert order.bundle_name == GB
    assert order.country_code == "GB"
    assert order.country_name == "United Kingdom"
    assert order.cost == Decimal(str(env.fake_esimgo.bundle(GB)["price"]))  # type: ignore[index]
    assert order.price_currency == "XTR"
    assert order.iccid == esim["iccid"]
    assert order.qr_code == lpa
    assert order.activation_code == esim["matchingId"]
    assert order.smdp_address == env.fake_esimgo.smdp_address
    assert order.esimgo_order_reference == bought["orderReference"]
    assert order.telegram_payment_charge_id == "charge-1"
    assert order.paid_at is not None and order.last_attempt_at is not None
    async with env.deps.session_factory() as session:
        row = (await session.execute(select(Esim))).scalar_one()
    assert (row.iccid, row.telegram_user_id, row.lpa) == (esim["iccid"], alice.id, lpa)
    assert transactions(env) == 1


async def test_an_unlimited_plan_is_called_by_its_tier_on_the_card_and_in_the_delivery(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice = make_user(1001)
    await open_confirmation(env, alice, "esim_UL_7D_GB_V2")
    assert "United Kingdom · Unlimited Lite · 7 days" in (env.screen(alice).text or "")

    await pay(env, alice, await get_invoice(env, alice))
    assert await worker(env).run_once() >= 1

    (photo,) = env.fake_telegram.calls_to("sendPhoto")
    assert "🇬🇧 United Kingdom · Unlimited Lite · 7 days" in str(photo.params.get("caption"))


async def test_a_changed_price_is_shown_and_confirmed_again(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1002)
    await open_confirmation(env, alice)
    first_price = env.screen(alice).button("Pay")["text"]
    raw = env.fake_esimgo.bundle(GB)
    assert raw is not None
    raw["price"] = float(Decimal(str(raw["price"])) * 3)

    calls = await env.tap(alice, "Pay")
    assert not [c for c in calls if c.method == "sendInvoice"]
    screen = env.screen(alice)
    assert screen.text is not None and "price has changed" in screen.text
    assert screen.button("Pay")["text"] != first_price

    invoice = await get_invoice(env, alice)
    order = await load_order(env, str(invoice.params["payload"]))
    assert order.cost == Decimal(str(raw["price"]))
    assert invoice_amount(invoice) == order.price


async def test_low_balance_says_unavailable_and_alerts_admins_once(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1003)
    env.fake_esimgo.balance = Decimal("0.01")
    await open_confirmation(env, alice)
    for _ in range(2):
        calls = await env.tap(alice, "Pay")
        answered = answers(calls)
        assert answered and "temporarily unavailable" in str(answered[0].params.get("text"))
        assert not [c for c in calls if c.method == "sendInvoice"]
    admin_messages = [
        c for c in env.fake_telegram.calls_to("sendMessage") if c.params["chat_id"] == ADMIN_ID
    ]
    assert len(admin_messages) == 1
    assert "balance" in str(admin_messages[0].params["text"])


async def refused_reason(env: BotEnv, user: User, payload: str, amount: int) -> str | None:
    calls = await env.feed(pre_checkout_update(user, payload=payload, total_amount=amount))
    [answer] = [c for c in calls if c.method == "answerPreCheckoutQuery"]
    if answer.params.get("ok") is True:
        return None
    return str(answer.params["error_message"])


async def test_pre_checkout_refuses_what_does_not_match_the_order(bot_env: BotEnv) -> None:
    env = bot_env
    alice, mallory = make_user(1004), make_user(1666, username="mallory")
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)

    assert await refused_reason(env, alice, payload, amount + 1) is not None
    assert await refused_reason(env, mallory, payload, amount) is not None
    assert await refused_reason(env, alice, "NOSUCHORDER", amount) is not None
    assert await refused_reason(env, alice, payload, amount) is None

    await env.feed(
        env.successful_payment(alice, payload=payload, total_amount=amount, charge_id="c-1")
    )
    assert "already paid" in str(await refused_reason(env, alice, payload, amount))
    assert env.fake_esimgo.calls("POST /orders")[-1].json["type"] == "validate"


async def test_pre_checkout_refuses_an_expired_order_in_the_users_language(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    ivan = make_user(1005, language_code="ru", username="ivan")
    await open_confirmation(env, ivan)
    invoice = await get_invoice(env, ivan)
    payload = str(invoice.params["payload"])
    async with env.deps.session_factory() as session:
        await session.execute(
            update(Order)
            .where(Order.public_id == payload)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()
    reason = await refused_reason(env, ivan, payload, invoice_amount(invoice))
    assert reason is not None and "истёк" in reason


async def test_a_redelivered_payment_buys_and_sends_once(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1006)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    await pay(env, alice, invoice, charge_id="charge-x")
    for _ in range(2):
        calls = await env.feed(
            env.successful_payment(
                alice, payload=payload, total_amount=amount, charge_id="charge-x"
            )
        )
        assert calls == []
    the_worker = worker(env)
    await the_worker.run_once()
    await the_worker.run_once()
    assert transactions(env) == 1
    assert len(env.fake_telegram.calls_to("sendPhoto")) == 1
    received = [
        c
        for c in env.fake_telegram.calls_to("sendMessage")
        if "Payment received" in str(c.params.get("text"))
    ]
    assert len(received) == 1
    assert not env.fake_telegram.calls_to("refundStarPayment")


async def test_an_invoice_paid_after_cancelling_is_refunded(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1007)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    [waiting] = [m for m in env.fake_telegram.chat(alice.id) if "invoice is below" in str(m.text)]
    await env.press(alice, str(waiting.button("Cancel")["callback_data"]), waiting.message_id)
    assert "cancelled" in str(env.fake_telegram.messages[(alice.id, waiting.message_id)].text)
    assert (await load_order(env, payload)).status == OrderStatus.CANCELLED

    # Telegram already had the invoice open: the money arrives anyway.
    await env.feed(
        env.successful_payment(alice, payload=payload, total_amount=amount, charge_id="late")
    )
    await worker(env).run_once()
    refunds = env.fake_telegram.calls_to("refundStarPayment")
    assert [(r.params["user_id"], r.params["telegram_payment_charge_id"]) for r in refunds] == [
        (alice.id, "late")
    ]
    assert all(r.ok for r in refunds)
    assert transactions(env) == 0
    order = await load_order(env, payload)
    assert order.status == OrderStatus.REFUNDED
    texts = [str(c.params.get("text")) for c in env.fake_telegram.calls_to("sendMessage")]
    assert any("refunded" in t for t in texts)


async def test_a_second_payment_for_a_paid_order_is_refunded(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1008)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    await pay(env, alice, invoice, charge_id="first")
    await env.feed(
        env.successful_payment(alice, payload=payload, total_amount=amount, charge_id="second")
    )
    await worker(env).run_once()
    refunds = env.fake_telegram.calls_to("refundStarPayment")
    assert [(r.params["user_id"], r.params["telegram_payment_charge_id"]) for r in refunds] == [
        (alice.id, "second")
    ]
    assert all(r.ok for r in refunds)
    assert transactions(env) == 1
    assert len(env.fake_telegram.calls_to("sendPhoto")) == 1
    assert (await load_order(env, payload)).status == OrderStatus.DELIVERED


async def test_another_users_order_cannot_be_paid_or_cancelled(bot_env: BotEnv) -> None:
    env = bot_env
    alice, mallory = make_user(1009), make_user(1667, username="mallory")
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload = str(invoice.params["payload"])
    await env.send(mallory, "/start")
    for action in ("pay", "cancel"):
        calls = await env.press(mallory, OrderCallback(action=action, order=payload))  # type: ignore[arg-type]
        answered = answers(calls)
        assert answered and "not available" in str(answered[0].params.get("text"))
        assert not [c for c in calls if c.method == "sendInvoice"]
    assert (await load_order(env, payload)).status == OrderStatus.AWAITING_PAYMENT


@pytest.mark.parametrize(
    ("language", "heading", "title", "description"),
    [
        ("en", "Confirm your order", "eSIM 1 GB · 7 days", "Travel data eSIM: "),
        ("ru", "Подтвердите заказ", "eSIM 1 ГБ · 7 дн.", "eSIM с интернетом для поездок: "),
    ],
)
async def test_confirmation_and_invoice_speak_the_users_language(
    bot_env: BotEnv, language: str, heading: str, title: str, description: str
) -> None:
    env = bot_env
    user = make_user(1010, language_code=language)
    await open_confirmation(env, user)
    text = str(env.screen(user).text)
    assert heading in text
    other = "Подтвердите" if language == "en" else "Confirm your order"
    assert other not in text
    invoice = await get_invoice(env, user)
    assert invoice.params["title"] == title and len(title) <= 32
    assert str(invoice.params["description"]).startswith(description)


async def test_an_invoice_paid_after_its_order_expired_is_refunded_to_the_payer(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice = make_user(1011)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    async with env.deps.session_factory() as session:
        await session.execute(
            update(Order)
            .where(Order.public_id == payload)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()
        assert await env.deps.orders.expire_unpaid(session) == 1

    # Telegram had the invoice open: the money arrives after the order expired.
    await env.feed(
        successful_payment_update(alice, payload=payload, total_amount=amount, charge_id="late-1")
    )
    await worker(env).run_once()

    [refund] = env.fake_telegram.calls_to("refundStarPayment")
    assert refund.ok
    assert (refund.params["user_id"], refund.params["telegram_payment_charge_id"]) == (
        alice.id,
        "late-1",
    )
    assert transactions(env) == 0 and not env.fake_telegram.calls_to("sendPhoto")
    assert (await load_order(env, payload)).status == OrderStatus.REFUNDED
    told = [
        c for c in env.fake_telegram.calls_to("sendMessage") if c.params["chat_id"] == alice.id
    ]
    assert "refunded" in str(told[-1].params["text"])


async def test_pre_checkout_refuses_another_currency(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1012)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    calls = await env.feed(
        pre_checkout_update(alice, payload=payload, total_amount=amount, currency="USD")
    )
    [answer] = [c for c in calls if c.method == "answerPreCheckoutQuery"]
    assert answer.params["ok"] is False
    assert "price of this order has changed" in str(answer.params["error_message"])
    assert await refused_reason(env, alice, payload, amount) is None


async def test_pre_checkout_refuses_a_cancelled_order(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1013)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    [waiting] = [m for m in env.fake_telegram.chat(alice.id) if "invoice is below" in str(m.text)]
    await env.press(alice, str(waiting.button("Cancel")["callback_data"]), waiting.message_id)
    reason = await refused_reason(env, alice, payload, amount)
    assert reason is not None and "expired or was cancelled" in reason


async def test_pre_checkout_refuses_a_plan_no_longer_sold(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(1014)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    env.fake_esimgo.catalogue[:] = [b for b in env.fake_esimgo.catalogue if b["name"] != GB]
    await env.deps.catalogue.sync()
    reason = await refused_reason(env, alice, payload, amount)
    assert reason is not None and "no longer available" in reason


async def test_a_plan_without_a_cost_is_never_sold(bot_env: BotEnv) -> None:
    env = bot_env
    free, unpriced = GB, "esim_1GB_7D_TH_V2"
    for item in env.fake_esimgo.catalogue:
        if item["name"] == free:
            item["price"] = 0
        elif item["name"] == unpriced:
            del item["price"]
    await env.deps.catalogue.sync()
    alice = make_user(1010)
    await env.send(alice, "/start")
    for iso, name in (("GB", free), ("TH", unpriced)):
        await env.press(alice, CountryCallback(iso=iso))
        listed = [str(b.get("callback_data")) for b in env.screen(alice).buttons()]
        assert listed and not any(name in data for data in listed)
        calls = await env.press(alice, BundleCallback(action="buy", bundle=name, iso=iso))
        [answer] = answers(calls)
        assert "no longer available" in str(answer.params.get("text"))
    assert not env.fake_telegram.calls_to("sendInvoice")
    async with env.deps.session_factory() as session:
        assert (await session.execute(select(Order))).first() is None
