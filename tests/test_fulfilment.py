"""The fulfilment worker: retries, reconciliation, restarts, races, delivery failures, refunds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from aiogram.types import User
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from db.base import utcnow
from db.models import Esim, Order, OrderStatus
from db.models.events import USER, WORKER
from db.repositories.orders import OrderRepository
from handlers.callbacks import install_help_callback_data, open_esim_callback_data
from services.catalogue import CatalogueService
from services.esimgo.client import EsimGoClient, Timeouts
from services.fulfilment import FulfilmentWorker, WorkerSettings, create_fulfilment_worker
from services.orders import OrderService, PaymentOutcome, ReceivedPayment
from services.pricing import PricingService
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import ApiCall
from tests.helpers import ADMIN_ID, BotEnv, make_user
from tests.test_purchase import GB, get_invoice, load_order, open_confirmation, pay, transactions

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True


class Clock:
    """The worker's clock; tests move it forward instead of sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def make_worker(
    env: BotEnv,
    *,
    clock: Clock | None = None,
    esimgo: EsimGoClient | None = None,
    worker_id: str | None = None,
    settings: WorkerSettings | None = None,
) -> FulfilmentWorker:
    """The worker as production builds it, on a test clock (and other knobs) when given."""
    return create_fulfilment_worker(
        session_factory=env.deps.session_factory,
        esimgo=esimgo or env.deps.esimgo,
        messenger=AiogramMessenger(env.bot),
        translator=env.deps.translator,
        alerts=env.deps.alerts,
        orders=env.deps.orders,
        catalogue=env.deps.catalogue,
        wake_event=env.deps.fulfilment_wake,
        install_help_callback=install_help_callback_data(),
        open_esim_callback=open_esim_callback_data,
        settings=settings,
        worker_id=worker_id,
        clock=clock or Clock(),
    )


async def paid_order(env: BotEnv, user: User | None = None) -> str:
    """An order paid through the bot, not yet fulfilled; returns its public id."""
    user = user or make_user(2001)
    await open_confirmation(env, user)
    invoice = await get_invoice(env, user)
    await pay(env, user, invoice, charge_id=f"charge-{user.id}")
    return str(invoice.params["payload"])


def messages_to(env: BotEnv, chat_id: int) -> list[ApiCall]:
    return [c for c in env.fake_telegram.calls_to("sendMessage") if c.params["chat_id"] == chat_id]


def photos(env: BotEnv) -> int:
    return len([c for c in env.fake_telegram.calls_to("sendPhoto") if c.ok])


@pytest.fixture
async def slow_orders_client(fake_esimgo: FakeEsimGo) -> AsyncIterator[EsimGoClient]:
    """A client that gives up on POST /orders after half a second (production waits 60 s)."""
    client = EsimGoClient(fake_esimgo.base_url, fake_esimgo.api_key, timeouts=Timeouts(orders=0.5))
    yield client
    await client.close()


@pytest.mark.parametrize("status", [500, 503])
async def test_a_failed_transaction_is_retried_and_delivered_once(
    bot_env: BotEnv, status: int
) -> None:
    env, clock = bot_env, Clock()
    public_id = await paid_order(env)
    env.fake_esimgo.fail_next("POST /orders:transaction", status=status)
    worker = make_worker(env, clock=clock)

    await worker.run_once()
    assert photos(env) == 0
    order = await load_order(env, public_id)
    assert order.status == OrderStatus.FULFILLING and order.next_attempt_at is not None
    await worker.run_once()  # backing off: nothing happens yet
    assert transactions(env) == 1

    clock.advance(seconds=30)
    await worker.run_once()
    assert photos(env) == 1
    assert transactions(env) == 2
    assert len(env.fake_esimgo.orders) == 1
    assert len(env.fake_esimgo.calls("GET /orders")) == 1  # looked before buying again
    assert (await load_order(env, public_id)).status == OrderStatus.DELIVERED


async def test_a_transaction_timeout_is_retried_and_delivered_once(
    bot_env: BotEnv, slow_orders_client: EsimGoClient
) -> None:
    env, clock = bot_env, Clock()
    public_id = await paid_order(env)
    env.fake_esimgo.fail_next("POST /orders:transaction", status=500, delay=5)
    worker = make_worker(env, clock=clock, esimgo=slow_orders_client)
    await worker.run_once()
    assert photos(env) == 0
    clock.advance(seconds=30)
    await worker.run_once()
    assert photos(env) == 1
    assert len(env.fake_esimgo.orders) == 1
    assert (await load_order(env, public_id)).status == OrderStatus.DELIVERED


