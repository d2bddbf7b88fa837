"""/admin through the dispatcher: exact figures after real purchases, an unpaid invoice and a
refund; the supplier balance and its warning; the attention list as buttons; the chart PNG."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from db.base import utcnow
from db.models import Order, OrderStatus
from handlers.callbacks import OrderCallback
from tests.admin_chat import ADMIN, buy, invoice
from tests.admin_helpers import add, make_order
from tests.helpers import BotEnv, make_user

# Money moves here: SQLite and PostgreSQL.
ON_EVERY_DATABASE = True

ALICE, BOB, CAROL = make_user(1001), make_user(1002), make_user(1003)
# What the fake eSIM Go charges for the 1 GB UK plan, and what the bot asks for it.
COST, STARS = "1.64", 165
PERIOD = [
    "Paid orders: 2 (2 new eSIMs, 0 top-ups)",
    "Revenue: 330 ⭐ ≈ $4.29",  # 330 × 0.013
    "eSIM Go cost: $3.28",
    "Refunds: 1 · 165 ⭐ ≈ $2.14",  # 2.145, rounded half even
    "Margin: -$1.14",  # 4.29 − 2.145 − 3.28
    "Conversion: 2 of 3 invoices paid (66.7%)",
]


@pytest.fixture
def bot_env_settings() -> dict[str, Any]:
    return {"esimgo_balance_warn": "2000"}


async def _sales(env: BotEnv) -> None:
    """Alice and Bob buy the UK plan; Carol gets an invoice and never pays; Bob is refunded."""
    await buy(env, ALICE, "charge-alice")
    bobs = await buy(env, BOB, "charge-bob")
    await invoice(env, CAROL)
    await env.send(ADMIN, f"/order {bobs}")
    await env.tap(ADMIN, "Refund")
    await env.tap(ADMIN, "Yes")
    assert "Refunded in Stars" in (env.screen(ADMIN).text or "")


async def test_the_dashboard_after_purchases_an_unpaid_invoice_and_a_refund(
    bot_env: BotEnv,
) -> None:
    await _sales(bot_env)
    calls = await bot_env.send(ADMIN, "/admin")

    board, chart = bot_env.fake_telegram.chat(ADMIN.id)[-2:]
    text = board.text or ""
    for title in ("Today (since 00:00 UTC)", "Last 7 days", "Last 30 days"):
        start = text.index(title) + len(title) + 1
        assert text[start:].splitlines()[: len(PERIOD)] == PERIOD, title
    # 1000 USD less what the two orders cost, plus Bob's unused plan the refund took back to
    # the balance; the week's spend is 3.28 USD, 0.47 a day.
    assert "eSIM Go balance: 998.36 USD" in text
    assert "Runway: about 2,130.6 days at the last 7 days' spend ($0.47 a day)" in text
    assert "Below the warning level of 2,000.00 USD" in text
    assert "Nothing needs attention" in text and board.buttons() == []

    (photo,) = [c for c in calls if c.method == "sendPhoto"]
    image = Image.open(io.BytesIO(photo.files["photo"]))
    assert image.format == "PNG" and image.size == (900, 450)
    image.load()  # decodes every pixel: a truncated or corrupt PNG raises here
    assert chart.photo is not None and "per day" in (chart.caption or "")
    assert not bot_env.error_logs


async def test_the_orders_that_need_attention_are_buttons_to_their_story(
    bot_env: BotEnv,
) -> None:
    long_ago = utcnow() - timedelta(hours=1)
    await add(
        bot_env.deps.session_factory,
        make_order(public_id="DUE0000001", status=OrderStatus.REFUND_DUE.value, price=499,
                   price_currency="USD", failure_reason="refundStarPayment refused"),
        make_order(public_id="STUCK00001", status=OrderStatus.PAID.value, paid_at=long_ago,
                   created_at=long_ago),
        make_order(public_id="FINE000001", delivered_at=long_ago),
    )  # fmt: skip
    await bot_env.send(ADMIN, "/admin")
    board = bot_env.fake_telegram.chat(ADMIN.id)[-2]
    assert "Needs attention: 2" in (board.text or "")
    assert board.button_texts() == [  # the longest waiting first
        "STUCK00001 · paid, no worker took it",
        "DUE0000001 · refund due by hand",
    ]
    await bot_env.tap(ADMIN, "DUE0000001", board.message_id)
    story = bot_env.message(ADMIN, board.message_id).text or ""
    assert "Order DUE0000001 · refund_due" in story
    assert "Last error: refundStarPayment refused" in story
    assert bot_env.message(ADMIN, board.message_id).button_texts() == [
        "🔁 Retry fulfilment",
        "↩️ Refund",
        "🔄 Refresh",
    ]


async def test_the_invoice_sent_time_is_recorded_once_for_the_conversion(
    bot_env: BotEnv,
) -> None:
    sent = await invoice(bot_env, ALICE)
    public_id = str(sent.params["payload"])
    first = await _invoice_sent_at(bot_env, public_id)
    assert first is not None
    # Pay pressed again (an older confirmation): a second invoice, the first time kept.
    calls = await bot_env.press(ALICE, OrderCallback(action="pay", order=public_id))
    assert [c.method for c in calls if c.method == "sendInvoice"] == ["sendInvoice"]
    assert await _invoice_sent_at(bot_env, public_id) == first


async def _invoice_sent_at(env: BotEnv, public_id: str) -> Any:
    async with env.deps.session_factory() as session:
        return await session.scalar(
            select(Order.invoice_sent_at).where(Order.public_id == public_id)
        )
