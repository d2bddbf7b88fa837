"""Replicas (`create_deps` on one Redis) share one eSIM Go budget, as the fake eSIM Go counts it.

Needs a real Redis (TEST_REDIS_URL); skipped without one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.app import close_deps, create_bot, create_deps
from bot.config import load_settings
from bot.deps import AppDeps
from services.budget import RequestBudget, background_work
from services.budget.redis_slots import RedisSlots
from services.esimgo.client import EsimGoClient
from services.esimgo.errors import RateLimitedError
from tests.conftest import REDIS_URL
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram import DEFAULT_TOKEN

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL not set")

ESIMGO_LIMIT = 10  # requests per second per account
RATE = 9  # ESIMGO_REQUESTS_PER_SECOND's default: one second of budget


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def replicas(
    redis: Redis, sqlite_url: str, fake_esimgo: FakeEsimGo
) -> AsyncIterator[list[AppDeps]]:
    settings = load_settings(
        _env_file=None,
        bot_token=DEFAULT_TOKEN,
        esimgo_api_key=fake_esimgo.api_key,
        esimgo_base_url=fake_esimgo.base_url,
        database_url=sqlite_url,
        redis_url=REDIS_URL,
    )
    bots = [create_bot(settings) for _ in range(3)]
    started = [await create_deps(settings, bot) for bot in bots]
    yield started
    for deps, bot in zip(started, bots, strict=True):
        await close_deps(deps)
        await bot.session.close()


async def test_three_replicas_together_stay_under_the_accounts_10_requests_per_second(
    replicas: list[AppDeps], fake_esimgo: FakeEsimGo
) -> None:
    fake_esimgo.limit_requests(ESIMGO_LIMIT, window=1.0)
    calls = [deps.esimgo.get_organisation() for deps in replicas for _ in range(10)]
    await asyncio.gather(*calls)
    assert len(fake_esimgo.requests) == 30
    assert fake_esimgo.max_requests_in_window(1.0) <= ESIMGO_LIMIT
    assert fake_esimgo.rate_limited == 0


async def test_a_429_seen_by_one_replica_pauses_the_others(
    replicas: list[AppDeps], fake_esimgo: FakeEsimGo
) -> None:
    first, second, _ = replicas
    fake_esimgo.fail_next("POST /orders", 429, headers={"Retry-After": "1"})
    with pytest.raises(RateLimitedError):
        await first.esimgo.create_order("esim_1GB_7D_GB_V2")
    await second.esimgo.get_organisation()
    limited, after = fake_esimgo.requests
    assert after.at - limited.at >= 1.0, "the other replica called during the Retry-After"


async def test_a_paid_order_on_one_replica_overtakes_background_calls_queued_on_others(
    replicas: list[AppDeps], fake_esimgo: FakeEsimGo
) -> None:
    polling, syncing, selling = replicas
    iccid = fake_esimgo.add_esim()["iccid"]
    with background_work():
        burst = [
            asyncio.create_task(deps.esimgo.get_esim(iccid))
            for deps in (polling, syncing)
            for _ in range(25)
        ]
    await fake_esimgo.wait_for_requests()
    result = await selling.esimgo.create_order("esim_1GB_7D_GB_V2")
    for task in burst:
        task.cancel()
    await asyncio.gather(*burst, return_exceptions=True)
    assert result.esims
    position = [r.route for r in fake_esimgo.requests].index("POST /orders")
    assert position <= RATE, f"the paid order waited behind {position} background calls"


async def test_sales_go_on_at_a_replicas_share_while_redis_is_unreachable(
    redis: Redis, fake_esimgo: FakeEsimGo, caplog: pytest.LogCaptureFixture
) -> None:
    target = redis.get_connection_kwargs()
    proxy = TcpProxy(str(target.get("host", "127.0.0.1")), int(target.get("port", 6379)))
    await proxy.start()
    url = f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}"
    clients = [
        EsimGoClient(
            fake_esimgo.base_url,
            fake_esimgo.api_key,
            budget=RequestBudget(
                RATE,
                shared=RedisSlots.from_url(
                    url, RATE, account=fake_esimgo.api_key, retry_redis_after=0.5
                ),
            ),
        )
        for _ in range(3)
    ]
    try:
        for _ in range(2):  # every replica has now seen the other two
            await asyncio.gather(*(client.get_organisation() for client in clients))
        proxy.cut()
        fake_esimgo.requests.clear()
        await asyncio.gather(*(client.get_organisation() for client in clients for _ in range(4)))
        assert len(fake_esimgo.requests) == 12, "no sale waits for Redis"
        # Three replicas seen, so each paces alone at a third of the rate.
        assert fake_esimgo.max_requests_in_window(1.0) <= ESIMGO_LIMIT
        unreachable = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(unreachable) == 3 and all("1/3" in r.getMessage() for r in unreachable)

        proxy.restore()
        await asyncio.sleep(0.5)  # the replicas ask Redis again after this long
        caplog.clear()
        caplog.set_level(logging.INFO, logger="services.budget")
        await asyncio.gather(*(client.get_organisation() for client in clients))
        assert sum("Redis answers again" in r.getMessage() for r in caplog.records) == 3
    finally:
        for client in clients:
            await client.close()
        await proxy.close()