@pytest.mark.parametrize("hang", [False, True], ids=["500", "timeout"])
async def test_an_order_created_but_unanswered_is_adopted_not_bought_twice(
    bot_env: BotEnv, slow_orders_client: EsimGoClient, hang: bool
) -> None:
    env, clock = bot_env, Clock()
    public_id = await paid_order(env)
    env.fake_esimgo.fail_next(
        "POST /orders:transaction", status=500, create_then_fail=True, delay=5 if hang else None
    )
    worker = make_worker(env, clock=clock, esimgo=slow_orders_client)
    await worker.run_once()
    assert len(env.fake_esimgo.orders) == 1 and photos(env) == 0
    clock.advance(seconds=30)
    await worker.run_once()
    assert transactions(env) == 1
    assert len(env.fake_esimgo.orders) == 1
    assert photos(env) == 1
    order = await load_order(env, public_id)
    assert order.esimgo_order_reference == env.fake_esimgo.orders[0]["orderReference"]


async def test_a_permanent_failure_is_refunded_once_and_the_user_told(bot_env: BotEnv) -> None:
    env = bot_env
    public_id = await paid_order(env)
    env.fake_esimgo.catalogue = [b for b in env.fake_esimgo.catalogue if b["name"] != GB]
    worker = make_worker(env)
    await worker.run_once()
    await worker.run_once()
    refunds = env.fake_telegram.calls_to("refundStarPayment")
    assert len(refunds) == 1
    order = await load_order(env, public_id)
    assert order.status == OrderStatus.REFUNDED and order.refunded_at is not None
    assert refunds[0].params["telegram_payment_charge_id"] == order.telegram_payment_charge_id
    assert refunds[0].ok and refunds[0].params["user_id"] == order.telegram_user_id
    told = [
        c
        for c in env.fake_telegram.calls_to("sendMessage")
        if c.params["chat_id"] == order.chat_id and "refunded" in str(c.params.get("text"))
    ]
    assert len(told) == 1
    admin = messages_to(env, ADMIN_ID)
    assert admin and public_id in str(admin[-1].params["text"])
    assert photos(env) == 0


async def test_a_missed_deadline_is_refunded_after_looking_for_the_order(bot_env: BotEnv) -> None:
    env, clock = bot_env, Clock()
    public_id = await paid_order(env)
    env.fake_esimgo.fail_next("POST /orders:transaction", status=503, times=100)
    worker = make_worker(env, clock=clock)
    await worker.run_once()
    clock.advance(minutes=16)
    await worker.run_once()
    assert transactions(env) == 1
    assert len(env.fake_esimgo.calls("GET /orders")) == 1
    assert len(env.fake_telegram.calls_to("refundStarPayment")) == 1
    assert (await load_order(env, public_id)).status == OrderStatus.REFUNDED


async def leave_fulfilling(env: BotEnv, public_id: str) -> None:
    """What a worker that died in the middle of POST /orders leaves behind."""
    now = utcnow()
    async with env.deps.session_factory() as session:
        await session.execute(
            update(Order)
            .where(Order.public_id == public_id)
            .values(
                status=OrderStatus.FULFILLING.value,
                lease_owner="dead-worker",
                lease_until=now - timedelta(seconds=1),
                last_attempt_at=now - timedelta(seconds=5),
                attempts=1,
            )
        )
        await session.commit()


async def test_after_a_restart_an_order_left_fulfilling_is_adopted_once(bot_env: BotEnv) -> None:
    env = bot_env
    public_id = await paid_order(env)
    await leave_fulfilling(env, public_id)
    placed = await env.deps.esimgo.create_order(GB)  # the dead worker's order went through

    worker = make_worker(env)
    await worker.run_once()
    await worker.run_once()
    assert transactions(env) == 1
    assert photos(env) == 1
    assert (await load_order(env, public_id)).esimgo_order_reference == placed.reference


async def test_after_a_restart_an_order_never_placed_is_placed_once(bot_env: BotEnv) -> None:
    env = bot_env
    public_id = await paid_order(env)
    await leave_fulfilling(env, public_id)
    worker = make_worker(env)
    await worker.run_once()
    await worker.run_once()
    assert transactions(env) == 1 and photos(env) == 1
    assert (await load_order(env, public_id)).status == OrderStatus.DELIVERED


async def test_two_workers_racing_fulfil_an_order_once(bot_env: BotEnv) -> None:
    env = bot_env
    ids = [await paid_order(env, make_user(2100 + n)) for n in range(3)]
    first, second = make_worker(env, worker_id="one"), make_worker(env, worker_id="two")
    await asyncio.gather(first.run_once(), second.run_once(), first.run_once())
    assert transactions(env) == 3
    assert photos(env) == 3
    for public_id in ids:
        assert (await load_order(env, public_id)).delivered_at is not None


