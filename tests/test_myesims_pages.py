"""/myesims reads one page at a time from the database: a user's cost does not grow with their
history, and the pages still list everything newest first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from db.models import Esim, EsimBundle, Order, OrderStatus
from handlers.callbacks import MyEsimsCallback
from tests.helpers import BotEnv, make_user
from tests.test_myesims import _order

ALICE, BOB = 9001, 9002
START = datetime(2025, 1, 1, tzinfo=UTC)
PER_PAGE = 8  # handlers.myesims_render.ENTRIES_PER_PAGE


@pytest.fixture
def loaded_orders() -> Iterator[list[Order]]:
    """Every Order row SQLAlchemy builds from a query while the test runs."""
    seen: list[Order] = []

    def record(target: Order, _context: object) -> None:
        seen.append(target)

    event.listen(Order, "load", record)
    try:
        yield seen
    finally:
        event.remove(Order, "load", record)


async def seed_history(env: BotEnv, orders: int) -> list[str]:
    """Alice's orders one day apart (every fifth delivered onto an eSIM of its own, topped up
    a day later), plus one of Bob's; returns the list's entries as titles, newest first."""
    entries: list[tuple[datetime, str]] = []
    async with env.deps.session_factory() as session:
        for n in range(orders):
            when = START + timedelta(days=2 * n)
            if n % 5:
                status = OrderStatus.CANCELLED if n % 2 else OrderStatus.REFUNDED
                session.add(_order(f"O{n:04d}", ALICE, status, when))
                entries.append((when, f"order O{n:04d}"))
                continue
            iccid = f"89440000000000{n:05d}"
            first = _order(f"E{n:04d}", ALICE, OrderStatus.DELIVERED, when, iccid=iccid)
            topup = _order(
                f"T{n:04d}",
                ALICE,
                OrderStatus.DELIVERED,
                when + timedelta(days=1),
                iccid=iccid,
                kind="topup",
            )
            session.add_all([first, topup])
            await session.flush()
            esim = Esim(
                iccid=iccid,
                telegram_user_id=ALICE,
                first_order_id=first.id,
                lpa=f"LPA:1$rsp.test${n}",
                created_at=when + timedelta(minutes=1),
            )
            session.add(esim)
            session.add(
                EsimBundle(iccid=iccid, assignment_key=f"k{n}", bundle_name="b", state="active")
            )
            await session.flush()
            entries.append((when + timedelta(days=1), f"esim {esim.id}"))
        session.add(_order("BOB1", BOB, OrderStatus.DELIVERED, START + timedelta(days=999)))
        await session.commit()
    return [name for _when, name in sorted(entries, reverse=True)]


def shown(env: BotEnv, user_id: int) -> list[str]:
    """The list's entries on screen, as seed_history names them."""
    names = []
    for button in env.screen(make_user(user_id)).buttons():
        data = str(button.get("callback_data", ""))
        if data.startswith("me:esim:"):
            names.append(f"esim {MyEsimsCallback.unpack(data).id}")
        elif data.startswith("me:order:"):
            order_id = MyEsimsCallback.unpack(data).id
            names.append(f"order #{order_id}")
    return names


async def test_the_list_reads_one_page_of_a_long_history(
    bot_env: BotEnv, loaded_orders: list[Order]
) -> None:
    env = bot_env
    await seed_history(env, 200)
    alice = make_user(ALICE)
    loaded_orders.clear()
    await env.send(alice, "/myesims")
    assert len(shown(env, ALICE)) == PER_PAGE
    # The page's orders and its eSIMs' purchases, never the whole history.
    assert len(loaded_orders) <= 2 * PER_PAGE
    assert {o.telegram_user_id for o in loaded_orders} == {ALICE}


async def test_the_pages_list_everything_newest_first(bot_env: BotEnv) -> None:
    env = bot_env
    expected = await seed_history(env, 23)  # 5 eSIMs and 18 orders: 3 pages
    async with env.deps.session_factory() as session:
        rows = await session.execute(select(Order.public_id, Order.id))
        ids: dict[str, int] = dict(rows.all())
    expected = [
        f"order #{ids[name.split()[1]]}" if name.startswith("order") else name for name in expected
    ]
    alice = make_user(ALICE)
    await env.send(alice, "/myesims")
    seen = shown(env, ALICE)
    for page in (1, 2):
        await env.press(alice, MyEsimsCallback(action="list", page=page))
        seen += shown(env, ALICE)
    assert seen == expected
    assert "›" not in env.screen(alice).button_texts()
    await env.press(alice, MyEsimsCallback(action="list", page=99))  # past the end: the last
    assert shown(env, ALICE) == expected[2 * PER_PAGE :]
