"""Buttons that lie, and buttons Telegram fails to acknowledge."""

from __future__ import annotations

from sqlalchemy import select

from db.models import Order
from handlers.callbacks import BundleCallback, MenuCallback
from tests.helpers import BotEnv, make_user
from tests.test_purchase import GB

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True

ERROR_WORDS = "Something went wrong"


async def order_of(env: BotEnv, user_id: int) -> Order:
    async with env.deps.session_factory() as session:
        result = await session.execute(select(Order).where(Order.telegram_user_id == user_id))
        return result.scalar_one()


async def test_a_forged_country_does_not_label_the_order(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(3101)
    await env.send(alice, "/start")
    await env.press(alice, BundleCallback(action="buy", bundle=GB, iso="TH"))
    order = await order_of(env, alice.id)
    assert (order.country_code, order.country_name) == ("GB", "United Kingdom")
    assert "Thailand" not in str(env.screen(alice).text)


async def test_a_forged_country_on_a_regional_plan_names_no_country(bot_env: BotEnv) -> None:
    env = bot_env
    bob = make_user(3102, username="bob")
    regional = next(
        b
        for b in env.deps.catalogue.catalogue.bundles
        if b.is_multi_country and "TH" not in {c.iso for c in b.coverage}
    )
    covered = next(c.iso for c in regional.coverage if len(c.iso) == 2)
    await env.send(bob, "/start")
    await env.press(bob, BundleCallback(action="buy", bundle=regional.name, iso="TH"))
    assert (await order_of(env, bob.id)).country_code is None

    carol = make_user(3103, username="carol")
    await env.send(carol, "/start")
    await env.press(carol, BundleCallback(action="buy", bundle=regional.name, iso=covered))
    assert (await order_of(env, carol.id)).country_code == covered


async def test_a_button_telegram_fails_to_acknowledge_is_no_error(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(3104)
    await env.send(alice, "/start")
    env.fake_telegram.fail_next("answerCallbackQuery", 500, "Internal Server Error")
    calls = await env.press(alice, MenuCallback(action="help"))
    assert "How it works" in str(env.screen(alice).text)
    assert [c.method for c in calls] == ["editMessageText", "answerCallbackQuery"]
    assert not any(ERROR_WORDS in str(c.params.get("text")) for c in calls)
    assert not env.error_logs
