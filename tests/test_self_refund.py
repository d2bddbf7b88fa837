"""Instant refund of an unused eSIM: the plan is revoked to our eSIM Go balance and the Stars
go back, once per order, never after install or start, and never leaving both sides paid or
both out of pocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from services.doctor_texts import esim_card_rows, refund_confirm_screen, refund_result_screen
from services.i18n import Translator
from services.self_refund import CLAIM_PREFIX, RefundOffer, RefundVerdict, SelfRefunds
from tests.doctor_world import ADMIN, ALICE, BOB, TH_1GB, TH_5GB, Purchase, World, open_world
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram

TRANSLATOR = Translator()
REVOKE = "DELETE /esims/{iccid}/bundles/{name}/assignments/{assignmentId}"


@pytest.fixture
async def world(
    database_url: str, fake_esimgo: FakeEsimGo, fake_telegram: FakeTelegram
) -> AsyncIterator[World]:
    async with open_world(database_url, fake_esimgo, fake_telegram) as world:
        yield world


def refunds(world: World, days: int = 7) -> SelfRefunds:
    return SelfRefunds(
        world.session_factory,
        world.esimgo,
        world.messenger,
        world.alerts,
        days=days,
        clock=world.clock,
    )


def price_of(world: World, bundle: str) -> Decimal:
    record = world.fake.bundle(bundle)
    assert record is not None
    return Decimal(str(record["price"]))


def star_refunds(world: World) -> list[tuple[int, str]]:
    return [
        (int(c.params["user_id"]), str(c.params["telegram_payment_charge_id"]))
        for c in world.telegram.calls_to("refundStarPayment")
    ]


async def test_an_unused_esim_is_refunded_in_seconds(world: World) -> None:
    purchase = await world.buy()
    service = refunds(world)
    (offer,) = await service.offers(ALICE, purchase.esim_id)
    balance = world.fake.balance

    result = await service.refund(ALICE, offer.order_id)

    assert result.verdict is RefundVerdict.REFUNDED
    assert world.fake.balance == balance + price_of(world, TH_5GB)
    (revoke,) = world.fake.calls(REVOKE)
    assert revoke.param("refundToBalance") == "true"
    assert star_refunds(world) == [(ALICE, purchase.charge)]
    order = await world.order(purchase.order_id)
    assert order.status == "refunded" and order.refunded_at == world.clock.now
    assert order.lease_owner is None and (order.failure_reason or "").startswith("self-refund")
    esim = await world.esim(purchase.esim_id)
    assert esim.deleted_at is not None and esim.tracking is False
    assert await service.offers(ALICE, purchase.esim_id) == []
    assert world.admin_messages() == []  # nothing for the operators to do
    text = refund_result_screen(result.verdict, result.offer, TRANSLATOR, "en").text
    assert "450 ⭐ is back on your Telegram balance" in text and "left your list" in text


async def test_the_refund_is_offered_and_confirmed_in_the_users_words(world: World) -> None:
    purchase = await world.buy()
    service = refunds(world)
    offers = await service.offers(ALICE, purchase.esim_id)

    rows = esim_card_rows(offers, TRANSLATOR, "ru")
    assert [b.text for row in rows for b in row] == ["🩺 Не работает", "↩️ Вернуть деньги · 450 ⭐"]
    offer = await service.offer(ALICE, purchase.order_id)
    assert isinstance(offer, RefundOffer)
    assert offer.until == world.clock.now + timedelta(days=7)
    screen = refund_confirm_screen(offer, TRANSLATOR, "en")
    assert "never installed" in screen.text and "450 ⭐ can be refunded" in screen.text
    assert screen.buttons[0][0].value == str(purchase.order_id)


async def test_refused_once_the_esim_was_installed(world: World) -> None:
    purchase = await world.buy()
    service = refunds(world)
    assert await service.offers(ALICE, purchase.esim_id)  # our records do not know yet
    world.fake.install(purchase.iccid)

    result = await service.refund(ALICE, purchase.order_id)

    assert result.verdict is RefundVerdict.INSTALLED
    assert world.fake.calls(REVOKE) == [] and star_refunds(world) == []
    order = await world.order(purchase.order_id)
    assert order.status == "delivered" and order.lease_owner is None
    assert (
        "has been installed"
        in refund_result_screen(result.verdict, result.offer, TRANSLATOR, "en").text
    )


async def test_refused_once_the_plan_started(world: World) -> None:
    purchase = await world.buy()
    # eSIM Go shows the plan in use before the profile's install reached anyone.
    world.fake.set_usage(purchase.iccid, state="active")

    result = await refunds(world).refund(ALICE, purchase.order_id)

    assert result.verdict is RefundVerdict.STARTED
    assert world.fake.calls(REVOKE) == [] and star_refunds(world) == []
    assert (await world.order(purchase.order_id)).status == "delivered"


async def test_a_top_up_that_never_started_is_refunded_and_the_esim_stays(world: World) -> None:
    first = await world.buy(TH_5GB)
    world.fake.install(first.iccid)
    world.fake.attach(first.iccid, "TH")
    world.fake.start_bundle(first.iccid, TH_5GB)
    topup = await world.buy(TH_1GB, topup_of=first.iccid)
    await world.poll(first.iccid)
    service = refunds(world)

    offers = await service.offers(ALICE, first.esim_id)
    started = await service.refund(ALICE, first.order_id)
    result = await service.refund(ALICE, topup.order_id)

    assert [o.order_id for o in offers] == [topup.order_id] and offers[0].is_topup
    assert started.verdict is RefundVerdict.INSTALLED
    assert result.verdict is RefundVerdict.REFUNDED
    assert star_refunds(world) == [(ALICE, topup.charge)]
    assert (await world.order(first.order_id)).status == "delivered"
    assert (await world.esim(first.esim_id)).deleted_at is None
    plans = {a.bundle_name: a.state for a in await world.esimgo.get_esim_bundles(first.iccid)}
    assert plans == {TH_5GB: "active", TH_1GB: "revoked"}


async def test_refused_past_the_window_without_asking_esim_go(world: World) -> None:
    purchase = await world.buy(paid_days_ago=7.01)
    service = refunds(world)
    world.fake.requests.clear()

    assert await service.offers(ALICE, purchase.esim_id) == []
    result = await service.refund(ALICE, purchase.order_id)

    assert result.verdict is RefundVerdict.PAST_WINDOW
    assert world.fake.requests == [] and star_refunds(world) == []
    text = refund_result_screen(result.verdict, result.offer, TRANSLATOR, "en").text
    assert "can be refunded until" in text


async def test_revoked_but_the_stars_refund_failing_goes_to_the_operators(world: World) -> None:
    purchase = await world.buy()
    balance = world.fake.balance
    world.telegram.fail_next("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    service = refunds(world)

    result = await service.refund(ALICE, purchase.order_id)
    again = await service.refund(ALICE, purchase.order_id)

    assert result.verdict is RefundVerdict.REFUND_PENDING
    assert again.verdict is RefundVerdict.REFUND_PENDING
    assert world.fake.balance == balance + price_of(world, TH_5GB)  # the plan is back with us
    assert len(world.fake.calls(REVOKE)) == 1 and len(star_refunds(world)) == 1
    order = await world.order(purchase.order_id)
    assert order.status == "refund_due" and order.lease_owner is None
    assert "revoked to the eSIM Go balance" in (order.failure_reason or "")
    assert "refundStarPayment failed" in (order.failure_reason or "")
    (alert,) = world.admin_messages()
    assert alert.chat_id == ADMIN
    assert "Refund due by hand (self-refund)" in (alert.text or "")
    assert purchase.public_id in (alert.text or "") and str(purchase.charge) in (alert.text or "")
    assert (await world.esim(purchase.esim_id)).deleted_at is not None
    text = refund_result_screen(result.verdict, result.offer, TRANSLATOR, "en").text
    assert "Our team will return 450 ⭐ to you shortly" in text


async def test_pressed_twice_refunds_once(world: World) -> None:
    purchase = await world.buy()
    service = refunds(world)

    first = await service.refund(ALICE, purchase.order_id)
    second = await service.refund(ALICE, purchase.order_id)

    assert (first.verdict, second.verdict) == (
        RefundVerdict.REFUNDED,
        RefundVerdict.ALREADY_REFUNDED,
    )
    assert len(world.fake.calls(REVOKE)) == 1 and len(star_refunds(world)) == 1


async def test_pressed_twice_at_once_refunds_once(world: World) -> None:
    purchase = await world.buy()

    results = await asyncio.gather(
        refunds(world).refund(ALICE, purchase.order_id),
        refunds(world).refund(ALICE, purchase.order_id),
    )

    verdicts = sorted(r.verdict for r in results)
    assert verdicts == sorted([RefundVerdict.REFUNDED, RefundVerdict.IN_PROGRESS])
    assert len(world.fake.calls(REVOKE)) == 1 and len(star_refunds(world)) == 1
    assert (await world.order(purchase.order_id)).status == "refunded"


async def test_a_fiat_order_is_revoked_and_left_to_the_operators(world: World) -> None:
    purchase = await world.buy(currency="USD")

    result = await refunds(world).refund(ALICE, purchase.order_id)

    assert result.verdict is RefundVerdict.REFUND_PENDING
    assert len(world.fake.calls(REVOKE)) == 1 and star_refunds(world) == []
    order = await world.order(purchase.order_id)
    assert order.status == "refund_due"
    (alert,) = world.admin_messages()
    assert "provider charge provider-" in (alert.text or "")


async def test_a_revoke_that_went_through_without_an_answer_is_still_paid_back(
    world: World,
) -> None:
    purchase = await world.buy()
    world.fake.fail_next(REVOKE, status=502, create_then_fail=True)

    result = await refunds(world).refund(ALICE, purchase.order_id)

    assert result.verdict is RefundVerdict.REFUNDED
    assert len(world.fake.calls(REVOKE)) == 1 and len(star_refunds(world)) == 1


async def test_a_revoke_that_did_not_happen_changes_nothing(world: World) -> None:
    purchase = await world.buy()
    world.fake.fail_next(REVOKE, status=502)
    service = refunds(world)

    failed = await service.refund(ALICE, purchase.order_id)

    assert failed.verdict is RefundVerdict.UNAVAILABLE and star_refunds(world) == []
    order = await world.order(purchase.order_id)
    assert order.status == "delivered" and order.lease_owner is None
    assert (await service.refund(ALICE, purchase.order_id)).verdict is RefundVerdict.REFUNDED


async def test_a_refund_cut_short_after_the_revoke_is_finished_by_the_next_press(
    world: World,
) -> None:
    purchase = await world.buy()
    (plan,) = await world.esimgo.get_esim_bundles(purchase.iccid)
    # The crashed attempt got this far: this order's copy revoked, nobody paid back.
    await world.esimgo.revoke_assignment(purchase.iccid, TH_5GB, plan.assignment_id)
    async with world.session_factory() as session:
        from db.repositories.orders import OrderRepository

        await OrderRepository(session).update_where(
            purchase.order_id,
            {"status": "delivered"},
            lease_owner=f"{CLAIM_PREFIX}crashed",
            lease_until=world.clock.now + timedelta(minutes=10),
        )
        await session.commit()
    service = refunds(world)

    busy = await service.refund(ALICE, purchase.order_id)
    world.clock.advance(timedelta(minutes=11))
    finished = await service.refund(ALICE, purchase.order_id)

    assert busy.verdict is RefundVerdict.IN_PROGRESS
    assert finished.verdict is RefundVerdict.REFUNDED
    assert len(world.fake.calls(REVOKE)) == 1 and star_refunds(world) == [(ALICE, purchase.charge)]


async def test_nobody_refunds_someone_elses_order(world: World) -> None:
    purchase: Purchase = await world.buy()
    service = refunds(world)

    assert await service.offers(BOB, purchase.esim_id) == []
    result = await service.refund(BOB, purchase.order_id)

    assert result.verdict is RefundVerdict.NOT_REFUNDABLE and result.offer is None
    assert world.fake.calls(REVOKE) == [] and star_refunds(world) == []


async def test_presses_racing_never_take_another_orders_plan(world: World) -> None:
    first = await world.buy(TH_1GB)
    second = await world.buy(TH_1GB, topup_of=first.iccid)  # a second unused copy of the plan

    results = await asyncio.gather(
        *(refunds(world).refund(ALICE, first.order_id) for _ in range(4))
    )

    verdicts = [r.verdict for r in results]
    assert verdicts.count(RefundVerdict.REFUNDED) == 1
    assert set(verdicts) <= {RefundVerdict.REFUNDED, RefundVerdict.IN_PROGRESS}
    assert len(world.fake.calls(REVOKE)) == 1 and star_refunds(world) == [(ALICE, first.charge)]
    states = [a.state for a in await world.esimgo.get_esim_bundles(first.iccid)]
    assert sorted(states) == ["queued", "revoked"]
    assert (await world.order(second.order_id)).status == "delivered"