async def test_a_flood_wait_on_the_photo_is_retried_without_buying_again(
    bot_env: BotEnv,
) -> None:
    env, clock = bot_env, Clock()
    public_id = await paid_order(env)
    env.fake_telegram.fail_next("sendPhoto", retry_after=3)
    worker = make_worker(env, clock=clock)
    await worker.run_once()
    order = await load_order(env, public_id)
    assert order.status == OrderStatus.DELIVERED and order.delivered_at is None
    clock.advance(seconds=5)
    await worker.run_once()
    assert photos(env) == 1
    assert transactions(env) == 1
    assert (await load_order(env, public_id)).delivered_at is not None


async def test_a_user_who_blocked_the_bot_keeps_the_esim_and_is_not_retried(
    bot_env: BotEnv,
) -> None:
    env, clock = bot_env, Clock()
    public_id = await paid_order(env)
    env.fake_telegram.fail_next("sendPhoto", error_code=403)
    worker = make_worker(env, clock=clock)
    await worker.run_once()
    clock.advance(hours=1)
    await worker.run_once()
    assert len(env.fake_telegram.calls_to("sendPhoto")) == 1
    order = await load_order(env, public_id)
    assert order.status == OrderStatus.DELIVERED
    assert order.delivered_at is None and order.next_attempt_at is None
    async with env.deps.session_factory() as session:
        esim = (await session.execute(select(Esim))).scalar_one()
    assert esim.iccid == order.iccid and esim.telegram_user_id == order.telegram_user_id
    assert not env.fake_telegram.calls_to("refundStarPayment")


