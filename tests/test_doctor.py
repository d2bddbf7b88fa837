"""The eSIM doctor ("It doesn't work"): a diagnosis from eSIM Go's live state for each way an
eSIM fails a traveller, what the user is told to do, the network refresh limit (across
replicas) and the support ticket with the diagnosis attached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from db.engine import create_engine, create_session_factory
from db.models import Esim, EsimCheck
from services.actions import Action, TextScreen
from services.diagnosis import Diagnosis, Finding
from services.doctor import EsimDoctor, RefreshOutcome, TicketOutcome
from services.doctor_texts import diagnosis_screen, refresh_result_screen
from services.i18n import Translator
from services.support_ticket import AdminAlertDesk
from tests.doctor_world import ALICE, BOB, TH_5GB, Purchase, World, open_world
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram

TRANSLATOR = Translator()


@pytest.fixture
async def world(
    database_url: str, fake_esimgo: FakeEsimGo, fake_telegram: FakeTelegram
) -> AsyncIterator[World]:
    async with open_world(database_url, fake_esimgo, fake_telegram) as world:
        yield world


def make_doctor(world: World, **options: float) -> EsimDoctor:
    desk = AdminAlertDesk(world.alerts, world.messenger)
    return EsimDoctor(
        world.session_factory,
        world.esimgo,
        world.catalogue,
        desk,
        clock=world.clock,
        **options,  # type: ignore[arg-type]
    )


async def check(world: World, purchase: Purchase) -> tuple[Diagnosis, TextScreen]:
    """Alice presses "It doesn't work": the diagnosis and the English screen she sees."""
    diagnosis = await make_doctor(world).diagnose(ALICE, purchase.esim_id)
    assert diagnosis is not None
    return diagnosis, diagnosis_screen(diagnosis, TRANSLATOR, "en")


def button(screen: TextScreen, action: Action) -> list[str]:
    """The values (or URLs) of the screen's buttons doing `action`."""
    return [b.url or b.value for row in screen.buttons for b in row if b.action is action]


async def test_never_installed_shows_how_to_install_with_one_tap_links(world: World) -> None:
    purchase = await world.buy()

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.NOT_INSTALLED
    assert "not installed on your phone yet" in screen.text
    assert "on Wi-Fi, before you fly" in screen.text and "Thailand" in screen.text
    (ios,) = button(screen, Action.INSTALL_IPHONE)
    (android,) = button(screen, Action.INSTALL_ANDROID)
    assert ios.startswith("https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=LPA")
    assert android.startswith("https://esimsetup.android.com/")
    assert {Action.SHOW_QR, Action.TICKET, Action.BACK} <= set(screen.actions())
    assert "Network data as of" in screen.text


async def test_installed_but_never_connected_gets_the_phone_settings(world: World) -> None:
    purchase = await world.buy()
    world.fake.install(purchase.iccid)

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.NOT_ATTACHED
    assert "has not connected to a network yet" in screen.text
    for step in ("Mobile Service", "Data Roaming", "Android", "Roaming</b> for it"):
        assert step in screen.text
    assert Action.DIAGNOSE in screen.actions()


async def test_connected_where_the_plan_does_not_work_offers_plans_for_there(
    world: World,
) -> None:
    purchase = await world.buy()
    world.fake.install(purchase.iccid)
    world.fake.attach(purchase.iccid, "FR", network="Orange")

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.WRONG_COUNTRY
    assert "Your phone is in 🇫🇷 France, but your plan works in 🇹🇭 Thailand" in screen.text
    assert "Orange" in screen.text and "it starts when you use data there" in screen.text
    offered = button(screen, Action.PLAN)
    assert offered and offered == [offer.bundle_name for offer in diagnosis.offers]
    for name in offered:
        bundle = world.catalogue.catalogue.by_name(name)
        assert bundle is not None and "FR" in {c.iso for c in bundle.coverage}
    assert button(screen, Action.COUNTRY) == ["FR"]


async def test_a_used_up_plan_shows_usage_and_offers_a_top_up(world: World) -> None:
    purchase = await world.buy()
    world.fake.install(purchase.iccid)
    world.fake.attach(purchase.iccid, "TH")
    world.fake.start_bundle(purchase.iccid)
    world.fake.set_usage(purchase.iccid, remaining_bytes=0, state="depleted")

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.PLAN_ENDED
    assert "data is used up" in screen.text and "5 GB · 30 days: used up" in screen.text
    assert Action.TOPUP in screen.actions()


