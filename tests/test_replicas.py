"""Several replicas behind one webhook: FSM state in Redis, one poller and one catalogue sync at
a time.

These tests need a real Redis (TEST_REDIS_URL, set by .ci/run); they are skipped without one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.app import close_deps, create_bot, create_deps, create_storage
from bot.config import load_settings
from bot.dispatcher import create_dispatcher
from bot.leader import RedisLease, run_as_leader
from bot.runner import CATALOGUE_SYNC, _on_one_replica
from db.engine import create_engine, create_session_factory
from db.models import Order, OrderStatus
from services.catalogue import CatalogueService
from services.esimgo.client import EsimGoClient
from tests.conftest import REDIS_URL
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.helpers import ADMIN_ID, callback_update, make_user, message_update

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL not set")

# Generous guard against a hang; the tests wait on events, never on durations.
GUARD_SECONDS = 10


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def test_a_support_question_started_on_one_replica_is_finished_on_another(
    database_url: str, redis: Redis, fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo
) -> None:
    settings = load_settings(
        _env_file=None,
        bot_token=DEFAULT_TOKEN,
        esimgo_api_key=fake_esimgo.api_key,
        esimgo_base_url=fake_esimgo.base_url,
        telegram_api_base=fake_telegram.base_url,
        database_url=database_url,
        redis_url=REDIS_URL,
        admin_ids=frozenset({ADMIN_ID}),
    )
    bot = create_bot(settings)
    replicas = [await create_deps(settings, bot) for _ in range(2)]
    storages = [create_storage(settings) for _ in replicas]
    try:
        for deps in replicas:
            await deps.catalogue.sync()
        first, second = (
            create_dispatcher(deps, storage)
            for deps, storage in zip(replicas, storages, strict=True)
        )
        async with replicas[0].session_factory() as session:
            session.add(
                Order(
                    public_id="RPL0001",
                    telegram_user_id=1001,
                    chat_id=1001,
                    bundle_name="esim_1GB_7D_TH_V2",
                    country_code="TH",
                    country_name="Thailand",
                    cost=Decimal("1.25"),
                    price=125,
                    price_currency="XTR",
                    status=OrderStatus.DELIVERED.value,
                    iccid="8944500102198300001",
                )
            )
            await session.commit()
        alice = make_user(1001)

        message_id = fake_telegram.record_user_message(alice.id, "/paysupport")
        await first.feed_update(bot, message_update(alice, "/paysupport", message_id=message_id))
        screen = fake_telegram.last_bot_message(alice.id)
        pick = str(screen.button("Thailand")["callback_data"])
        await first.feed_update(bot, callback_update(alice, pick, screen.message_id))
        assert "Type your question" in (fake_telegram.last_bot_message(alice.id).text or "")

        question = "My eSIM shows no signal in Chiang Mai"
        message_id = fake_telegram.record_user_message(alice.id, question)
        await second.feed_update(bot, message_update(alice, question, message_id=message_id))

        to_admins = [
            str(call.params.get("text"))
            for call in fake_telegram.calls_to("sendMessage")
            if call.params.get("chat_id") == ADMIN_ID
        ]
        assert len(to_admins) == 1
        assert "RPL0001" in to_admins[0] and question in to_admins[0]
    finally:
        await bot.session.close()
        for storage in storages:
            await storage.close()
        for deps in replicas:
            await close_deps(deps)


class _Job:
    """A stand-in for the poll loop that records which replica runs it."""

    def __init__(self, running: list[str], name: str) -> None:
        self.running = running
        self.name = name
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    async def __call__(self) -> None:
        self.running.append(self.name)
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.running.remove(self.name)
            self.stopped.set()


async def test_only_one_replica_polls_and_another_takes_over_when_it_stops(redis: Redis) -> None:
    running: list[str] = []
    jobs = {name: _Job(running, name) for name in ("a", "b")}
    replicas = {
        name: asyncio.create_task(
            run_as_leader(RedisLease(redis, "status-poll", ttl_seconds=0.3), "status-poll", job)
        )
        for name, job in jobs.items()
    }
    try:
        waits = [asyncio.create_task(job.started.wait()) for job in jobs.values()]
        async with asyncio.timeout(GUARD_SECONDS):
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        (leader,) = running
        follower = "b" if leader == "a" else "a"
        # Several renewal intervals pass: the follower must still be waiting.
        for _ in range(5):
            await asyncio.sleep(0.1)
            assert running == [leader]

        replicas[leader].cancel()
        async with asyncio.timeout(GUARD_SECONDS):
            await jobs[follower].started.wait()
        assert running == [follower]
    finally:
        for task in replicas.values():
            task.cancel()
        await asyncio.gather(*replicas.values(), return_exceptions=True)
    assert running == []


async def test_a_replica_that_loses_its_lease_stops_polling(redis: Redis) -> None:
    running: list[str] = []
    job = _Job(running, "a")
    lease = RedisLease(redis, "status-poll", ttl_seconds=0.3)
    task = asyncio.create_task(run_as_leader(lease, "status-poll", job))
    try:
        async with asyncio.timeout(GUARD_SECONDS):
            await job.started.wait()
        # Another replica took the lease (say this one was paused longer than the lease lives).
        await redis.set(lease.key, "someone-else")
        async with asyncio.timeout(GUARD_SECONDS):
            await job.stopped.wait()
        assert running == []
        assert await redis.get(lease.key) == b"someone-else", "another's lease is left alone"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _CountingSource:
    """One replica's way to eSIM Go's catalogue: the real client, counted per replica."""

    def __init__(self, client: EsimGoClient) -> None:
        self.client = client
        self.fetches = 0

    async def fetch_catalogue_raw(self) -> list[dict[str, Any]]:
        self.fetches += 1
        return await self.client.fetch_catalogue_raw()


async def test_one_replica_syncs_the_catalogue_and_the_other_sells_at_its_new_prices(
    database_url: str, redis: Redis, fake_esimgo: FakeEsimGo
) -> None:
    settings = load_settings(
        _env_file=None,
        bot_token=DEFAULT_TOKEN,
        esimgo_api_key=fake_esimgo.api_key,
        esimgo_base_url=fake_esimgo.base_url,
        database_url=database_url,
        redis_url=REDIS_URL,
    )
    engine = create_engine(database_url)
    clients = [EsimGoClient(fake_esimgo.base_url, fake_esimgo.api_key) for _ in range(2)]
    sources = [_CountingSource(client) for client in clients]
    # A sync a second (the setting's minimum is a minute): the test waits for the second one.
    replicas = [
        CatalogueService(source, create_session_factory(engine), refresh_minutes=1 / 60)
        for source in sources
    ]
    tasks: list[asyncio.Task[None]] = []
    try:
        for catalogue in replicas:
            sync = catalogue.run_refresh_loop
            tasks.append(asyncio.create_task(_on_one_replica(settings, CATALOGUE_SYNC, sync)))
            tasks.append(asyncio.create_task(catalogue.run_follow_loop(interval_seconds=0.05)))
        name = "esim_1GB_7D_TH_V2"
        async with asyncio.timeout(GUARD_SECONDS):
            while any(c.catalogue.by_name(name) is None for c in replicas):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        old_price = replicas[0].catalogue.by_name(name).price  # type: ignore[union-attr]

        new_price = old_price + Decimal("1.11")
        next(b for b in fake_esimgo.catalogue if b["name"] == name)["price"] = float(new_price)

        def prices() -> list[Decimal | None]:
            return [getattr(c.catalogue.by_name(name), "price", None) for c in replicas]

        async with asyncio.timeout(GUARD_SECONDS):
            while prices() != [new_price, new_price]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        fetches = sorted(source.fetches for source in sources)
        assert fetches[0] == 0, f"only the lease holder calls eSIM Go's catalogue: {fetches}"
        assert fetches[1] >= 2
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.close()
        await engine.dispose()
