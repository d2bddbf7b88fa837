"""/broadcast through the dispatcher: the admin's formatted message, previewed with its count
of recipients and a choice of audience, sent by a background job to a few hundred users — one
who blocked the bot meanwhile, a 429 in the middle — each exactly once, also when the process
stops in the middle and another one carries on."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.app import close_deps, create_bot, create_deps
from bot.deps import AppDeps
from db.models import User
from handlers.callbacks import BroadcastCallback
from services.admin.broadcast import BroadcastSender
from tests.admin_chat import ADMIN, send_formatted
from tests.admin_helpers import add, add_users, make_order
from tests.fakes.telegram import FakeTelegram
from tests.helpers import BotEnv, answers

USERS = range(10_000, 10_300)
BLOCKS_NOW = 10_150  # blocks the bot before the broadcast reaches them
BLOCKED_BEFORE = 10_299  # Telegram told us earlier: not in the audience
RUSSIAN = range(10_000, 10_040)
BUYERS = range(10_200, 10_210)
TEXT = "New: plans for Japan from 5 ⭐"
HTML = '<b>New:</b> plans for <a href="https://t.me/esim_test_bot">Japan</a> from 5 ⭐'
ENTITIES = [
    {"type": "bold", "offset": 0, "length": 4},
    {"type": "text_link", "offset": 15, "length": 5, "url": "https://t.me/esim_test_bot"},
]
# Telegram's pace is the job's business (services.admin.broadcast); here it may go faster.
TEST_RATE = 2000.0


def fast(deps: AppDeps) -> AppDeps:
    """The same services, with a broadcast sender that is not held to 25 messages a second."""
    sender = BroadcastSender(
        deps.session_factory, deps.messenger, deps.admin.broadcasts, rate=TEST_RATE
    )
    return dataclasses.replace(deps, admin=dataclasses.replace(deps.admin, sender=sender))


@pytest.fixture
async def env(bot_env: BotEnv) -> BotEnv:
    factory = bot_env.deps.session_factory
    await add_users(factory, [u for u in USERS if u != BLOCKED_BEFORE and u not in RUSSIAN])
    await add_users(factory, RUSSIAN, telegram_language="ru")
    await add_users(factory, [BLOCKED_BEFORE], blocked_at=datetime(2026, 1, 1, tzinfo=UTC))
    await add(factory, *(make_order(telegram_user_id=u, chat_id=u) for u in BUYERS))
    deps = fast(bot_env.deps)
    bot_env.dispatcher["admin"] = deps.admin
    return dataclasses.replace(bot_env, deps=deps)


def received(fake: FakeTelegram) -> Counter[int]:
    return Counter(
        int(c.params["chat_id"])
        for c in fake.calls_to("sendMessage")
        if c.ok and c.params["chat_id"] in USERS
    )


def everyone_once(fake: FakeTelegram) -> None:
    counts = received(fake)
    assert set(counts) == set(USERS) - {BLOCKS_NOW, BLOCKED_BEFORE}
    assert set(counts.values()) == {1}


async def compose(env: BotEnv) -> None:
    """/broadcast, the message, then the preview: 300 users (the admin is one of them)."""
    await env.send(ADMIN, "/broadcast")
    assert "Send the message to broadcast" in (env.screen(ADMIN).text or "")
    await send_formatted(env, ADMIN, TEXT, ENTITIES)
    preview, controls = env.fake_telegram.chat(ADMIN.id)[-2:]
    assert preview.html == HTML  # exactly what the users will get
    assert "goes to 300 users (Everyone;" in (controls.text or "")


async def test_audiences_are_counted_before_anything_is_sent(env: BotEnv) -> None:
    await compose(env)
    for audience, count in (("Buyers", 10), ("RU", 40), ("EN", 260), ("Everyone", 300)):
        await env.tap(ADMIN, audience)
        assert f"goes to {count} users ({audience};" in (env.screen(ADMIN).text or "")
        assert f"• {audience}" in env.screen(ADMIN).button_texts()
    await env.tap(ADMIN, "Cancel")
    assert env.screen(ADMIN).text == "Cancelled: nothing was sent."
    assert received(env.fake_telegram) == Counter()
    # The message after a cancelled form is no broadcast either.
    await env.send(ADMIN, "Japan")
    assert received(env.fake_telegram) == Counter()


async def test_everyone_once_through_a_block_and_a_flood_wait(env: BotEnv) -> None:
    await compose(env)
    env.fake_telegram.blocked_chats.add(BLOCKS_NOW)
    env.fake_telegram.fail_next("sendMessage", retry_after=1, after=150)
    await env.tap(ADMIN, "Send to 300")
    assert "sending to 300 users" in (env.screen(ADMIN).text or "")
    calls = await env.press(ADMIN, BroadcastCallback(action="send", id=1))  # pressed twice
    assert answers(calls)[0].params["text"] == "This broadcast was sent or cancelled already."
    await asyncio.gather(*env.deps.admin.sender.jobs)

    everyone_once(env.fake_telegram)
    failed = [c.error_code for c in env.fake_telegram.calls_to("sendMessage") if not c.ok]
    assert sorted(failed, key=str) == [403, 429]
    async with env.deps.session_factory() as session:
        assert await session.scalar(select(User.blocked_at).where(User.telegram_id == BLOCKS_NOW))
    # The admin (a user too) got it as well; progress is one message, edited as it went.
    chat = env.fake_telegram.chat(ADMIN.id)
    (progress,) = [m for m in chat if (m.text or "").startswith("📣 Broadcast #1:")]
    assert progress.text == "📣 Broadcast #1: sent 299 · failed 1 · left 0" and progress.edits
    summary = chat[-1]
    assert summary.text == (
        "📣 Broadcast #1 finished: sent 299, failed 1 (1 blocked the bot and are no longer "
        "sent to), not sent 0."
    )
    sent = env.fake_telegram.calls_to("sendMessage")
    assert {c.params["text"] for c in sent if c.params["chat_id"] in USERS} == {HTML}
    assert not env.error_logs


async def test_a_process_stopping_midway_and_the_next_one_carrying_on(
    env: BotEnv, bot_env_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.admin.broadcast")
    await compose(env)
    env.fake_telegram.blocked_chats.add(BLOCKS_NOW)
    env.fake_telegram.fail_next("sendMessage", retry_after=30, after=120)
    await env.tap(ADMIN, "Send to 300")
    # Until the job has read the 429 and waits out Telegram's 30 s: the fake records the call
    # before its answer reaches the job, and a send whose answer never came counts as made.
    async with asyncio.timeout(30):
        while not any("flood wait" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110 - the job has no "waiting" event
            await asyncio.sleep(0.01)
    await env.deps.admin.sender.close()  # the process stops (close_deps does this first)
    assert 0 < len(received(env.fake_telegram)) < 200

    # The next process: its broadcast sender finds the broadcast nobody sends and resumes it.
    bot = create_bot(env.deps.settings)
    deps = fast(await create_deps(env.deps.settings, bot))
    try:
        assert await deps.admin.sender.resume() == 1
        await asyncio.gather(*deps.admin.sender.jobs)
    finally:
        await close_deps(deps)
        await bot.session.close()
    everyone_once(env.fake_telegram)
    assert env.fake_telegram.chat(ADMIN.id)[-1].text == (
        "📣 Broadcast #1 finished: sent 299, failed 1 (1 blocked the bot and are no longer "
        "sent to), not sent 0."
    )


async def test_a_photo_broadcast_stopped_midway(env: BotEnv) -> None:
    await env.send(ADMIN, "/broadcast")
    await env.send_photo(ADMIN, caption="Summer sale")
    preview, controls = env.fake_telegram.chat(ADMIN.id)[-2:]
    assert preview.photo is not None and preview.caption == "Summer sale"
    env.fake_telegram.fail_next("sendPhoto", retry_after=1, after=50)
    await env.tap(ADMIN, "Send to 300")
    async with asyncio.timeout(30):  # until the job waits out Telegram's second
        while not any(c.error_code == 429 for c in env.fake_telegram.calls_to("sendPhoto")):  # noqa: ASYNC110 - the fake has no "request" event
            await asyncio.sleep(0.01)
    await env.tap(ADMIN, "Stop", controls.message_id)
    assert env.message(ADMIN, controls.message_id).text == (
        "⏹ Broadcast #1 stopped; the summary follows."
    )
    await asyncio.gather(*env.deps.admin.sender.jobs)

    _preview, *sent = [c for c in env.fake_telegram.calls_to("sendPhoto") if c.ok]
    photos = Counter(int(c.params["chat_id"]) for c in sent)
    assert set(photos.values()) == {1} and 50 <= sum(photos.values()) < 100
    summary = env.fake_telegram.chat(ADMIN.id)[-1].text or ""
    assert summary.startswith("📣 Broadcast #1 stopped: sent ")
    assert summary.endswith(f"not sent {300 - sum(photos.values())}.")