async def test_a_buyer_who_blocked_the_bot_gets_the_esim_when_they_write_again(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice = make_user(2001)
    public_id = await paid_order(env, alice)
    env.fake_telegram.fail_next("sendPhoto", error_code=403)
    worker = make_worker(env)
    await worker.run_once()
    await worker.run_once()
    assert photos(env) == 0

    await env.send(alice, "/start")  # unblocked the bot and wrote to it
    await worker.run_once()

    [photo] = [c for c in env.fake_telegram.calls_to("sendPhoto") if c.ok]
    assert photo.params["chat_id"] == alice.id
    order = await load_order(env, public_id)
    assert order.delivered_at is not None and str(order.iccid) in str(photo.params["caption"])
    assert transactions(env) == 1


async def test_a_purchase_that_cost_more_than_validated_is_delivered_and_alerted(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    public_id = await paid_order(env)
    validated = (await load_order(env, public_id)).cost
    bundle = env.fake_esimgo.bundle(GB)
    assert bundle is not None
    bundle["price"] = 9.75  # eSIM Go's price rose between the validate and the purchase
    await make_worker(env).run_once()

    assert photos(env) == 1
    alerts = [str(c.params["text"]) for c in messages_to(env, ADMIN_ID)]
    assert any(public_id in a and "9.75" in a and f"{validated:g}" in a for a in alerts)


async def test_a_payment_wakes_the_running_worker_at_once(bot_env: BotEnv) -> None:
    env = bot_env
    worker = make_worker(env, settings=WorkerSettings(poll_seconds=300))
    task = asyncio.create_task(worker.run())
    try:
        await paid_order(env)
        async with asyncio.timeout(10):  # far below the 300 s poll: only the wake-up can do it
            while photos(env) == 0:  # noqa: ASYNC110 - the fake has no hook; bounded above
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert transactions(env) == 1


async def test_a_fiat_refund_is_left_to_the_admins(bot_env: BotEnv) -> None:
    env = bot_env
    now = utcnow()
    async with env.deps.session_factory() as session:
        session.add(
            Order(
                public_id="FIATFAILED",
                telegram_user_id=2200,
                chat_id=2200,
                language="en",
                kind="new",
                bundle_name=GB,
                cost=Decimal("1.5"),
                cost_currency="USD",
                price=499,
                price_currency="USD",
                status=OrderStatus.FAILED.value,
                attempts=0,
                telegram_payment_charge_id="fiat-charge",
                provider_payment_charge_id="stripe-ch_1",
                failure_reason="rejected: bundle gone",
                paid_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()
    await make_worker(env).run_once()
    assert not env.fake_telegram.calls_to("refundStarPayment")
    assert (await load_order(env, "FIATFAILED")).status == OrderStatus.REFUND_DUE
    admin = messages_to(env, ADMIN_ID)
    assert len(admin) == 1 and "stripe-ch_1" in str(admin[0].params["text"])
    user = messages_to(env, 2200)
    assert len(user) == 1 and "$4.99" in str(user[0].params["text"])


# -- storage: guarded transitions on SQLite and PostgreSQL ---------------------------------------


@pytest.fixture
async def order_service(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[OrderService]:
    client = EsimGoClient("http://127.0.0.1:9/v2.4", "unused")  # never called here
    catalogue = CatalogueService(client, session_factory, refresh_minutes=360)
    yield OrderService(client, catalogue, PricingService(Decimal(30), Decimal("0.013"), "XTR"))
    await client.close()


async def new_order(session_factory: async_sessionmaker[AsyncSession], public_id: str) -> int:
    now = utcnow()
    async with session_factory() as session:
        order = Order(
            public_id=public_id,
            telegram_user_id=3001,
            chat_id=3001,
            language="en",
            kind="new",
            bundle_name=GB,
            cost=Decimal("1.5"),
            cost_currency="USD",
            price=150,
            price_currency="XTR",
            status=OrderStatus.AWAITING_PAYMENT.value,
            attempts=0,
            expires_at=now + timedelta(days=1),
            created_at=now,
            updated_at=now,
        )
        await OrderRepository(session).add(order)
        await session.commit()
        return order.id


async def test_only_one_of_two_concurrent_transitions_wins(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(session_factory, "RACE000001")

    async def attempt(charge: str) -> bool:
        async with session_factory() as session:
            won = await OrderRepository(session).transition(
                order_id,
                OrderStatus.AWAITING_PAYMENT,
                OrderStatus.PAID,
                actor=USER,
                telegram_payment_charge_id=charge,
            )
            await session.commit()
            return won

    results = await asyncio.gather(attempt("a"), attempt("b"))
    assert sorted(results) == [False, True]
    async with session_factory() as session:
        order = await OrderRepository(session).get(order_id)
    assert order is not None and order.status == OrderStatus.PAID
    assert order.telegram_payment_charge_id == ("a" if results[0] else "b")


async def test_a_payment_is_recorded_once_and_a_second_charge_kept_for_refund(
    session_factory: async_sessionmaker[AsyncSession], order_service: OrderService
) -> None:
    await new_order(session_factory, "PAYONCE001")

    async def record(charge: str) -> PaymentOutcome:
        async with session_factory() as session:
            payment = ReceivedPayment("PAYONCE001", 3001, 150, "XTR", charge)
            result = await order_service.record_payment(session, payment)
            return result.outcome

    assert await record("c1") is PaymentOutcome.RECORDED
    assert await record("c1") is PaymentOutcome.DUPLICATE
    assert await record("c2") is PaymentOutcome.REFUND
    assert await record("c2") is PaymentOutcome.DUPLICATE
    async with session_factory() as session:
        rows = (await session.execute(select(Order).order_by(Order.id))).scalars().all()
    assert [(o.status, o.telegram_payment_charge_id) for o in rows] == [
        (OrderStatus.PAID, "c1"),
        (OrderStatus.FAILED, "c2"),
    ]


async def test_a_lease_is_exclusive_until_it_expires(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(session_factory, "LEASE00001")
    async with session_factory() as session:
        await OrderRepository(session).transition(
            order_id, OrderStatus.AWAITING_PAYMENT, OrderStatus.PAID, actor=USER
        )
        await session.commit()
    now = utcnow()

    async def lease(token: str, at: datetime) -> list[Order]:
        async with session_factory() as session:
            leased = await OrderRepository(session).lease_due(
                token, at, at + timedelta(minutes=3), 10, actor=WORKER
            )
            await session.commit()
            return leased

    racing = await asyncio.gather(lease("one", now), lease("two", now))
    assert sorted(len(leased) for leased in racing) == [0, 1]
    assert await lease("three", now + timedelta(minutes=1)) == []
    [order] = await lease("three", now + timedelta(minutes=4))
    assert order.lease_owner == "three"
    async with session_factory() as session:
        due = await OrderRepository(session).due_ids(now + timedelta(minutes=5), 10)
    assert (order.status, order.attempts) == ("fulfilling", 2)
    assert order.last_attempt_at is not None
    assert abs(order.last_attempt_at - now) < timedelta(seconds=1)  # set by the first lease
    assert due == []  # still leased by "three" until now + 7 min


async def test_unpaid_orders_expire(
    session_factory: async_sessionmaker[AsyncSession], order_service: OrderService
) -> None:
    order_id = await new_order(session_factory, "EXPIRE0001")
    async with session_factory() as session:
        assert await order_service.expire_unpaid(session) == 0
        await session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
        assert await order_service.expire_unpaid(session) == 1
        order = await OrderRepository(session).get(order_id)
        events = await OrderRepository(session).events(order_id)
    assert order is not None and order.status == OrderStatus.CANCELLED
    assert [(e.from_status, e.to_status, e.actor, e.note) for e in events] == [
        ("awaiting_payment", "cancelled", WORKER, "expired")
    ]
