"""An eSIM never reaches the wrong buyer: what the worker adopts after an ambiguous failure, what
it refuses to store, and the tag it leaves on each eSIM it bought."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiogram.types import User
from sqlalchemy import select

from db.base import utcnow
from db.models import Esim, OrderStatus
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import ApiCall
from tests.helpers import ADMIN_ID, BotEnv, make_user
from tests.test_fulfilment import Clock, make_worker, messages_to, paid_order
from tests.test_purchase import GB, load_order, transactions

# Refunds, adoption and leases move money: they run on PostgreSQL too (tests/helpers.py).
ON_EVERY_DATABASE = True

ALICE, BOB = 5001, 5002


def photos_to(env: BotEnv, chat_id: int) -> list[ApiCall]:
    return [
        c
        for c in env.fake_telegram.calls_to("sendPhoto")
        if c.ok and c.params["chat_id"] == chat_id
    ]


async def delivered_esim(env: BotEnv, user: User) -> str:
    """The user bought a UK eSIM through the bot; returns its ICCID."""
    public_id = await paid_order(env, user)
    await make_worker(env).run_once()
    order = await load_order(env, public_id)
    assert order.status == OrderStatus.DELIVERED and order.iccid
    return order.iccid


def another_customers_topup(env: BotEnv, bob_iccid: str) -> dict[str, Any]:
    return env.fake_esimgo.plant_order(GB, iccids=[bob_iccid])


def web_shop_order(env: BotEnv, bob_iccid: str) -> dict[str, Any]:
    return env.fake_esimgo.plant_order(GB, customer_ref="webshop-7781")


def two_lines(env: BotEnv, bob_iccid: str) -> dict[str, Any]:
    return env.fake_esimgo.plant_order(GB, lines=2)


def two_esims(env: BotEnv, bob_iccid: str) -> dict[str, Any]:
    return env.fake_esimgo.plant_order(GB, quantity=2)


def placed_before_the_attempt(env: BotEnv, bob_iccid: str) -> dict[str, Any]:
    return env.fake_esimgo.plant_order(GB, created=utcnow() - timedelta(minutes=1))


@pytest.mark.parametrize(
    "plant",
    [another_customers_topup, web_shop_order, two_lines, two_esims, placed_before_the_attempt],
)
async def test_after_an_ambiguous_failure_a_foreign_order_is_never_adopted(
    bot_env: BotEnv, plant: Any
) -> None:
    env, clock = bot_env, Clock()
    bob_iccid = await delivered_esim(env, make_user(BOB))
    public_id = await paid_order(env, make_user(ALICE))
    if plant is placed_before_the_attempt:
        foreign = plant(env, bob_iccid)
    env.fake_esimgo.fail_next("POST /orders:transaction", status=500)  # nothing was bought
    worker = make_worker(env, clock=clock)
    await worker.run_once()
    if plant is not placed_before_the_attempt:
        foreign = plant(env, bob_iccid)  # placed by someone else while ours was in doubt
    foreign_iccids = {i for line in foreign["order"] for i in line["iccids"]}

    clock.advance(seconds=30)
    await worker.run_once()

    order = await load_order(env, public_id)
    assert order.status == OrderStatus.DELIVERED
    assert order.esimgo_order_reference != foreign["orderReference"]
    assert order.iccid not in foreign_iccids | {bob_iccid}
    assert transactions(env) == 3, "Bob's, Alice's failed one, and Alice's own again"
    [photo] = photos_to(env, ALICE)
    assert str(order.iccid) in str(photo.params["caption"])
    assert not any(iccid in str(photo.params["caption"]) for iccid in foreign_iccids)
    assert len(photos_to(env, BOB)) == 1, "Bob got his own eSIM once, nothing more"


async def test_two_orders_that_could_be_ours_are_refunded_and_alerted_never_delivered(
    bot_env: BotEnv,
) -> None:
    env, clock = bot_env, Clock()
    public_id = await paid_order(env, make_user(ALICE))
    # Ours went through unanswered, and an identical one (the web shop's?) came in meanwhile.
    env.fake_esimgo.fail_next("POST /orders:transaction", status=500, create_then_fail=True)
    worker = make_worker(env, clock=clock)
    await worker.run_once()
    twin = env.fake_esimgo.plant_order(GB)

    clock.advance(seconds=30)
    await worker.run_once()

    order = await load_order(env, public_id)
    assert order.status == OrderStatus.REFUNDED
    assert not photos_to(env, ALICE)
    assert transactions(env) == 1, "never bought again"
    [refund] = env.fake_telegram.calls_to("refundStarPayment")
    assert refund.ok and refund.params["user_id"] == ALICE
    alerts = [str(c.params["text"]) for c in messages_to(env, ADMIN_ID)]
    assert any(public_id in a and twin["orderReference"] in a for a in alerts)


async def test_an_esim_whose_iccid_we_know_is_refused_and_both_orders_reported(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    bob = make_user(BOB)
    bob_order = await paid_order(env, bob)
    await make_worker(env).run_once()
    bob_iccid = (await load_order(env, bob_order)).iccid
    assert bob_iccid is not None
    env.fake_esimgo.reissue_iccids.append(bob_iccid)  # eSIM Go hands Bob's eSIM out again

    public_id = await paid_order(env, make_user(ALICE))
    await make_worker(env).run_once()

    assert not photos_to(env, ALICE)
    order = await load_order(env, public_id)
    assert order.status == OrderStatus.REFUNDED
    assert order.iccid is None and bob_iccid in str(order.failure_reason)
    [refund] = env.fake_telegram.calls_to("refundStarPayment")
    assert refund.ok and refund.params["user_id"] == ALICE
    alerts = [str(c.params["text"]) for c in messages_to(env, ADMIN_ID)]
    assert any(public_id in a and bob_order in a and bob_iccid in a for a in alerts)
    async with env.deps.session_factory() as session:
        esims = (await session.execute(select(Esim))).scalars().all()
    assert [(e.iccid, e.telegram_user_id) for e in esims] == [(bob_iccid, BOB)]


async def test_each_esim_bought_is_tagged_with_its_order_at_esim_go(
    bot_env: BotEnv, fake_esimgo: FakeEsimGo
) -> None:
    env = bot_env
    public_id = await paid_order(env, make_user(ALICE))
    await make_worker(env).run_once()
    order = await load_order(env, public_id)
    assert order.iccid is not None
    [tag] = fake_esimgo.calls("PUT /esims")
    assert tag.json == {"iccid": order.iccid, "customerRef": public_id}
    assert fake_esimgo.esims[order.iccid]["customerRef"] == public_id
    assert len(photos_to(env, ALICE)) == 1
