"""Broadcasts: every recipient gets the message exactly once, through a user who blocked the
bot, a 429 flood wait and a restart of the job; progress shown by editing one message."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from db.models import Broadcast, BroadcastRecipient, User
from services.admin.broadcast import BroadcastJob, Broadcasts
from services.ratelimit import RateLimiter
from tests.admin_helpers import ADMINS, add, add_users, make_order
from tests.fakes.telegram import FakeTelegram

ADMIN = ADMINS[0]
USERS = range(10_000, 10_300)
BLOCKS_NOW = 10_150  # blocks the bot before the broadcast reaches them
BLOCKED_BEFORE = 10_299  # Telegram told us earlier: not in the audience
TEXT = "🇯🇵 <b>New:</b> plans for <i>Japan</i> from 5 ⭐"


@pytest.fixture
async def audience(session_factory: async_sessionmaker[AsyncSession]) -> None:
    await add_users(session_factory, USERS[:-1])
    await add_users(session_factory, [BLOCKED_BEFORE], blocked_at=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def broadcasts(session_factory: async_sessionmaker[AsyncSession]) -> Broadcasts:
    return Broadcasts(session_factory, default_language="en")


def received(fake: FakeTelegram) -> Counter[int]:
    """How many times each user got the broadcast."""
    return Counter(
        int(c.params["chat_id"])
        for c in fake.calls_to("sendMessage")
        if c.ok and c.params["chat_id"] in USERS
    )


def everyone_once(fake: FakeTelegram) -> None:
    counts = received(fake)
    assert set(counts.values()) == {1}
    assert set(counts) == set(USERS) - {BLOCKS_NOW, BLOCKED_BEFORE}


async def started(broadcasts: Broadcasts, audience: str = "all") -> int:
    draft = await broadcasts.draft(ADMIN, ADMIN, TEXT, None, audience)
    assert await broadcasts.start(draft.broadcast_id) == draft.recipients
    return draft.broadcast_id


async def test_everyone_once_through_a_block_and_a_flood_wait(
    session_factory: async_sessionmaker[AsyncSession],
    broadcasts: Broadcasts,
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
    audience: None,
) -> None:
    draft = await broadcasts.draft(ADMIN, ADMIN, TEXT, None, "all")
    assert draft.recipients == 299
    assert await broadcasts.start(draft.broadcast_id) == 299
    assert await broadcasts.start(draft.broadcast_id) is None  # Send pressed twice
    fake_telegram.blocked_chats.add(BLOCKS_NOW)
    fake_telegram.fail_next("sendMessage", retry_after=1, after=150)

    job = BroadcastJob(session_factory, messenger, rate=1000, batch=10, progress_every=0)
    progress = await job.run(draft.broadcast_id)

    everyone_once(fake_telegram)
    assert [c.error_code for c in fake_telegram.calls_to("sendMessage") if not c.ok] == [429, 403]
    assert progress is not None
    assert (progress.status, progress.sent, progress.failed, progress.left) == ("done", 298, 1, 0)
    async with session_factory() as session:
        blocked = await session.scalar(
            select(User.blocked_at).where(User.telegram_id == BLOCKS_NOW)
        )
    assert blocked is not None
    # Progress: one message in the admin's chat, edited as it went; then a summary.
    progress_message, summary = fake_telegram.chat(ADMIN)
    assert progress_message.text == "📣 Broadcast #1: sent 298 · failed 1 · left 0"
    assert progress_message.edits > 1
    assert summary.text == (
        "📣 Broadcast #1 finished: sent 298, failed 1 (1 blocked the bot and are no longer "
        "sent to), not sent 0."
    )
    # The formatting arrived as the admin wrote it.
    assert fake_telegram.calls_to("sendMessage")[0].params["text"] == TEXT
    # A finished broadcast is not sent again.
    assert await BroadcastJob(session_factory, messenger).run(draft.broadcast_id) is None
    assert len(received(fake_telegram)) == 298


async def test_a_restarted_job_sends_nobody_a_second_message(
    session_factory: async_sessionmaker[AsyncSession],
    broadcasts: Broadcasts,
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
    audience: None,
) -> None:
    broadcast_id = await started(broadcasts)
    fake_telegram.blocked_chats.add(BLOCKS_NOW)
    fake_telegram.fail_next("sendMessage", retry_after=30, after=120)
    flood_wait = asyncio.Event()

    async def sleep(seconds: float) -> None:
        if seconds > 10:
            flood_wait.set()  # the job is waiting out the 429, nothing under way
        await asyncio.sleep(seconds)

    first = BroadcastJob(
        session_factory, messenger, batch=1, limiter=RateLimiter(1000, sleep=sleep)
    )
    run = asyncio.create_task(first.run(broadcast_id))
    await flood_wait.wait()
    run.cancel()  # the process stops
    assert await asyncio.gather(run, return_exceptions=True) != [None]
    before = received(fake_telegram)
    assert 100 < len(before) < 299

    second = BroadcastJob(session_factory, messenger, rate=1000, batch=10)
    progress = await second.run(broadcast_id)
    everyone_once(fake_telegram)
    assert progress is not None and (progress.sent, progress.failed) == (298, 1)


async def test_sends_under_way_when_a_job_died_are_never_repeated(
    session_factory: async_sessionmaker[AsyncSession],
    broadcasts: Broadcasts,
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
    audience: None,
) -> None:
    broadcast_id = await started(broadcasts)
    in_flight = [10_000, 10_001]  # a job was sending to these when its process was killed
    async with session_factory() as session:
        await session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id)
            .values(runner="broadcast-dead", heartbeat_at=datetime.now(UTC))
        )
        await session.execute(
            update(BroadcastRecipient)
            .where(BroadcastRecipient.telegram_user_id.in_(in_flight))
            .values(status="sending")
        )
        await session.commit()

    # While its heartbeat is fresh, no other job takes the broadcast over...
    assert await broadcasts.resumable() == []
    assert await BroadcastJob(session_factory, messenger).run(broadcast_id) is None

    # ... once it is older than a minute, the next one does.
    def later() -> datetime:
        return datetime.now(UTC) + timedelta(minutes=2)

    later_broadcasts = Broadcasts(session_factory, default_language="en", clock=later)
    assert await later_broadcasts.resumable() == [broadcast_id]
    progress = await BroadcastJob(session_factory, messenger, rate=1000, clock=later).run(
        broadcast_id
    )
    assert progress is not None and (progress.sent, progress.failed) == (297, 2)
    counts = received(fake_telegram)
    assert not any(counts[user] for user in in_flight)
    assert set(counts.values()) == {1} and len(counts) == 297


async def test_audiences_and_a_photo_broadcast_in_one_language(
    session_factory: async_sessionmaker[AsyncSession],
    broadcasts: Broadcasts,
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
) -> None:
    await add(
        session_factory,
        User(telegram_id=1, language="ru", telegram_language="en"),  # chose Russian
        User(telegram_id=2, telegram_language="ru-RU"),
        User(telegram_id=3, telegram_language="de"),  # unsupported: the default, English
        User(telegram_id=4),
        User(telegram_id=5, language="en", telegram_language="ru"),
        User(telegram_id=6, telegram_language="ru", blocked_at=datetime.now(UTC)),
        make_order(telegram_user_id=1),  # a buyer
        make_order(telegram_user_id=2, status="refunded"),
        make_order(telegram_user_id=6),  # a buyer who blocked the bot
    )
    assert await broadcasts.count("all") == 5
    assert await broadcasts.count("buyers") == 1
    assert await broadcasts.count("lang:ru") == 2
    assert await broadcasts.count("lang:en") == 3
    with pytest.raises(ValueError, match="unknown audience"):
        await broadcasts.count("lang:xx")

    draft = await broadcasts.draft(
        ADMIN, ADMIN, "Скидка <b>20%</b>", "AgACAgIAAxkBAAIBQ2Zf", "lang:ru"
    )
    assert draft.recipients == 2
    await broadcasts.start(draft.broadcast_id)
    await BroadcastJob(session_factory, messenger, rate=1000).run(draft.broadcast_id)
    photos = [c for c in fake_telegram.calls_to("sendPhoto") if c.ok]
    assert sorted(c.params["chat_id"] for c in photos) == [1, 2]
    assert {c.params["caption"] for c in photos} == {"Скидка <b>20%</b>"}


async def test_a_cancelled_broadcast_stops(
    session_factory: async_sessionmaker[AsyncSession],
    broadcasts: Broadcasts,
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
    audience: None,
) -> None:
    draft = await broadcasts.draft(ADMIN, ADMIN, TEXT, None, "all")
    assert await broadcasts.cancel(draft.broadcast_id)
    assert await broadcasts.start(draft.broadcast_id) is None
    assert received(fake_telegram) == Counter()

    broadcast_id = await started(broadcasts)
    fake_telegram.fail_next("sendMessage", retry_after=1, after=40)
    flood_wait = asyncio.Event()

    async def sleep(seconds: float) -> None:
        if seconds > 0.5:
            flood_wait.set()
        await asyncio.sleep(seconds)

    job = BroadcastJob(session_factory, messenger, limiter=RateLimiter(1000, sleep=sleep))
    run = asyncio.create_task(job.run(broadcast_id))
    await flood_wait.wait()
    assert await broadcasts.cancel(broadcast_id)  # while the job waits out the 429
    progress = await run  # it stops after the batch it is in
    assert progress is not None and progress.status == "cancelled"
    assert progress.sent >= 40 and progress.left > 200
    assert progress.sent + progress.left == 299
    assert fake_telegram.last_bot_message(ADMIN).text == (
        f"📣 Broadcast #{broadcast_id} stopped: sent {progress.sent}, failed 0 (0 blocked the "
        f"bot and are no longer sent to), not sent {progress.left}."
    )
    assert await broadcasts.resumable() == []
    assert sum(received(fake_telegram).values()) == progress.sent


async def test_pace_stays_under_the_rate(
    session_factory: async_sessionmaker[AsyncSession],
    broadcasts: Broadcasts,
    messenger: AiogramMessenger,
) -> None:
    await add_users(session_factory, range(1, 51))
    virtual = [0.0]

    async def sleep(seconds: float) -> None:
        virtual[0] += seconds

    limiter = RateLimiter(25, clock=lambda: virtual[0], sleep=sleep)
    broadcast_id = await started(broadcasts)
    progress = await BroadcastJob(session_factory, messenger, limiter=limiter).run(broadcast_id)
    assert progress is not None and progress.sent == 50
    # 50 messages and the progress edits, one every 1/25 s at most.
    assert virtual[0] >= 49 / 25