async def test_an_expired_plan_says_so_and_offers_a_top_up(world: World) -> None:
    purchase = await world.buy()
    world.fake.install(purchase.iccid)
    world.fake.attach(purchase.iccid, "TH")
    world.fake.set_usage(purchase.iccid, state="expired")

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.PLAN_ENDED
    assert "Your plan has ended" in screen.text and Action.TOPUP in screen.actions()


async def test_a_plan_waiting_to_start_says_when_it_starts(world: World) -> None:
    purchase = await world.buy()
    world.fake.install(purchase.iccid)
    world.fake.attach(purchase.iccid, "TH", network="AIS")

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.NOT_STARTED
    assert "It starts the first time your phone uses data in 🇹🇭 Thailand" in screen.text
    assert "From then it runs for 30 days." in screen.text
    assert "Last seen on the AIS TH network" in screen.text and "Data Roaming" in screen.text


async def test_a_plan_still_being_applied_asks_to_check_again(world: World) -> None:
    purchase = await world.buy()
    world.fake.install(purchase.iccid)
    world.fake.attach(purchase.iccid, "TH")
    world.fake.set_usage(purchase.iccid, state="processing")

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.PROCESSING
    assert "at most 10 minutes" in screen.text and Action.DIAGNOSE in screen.actions()


async def test_an_esim_deleted_from_the_phone_goes_to_support(world: World) -> None:
    purchase = await world.buy()
    world.fake.set_profile_status(purchase.iccid, "Released", installed_ms=1_763_000_000_000)

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.REMOVED
    assert "deleted from your phone" in screen.text and Action.TICKET in screen.actions()


async def test_everything_right_but_no_data_offers_a_network_refresh(world: World) -> None:
    purchase = await world.buy()
    world.fake.install(purchase.iccid)
    world.fake.attach(purchase.iccid, "TH", network="AIS")
    world.fake.start_bundle(purchase.iccid)
    world.fake.set_usage(purchase.iccid, remaining_bytes=2_400_000_000)

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.LOOKS_FINE
    assert "Everything looks right at the network" in screen.text
    assert "2.4 GB of 5 GB left" in screen.text and "AIS TH" in screen.text
    assert Action.ASK_REFRESH in screen.actions() and Action.TICKET in screen.actions()


async def test_esim_go_failing_gives_the_static_steps_never_an_error(world: World) -> None:
    purchase = await world.buy()
    world.fake.fail_next(f"GET /esims/{purchase.iccid}", status=500, times=10)

    diagnosis, screen = await check(world, purchase)

    assert diagnosis.finding is Finding.UNAVAILABLE and diagnosis.live is None
    assert "could not check your eSIM with the network right now" in screen.text
    assert "Data Roaming" in screen.text and "No network data (" in screen.text
    assert {Action.DIAGNOSE, Action.INSTALL_HELP, Action.TICKET} <= set(screen.actions())
    async with world.session_factory() as session:
        stored = await session.scalar(select(EsimCheck).where(EsimCheck.iccid == purchase.iccid))
    assert stored is not None and stored.finding == Finding.UNAVAILABLE
    assert "eSIM Go could not be read" in (stored.report or "")


async def test_esim_go_too_slow_is_not_waited_for(world: World) -> None:
    purchase = await world.buy()
    world.fake.fail_next(f"GET /esims/{purchase.iccid}/bundles", status=200, delay=30)

    diagnosis = await make_doctor(world, wait_seconds=0.3).diagnose(ALICE, purchase.esim_id)

    assert diagnosis is not None and diagnosis.finding is Finding.UNAVAILABLE
    assert diagnosis.error == "no answer within 0.3 s"


async def test_without_history_or_location_the_plans_still_decide(world: World) -> None:
    purchase = await world.buy()
    world.fake.install(purchase.iccid)
    world.fake.start_bundle(purchase.iccid)
    world.fake.fail_next(f"GET /esims/{purchase.iccid}/history", status=500, times=10)
    world.fake.fail_next(f"GET /esims/{purchase.iccid}/location", status=500, times=10)

    diagnosis, _ = await check(world, purchase)

    assert diagnosis.finding is Finding.LOOKS_FINE
    assert diagnosis.live is not None and diagnosis.live.events is None
    async with world.session_factory() as session:
        stored = await session.scalar(select(EsimCheck).where(EsimCheck.iccid == purchase.iccid))
    assert stored is not None
    assert "location: could not be read" in (stored.report or "")
    assert "history: could not be read" in (stored.report or "")


async def test_only_the_owner_can_check_an_esim(world: World) -> None:
    purchase = await world.buy()
    doctor = make_doctor(world)

    assert await doctor.diagnose(BOB, purchase.esim_id) is None
    assert await doctor.refresh(BOB, purchase.esim_id) is None
    assert world.fake.calls(f"GET /esims/{purchase.iccid}") == []


