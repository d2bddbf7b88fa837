"""A user who floods the bot has the excess dropped with one gentle "slow down", never an error;
their payments still go through, and nobody else notices."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.throttle import UserThrottle
from db.models import Order, OrderStatus
from handlers.callbacks import MenuCallback
from tests.helpers import BotEnv, make_user, pre_checkout_update, successful_payment_update
from tests.test_purchase import get_invoice, invoice_amount, open_confirmation

BURST = 5


@pytest.fixture
def bot_env_settings() -> dict[str, Any]:
    # Next to nothing comes back within the test: exactly BURST updates pass, however slow
    # the machine.
    return {"throttle_rate": 0.001, "throttle_burst": BURST}


def texts_to(env: BotEnv, chat_id: int) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in env.fake_telegram.calls_to("sendMessage")
        if c.params["chat_id"] == chat_id
    ]


async def test_a_flood_is_cut_to_the_burst_with_one_gentle_word(bot_env: BotEnv) -> None:
    env = bot_env
    alice, bob = make_user(6001), make_user(6002, username="bob")
    for _ in range(12):
        await env.send(alice, "/start")
    for _ in range(5):
        calls = await env.press(alice, MenuCallback(action="help"))
        assert calls == []  # dropped: no answer, no edit, no error

    texts = texts_to(env, alice.id)
    assert len(texts) == BURST + 1
    assert sum("slow down" in t.lower() for t in texts) == 1
    assert "slow down" in texts[BURST].lower()
    assert not env.error_logs

    await env.send(bob, "/start")
    assert len(texts_to(env, bob.id)) == 1  # others are not held back


async def test_the_slow_down_word_speaks_the_users_language(bot_env: BotEnv) -> None:
    env = bot_env
    ivan = make_user(6003, language_code="ru", username="ivan")
    for _ in range(BURST + 3):
        await env.send(ivan, "/start")
    assert "Не так быстро" in texts_to(env, ivan.id)[-1]


async def test_payments_are_never_dropped(bot_env: BotEnv) -> None:
    env = bot_env
    carol = make_user(6004, username="carol")
    await open_confirmation(env, carol)  # three updates
    invoice = await get_invoice(env, carol)  # the fourth
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    for _ in range(10):
        await env.send(carol, "/start")

    calls = await env.feed(pre_checkout_update(carol, payload=payload, total_amount=amount))
    (answer,) = [c for c in calls if c.method == "answerPreCheckoutQuery"]
    assert answer.params.get("ok") is True
    await env.feed(
        successful_payment_update(carol, payload=payload, total_amount=amount, charge_id="c-9")
    )
    async with env.deps.session_factory() as session:
        order = await session.scalar(select(Order).where(Order.public_id == payload))
    assert order is not None and order.status == OrderStatus.PAID
    assert any("Payment received" in t for t in texts_to(env, carol.id))


def test_the_bucket_refills_and_warns_again_after_a_pause() -> None:
    now = [0.0]
    throttle = UserThrottle(rate=2.0, burst=3, clock=lambda: now[0])
    verdicts = [throttle.check(7) for _ in range(5)]
    assert verdicts == ["pass", "pass", "pass", "warn", "drop"]
    now[0] += 0.5  # one update's worth
    assert [throttle.check(7), throttle.check(7)] == ["pass", "warn"]
    assert throttle.check(8) == "pass"  # someone else
    now[0] += 10.0
    assert [throttle.check(7) for _ in range(4)] == ["pass", "pass", "pass", "warn"]
