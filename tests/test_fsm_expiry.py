"""A form left open (a support question never typed) is forgotten after a day, in memory and in
Redis, so a word typed weeks later is not taken for the answer."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.app import create_storage
from bot.dispatcher import create_dispatcher
from tests.conftest import REDIS_URL
from tests.helpers import ADMIN_ID, BotEnv, make_user

DAY_SECONDS = 24 * 60 * 60


class Clock:
    """Seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def admin_messages(env: BotEnv) -> list[str]:
    return [
        str(call.params.get("text", ""))
        for call in env.fake_telegram.calls_to("sendMessage")
        if call.params.get("chat_id") == ADMIN_ID
    ]


async def open_question_form(env: BotEnv, user_id: int) -> None:
    user = make_user(user_id)
    await env.send(user, "/paysupport")
    await env.tap(user, "Another question")
    assert "Type your question" in (env.screen(user).text or "")


async def test_a_form_left_open_for_a_day_is_forgotten_in_memory(bot_env: BotEnv) -> None:
    clock = Clock()
    storage = create_storage(bot_env.deps.settings, clock=clock)
    env = dataclasses.replace(bot_env, dispatcher=create_dispatcher(bot_env.deps, storage))
    alice, bob = make_user(1001), make_user(1002)
    await open_question_form(env, alice.id)
    await open_question_form(env, bob.id)

    clock.now += DAY_SECONDS - 60
    await env.send(alice, "Still no signal in Bangkok")
    clock.now += 120
    await env.send(bob, "Thailand")

    [question] = admin_messages(env)
    assert "Still no signal in Bangkok" in question
    assert "Thailand" in (env.screen(bob).text or ""), "taken as a search, not as a question"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    if not REDIS_URL:
        pytest.skip("TEST_REDIS_URL not set")
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def test_a_form_in_redis_expires_after_a_day(bot_env: BotEnv, redis: Redis) -> None:
    settings = bot_env.deps.settings.model_copy(update={"redis_url": REDIS_URL})
    storage = create_storage(settings)
    env = dataclasses.replace(bot_env, dispatcher=create_dispatcher(bot_env.deps, storage))
    try:
        await open_question_form(env, 1001)
        keys = await redis.keys("fsm:*")
        assert keys, "the form's state is kept in Redis"
        for key in keys:
            assert 0 < await redis.ttl(key) <= DAY_SECONDS, key
    finally:
        await storage.close()