async def test_a_network_refresh_at_most_once_per_ten_minutes(world: World) -> None:
    purchase = await world.buy()
    doctor = make_doctor(world)
    started = world.clock.now

    first = await doctor.refresh(ALICE, purchase.esim_id)
    world.clock.advance(timedelta(minutes=9, seconds=59))
    second = await doctor.refresh(ALICE, purchase.esim_id)

    assert first is not None and first.outcome is RefreshOutcome.DONE
    assert second is not None and second.outcome is RefreshOutcome.TOO_SOON
    assert second.next_at == started + timedelta(minutes=10)
    assert world.fake.refreshed == [purchase.iccid]
    screen = refresh_result_screen(second, TRANSLATOR, "en")
    assert "You can refresh it again after" in screen.text

    world.clock.advance(timedelta(seconds=1))
    third = await doctor.refresh(ALICE, purchase.esim_id)
    assert third is not None and third.outcome is RefreshOutcome.DONE
    assert world.fake.refreshed == [purchase.iccid] * 2


async def test_two_replicas_asking_at_once_refresh_once(world: World, database_url: str) -> None:
    purchase = await world.buy()
    other_engine = create_engine(database_url)
    try:
        other = EsimDoctor(
            create_session_factory(other_engine),
            world.esimgo,
            world.catalogue,
            AdminAlertDesk(world.alerts, world.messenger),
            clock=world.clock,
        )
        results = await asyncio.gather(
            make_doctor(world).refresh(ALICE, purchase.esim_id),
            other.refresh(ALICE, purchase.esim_id),
        )
    finally:
        await other_engine.dispose()

    outcomes = sorted(r.outcome for r in results if r is not None)
    assert outcomes == [RefreshOutcome.DONE, RefreshOutcome.TOO_SOON]
    assert world.fake.refreshed == [purchase.iccid]


async def test_a_refresh_esim_go_refused_does_not_use_up_the_ten_minutes(world: World) -> None:
    purchase = await world.buy()
    doctor = make_doctor(world)
    world.fake.fail_next(f"GET /esims/{purchase.iccid}/refresh", status=503)

    failed = await doctor.refresh(ALICE, purchase.esim_id)
    retried = await doctor.refresh(ALICE, purchase.esim_id)

    assert failed is not None and failed.outcome is RefreshOutcome.FAILED
    assert "could not reach the network" in refresh_result_screen(failed, TRANSLATOR, "en").text
    assert retried is not None and retried.outcome is RefreshOutcome.DONE


async def test_still_not_working_sends_one_ticket_with_the_diagnosis(world: World) -> None:
    purchase = await world.buy()
    world.fake.install(purchase.iccid)
    world.fake.attach(purchase.iccid, "FR")
    doctor = make_doctor(world)
    await doctor.diagnose(ALICE, purchase.esim_id)

    opened = await doctor.open_ticket(
        ALICE, purchase.esim_id, user_name="Alice", username="alice", language="ru"
    )
    again = await doctor.open_ticket(
        ALICE, purchase.esim_id, user_name="Alice", username="alice", language="ru"
    )

    assert opened is not None and opened.outcome is TicketOutcome.OPENED
    assert again is not None and again.outcome is TicketOutcome.ALREADY_OPEN
    (ticket,) = world.admin_messages()
    text = ticket.text or ""
    assert "Support request" in text and "Alice (@alice)" in text and "language ru" in text
    # The ticket is formatted for the operators, not shown as escaped tags.
    assert "<b>" not in text and "🆘 <b>Support request" in (ticket.html or "")
    assert purchase.iccid in text and purchase.public_id in text
    assert "User saw: wrong_country at" in text
    assert "finding: wrong_country" in text
    assert "location: FR on Orange FR" in text and "eSIM First Attachment" in text
    assert f"plan {TH_5GB}: queued" in text and "covers TH" in text

    world.clock.advance(timedelta(minutes=30))
    later = await doctor.open_ticket(
        ALICE, purchase.esim_id, user_name="Alice", username=None, language="en"
    )
    assert later is not None and later.outcome is TicketOutcome.OPENED
    assert len(world.admin_messages()) == 2


async def test_a_refunded_esim_is_no_longer_checked(world: World) -> None:
    purchase = await world.buy()
    async with world.session_factory() as session:
        esim = await session.get(Esim, purchase.esim_id)
        assert esim is not None
        esim.deleted_at = world.clock.now
        await session.commit()

    assert await make_doctor(world).diagnose(ALICE, purchase.esim_id) is None
