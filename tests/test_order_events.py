"""Each guarded order step leaves an event (when, from, to, who) written with the step itself."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import OrderStatus
from db.models.events import RECONCILER, USER, WORKER, admin_actor
from db.repositories.orders import OrderRepository
from tests.helpers import BotEnv, make_user
from tests.test_fulfilment import make_worker, new_order, paid_order
from tests.test_purchase import GB, load_order


async def steps(
    session_factory: async_sessionmaker[AsyncSession], order_id: int
) -> list[tuple[str | None, str, str, str | None]]:
    async with session_factory() as session:
        events = await OrderRepository(session).events(order_id)
    return [(e.from_status, e.to_status, e.actor, e.note) for e in events]


async def test_a_purchase_leaves_its_steps_and_who_took_them(bot_env: BotEnv) -> None:
    env = bot_env
    public_id = await paid_order(env, make_user(9101))
    await make_worker(env).run_once()
    order = await load_order(env, public_id)
    assert await steps(env.deps.session_factory, order.id) == [
        ("awaiting_payment", "paid", USER, f"charge {order.telegram_payment_charge_id}"),
        ("paid", "fulfilling", WORKER, None),
        ("fulfilling", "delivered", WORKER, f"eSIM Go order {order.esimgo_order_reference}"),
    ]


async def test_a_refund_leaves_why_the_order_failed(bot_env: BotEnv) -> None:
    env = bot_env
    public_id = await paid_order(env, make_user(9102))
    env.fake_esimgo.catalogue = [b for b in env.fake_esimgo.catalogue if b["name"] != GB]
    await make_worker(env).run_once()
    order = await load_order(env, public_id)
    recorded = await steps(env.deps.session_factory, order.id)
    assert [(old, new, actor) for old, new, actor, _ in recorded] == [
        ("awaiting_payment", "paid", USER),
        ("paid", "fulfilling", WORKER),
        ("fulfilling", "failed", WORKER),
        ("failed", "refunded", WORKER),
    ]
    assert "not found" in str(recorded[2][3])


async def test_a_step_and_its_event_are_one_transaction(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(session_factory, "EVENTS0001")
    async with session_factory() as session:
        repo = OrderRepository(session)
        assert await repo.transition(
            order_id, OrderStatus.AWAITING_PAYMENT, OrderStatus.PAID, actor=RECONCILER
        )
        await session.rollback()  # say the commit never happened
    assert await steps(session_factory, order_id) == []

    async with session_factory() as session:
        repo = OrderRepository(session)
        admin = admin_actor(900_000_001)
        assert await repo.transition(
            order_id,
            {OrderStatus.AWAITING_PAYMENT, OrderStatus.PAID},
            OrderStatus.CANCELLED,
            actor=admin,
            note="cancelled on request",
        )
        # Lost race: no change, no event.
        assert not await repo.transition(
            order_id, OrderStatus.AWAITING_PAYMENT, OrderStatus.PAID, actor=USER
        )
        await session.commit()
    assert await steps(session_factory, order_id) == [
        ("awaiting_payment", "cancelled", admin, "cancelled on request")
    ]
