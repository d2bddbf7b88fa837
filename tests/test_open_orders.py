"""One open unpaid order per user and plan: Buy again reuses it and its invoice; the number of
unpaid orders a user may hold is capped."""

from __future__ import annotations

from sqlalchemy import func, select

from db.models import Order, OrderStatus
from handlers.callbacks import BundleCallback
from tests.helpers import BotEnv, answers, make_user
from tests.test_purchase import GB, get_invoice, open_confirmation

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True

CAP = 5  # UNPAID_ORDERS_PER_USER's default


async def unpaid(env: BotEnv, user_id: int) -> list[Order]:
    async with env.deps.session_factory() as session:
        result = await session.execute(
            select(Order).where(
                Order.telegram_user_id == user_id,
                Order.status == OrderStatus.AWAITING_PAYMENT.value,
            )
        )
        return list(result.scalars().all())


def validates(env: BotEnv) -> int:
    return len(
        [
            r
            for r in env.fake_esimgo.calls("POST /orders")
            if (r.json or {}).get("type") == "validate"
        ]
    )


async def test_buy_again_reuses_the_open_order_and_its_invoice(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(7001)
    await open_confirmation(env, alice)
    first = await get_invoice(env, alice)
    await open_confirmation(env, alice)
    second = await get_invoice(env, alice)

    assert second.params["payload"] == first.params["payload"]
    assert second.params["prices"] == first.params["prices"]
    assert [o.public_id for o in await unpaid(env, alice.id)] == [first.params["payload"]]
    assert validates(env) == 1


async def test_a_cancelled_order_is_not_reused(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(7002)
    await open_confirmation(env, alice)
    await env.tap(alice, "Cancel")
    await open_confirmation(env, alice)
    (order,) = await unpaid(env, alice.id)
    async with env.deps.session_factory() as session:
        total = await session.scalar(
            select(func.count()).select_from(Order).where(Order.telegram_user_id == alice.id)
        )
    assert total == 2 and order.status == OrderStatus.AWAITING_PAYMENT


async def test_unpaid_orders_are_capped_with_a_polite_word(bot_env: BotEnv) -> None:
    env = bot_env
    alice, bob = make_user(7003), make_user(7004, username="bob")
    plans = [b for b in env.deps.catalogue.catalogue.bundles if not b.is_multi_country][: CAP + 1]
    await env.send(alice, "/start")
    for bundle in plans[:CAP]:
        await env.press(alice, BundleCallback(action="buy", bundle=bundle.name))
        assert "Confirm your order" in str(env.screen(alice).text)
    assert len(await unpaid(env, alice.id)) == CAP

    before = env.screen(alice).text
    calls = await env.press(alice, BundleCallback(action="buy", bundle=plans[CAP].name))
    (answer,) = answers(calls)
    assert "unpaid orders" in str(answer.params.get("text"))
    assert answer.params.get("show_alert") is True
    assert env.screen(alice).text == before
    assert len(await unpaid(env, alice.id)) == CAP

    # The open ones still open, and someone else is not affected.
    await env.press(alice, BundleCallback(action="buy", bundle=plans[0].name))
    assert "Confirm your order" in str(env.screen(alice).text)
    await env.send(bob, "/start")
    await env.press(bob, BundleCallback(action="buy", bundle=GB, iso="GB"))
    assert "Confirm your order" in str(env.screen(bob).text)
