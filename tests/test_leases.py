"""Leases that follow the worker: short, renewed while it works, checked before buying; and an
order whose storing keeps failing ends where an operator sees it instead of looping."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import update

from db.base import utcnow
from db.models import Order, OrderStatus
from services.fulfilment import WorkerSettings
from tests.helpers import ADMIN_ID, BotEnv, make_user
from tests.test_fulfilment import (
    Clock,
    leave_fulfilling,
    make_worker,
    messages_to,
    paid_order,
    photos,
)
from tests.test_purchase import load_order, transactions

# Refunds, adoption and leases move money: they run on PostgreSQL too (tests/helpers.py).
ON_EVERY_DATABASE = True

# Generous guard against a hang; the tests wait on what happened, never on durations.
GUARD_SECONDS = 30


async def lease_until(env: BotEnv, public_id: str) -> datetime | None:
    return (await load_order(env, public_id)).lease_until


async def test_a_lease_is_short_by_default() -> None:
    assert WorkerSettings().lease <= timedelta(seconds=30)


async def test_a_slow_purchase_keeps_its_lease_and_no_other_worker_buys_again(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    public_id = await paid_order(env)
    short = WorkerSettings(lease=timedelta(seconds=3))
    # eSIM Go takes twice the lease to answer, then buys (as a slow day does).
    env.fake_esimgo.fail_next("POST /orders:transaction", status=200, delay=6)
    first = make_worker(env, worker_id="first", settings=short)
    second = make_worker(env, worker_id="second", settings=short)
    working = asyncio.create_task(first.run_once())
    async with asyncio.timeout(GUARD_SECONDS):
        while not transactions(env):  # noqa: ASYNC110 - the fake has no hook; bounded above
            await asyncio.sleep(0.05)
        taken = await lease_until(env, public_id)
        while await lease_until(env, public_id) == taken:
            await second.run_once()  # the other replica keeps looking for due orders
            await asyncio.sleep(0.1)
        while not working.done():
            await second.run_once()
            await asyncio.sleep(0.1)
    await working
    assert transactions(env) == 1
    assert len(env.fake_esimgo.orders) == 1
    assert photos(env) == 1
    assert (await load_order(env, public_id)).status == OrderStatus.DELIVERED


async def test_a_worker_that_lost_its_lease_stops_waiting_and_does_not_buy(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    public_id = await paid_order(env)
    await leave_fulfilling(env, public_id)  # a crashed worker's order: look before buying
    env.fake_esimgo.fail_next("GET /orders", status=200, delay=600)  # eSIM Go hangs
    worker = make_worker(env, settings=WorkerSettings(lease=timedelta(seconds=1.5)))
    working = asyncio.create_task(worker.run_once())
    async with asyncio.timeout(GUARD_SECONDS):
        while not env.fake_esimgo.calls("GET /orders"):  # noqa: ASYNC110 - bounded above
            await asyncio.sleep(0.02)
    # While it waits, another replica takes the order over (this one was paused too long).
    async with env.deps.session_factory() as session:
        await session.execute(
            update(Order)
            .where(Order.public_id == public_id)
            .values(lease_owner="another-replica", lease_until=utcnow() + timedelta(minutes=5))
        )
        await session.commit()
    async with asyncio.timeout(GUARD_SECONDS):  # far below eSIM Go's 60 s order timeout
        await working
    assert transactions(env) == 0
    order = await load_order(env, public_id)
    assert order.lease_owner == "another-replica" and order.status == OrderStatus.FULFILLING


async def test_an_order_that_cannot_be_stored_is_failed_refunded_and_reported_not_retried_forever(
    bot_env: BotEnv,
) -> None:
    env, clock = bot_env, Clock()
    alice = make_user(6001)
    public_id = await paid_order(env, alice)
    # eSIM Go sells an eSIM whose activation code cannot be put in an LPA string.
    broken = env.fake_esimgo.add_esim(matchingId="K2$BROKEN")
    env.fake_esimgo.reissue_iccids.append(broken["iccid"])
    worker = make_worker(env, clock=clock)
    for _ in range(12):
        await worker.run_once()
        clock.advance(minutes=10)

    order = await load_order(env, public_id)
    assert order.status == OrderStatus.REFUNDED
    assert transactions(env) == 1, "bought once"
    assert order.esimgo_order_reference == env.fake_esimgo.orders[0]["orderReference"]
    assert photos(env) == 0
    [refund] = env.fake_telegram.calls_to("refundStarPayment")
    assert refund.ok and refund.params["user_id"] == alice.id
    alerts = [str(c.params["text"]) for c in messages_to(env, ADMIN_ID)]
    assert any(public_id in a and str(order.esimgo_order_reference) in a for a in alerts)
