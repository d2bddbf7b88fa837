"""The status poller and on-demand refresh against the fake eSIM Go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.messenger import AiogramMessenger
from db.models import Esim, EsimBundle
from services.esimgo.client import EsimGoClient
from services.notifications import Notifier
from services.tracking import TrackingService
from tests.helpers import BotEnv
from tests.tracking_helpers import ICCID, seed_esim

USER_ID = 6001
BUNDLE = "esim_1GB_7D_GB_V2"  # 1 GB, 7 days, United Kingdom


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def tracking_with_clock(env: BotEnv, clock: Clock) -> TrackingService:
    deps = env.deps
    notifier = Notifier(
        deps.session_factory,
        deps.translator,
        deps.catalogue,
        deps.alerts,
        clock=clock,
        topup_callback=None,
    )
    return TrackingService(
        deps.esimgo, deps.session_factory, notifier, deps.catalogue, clock=clock
    )


def sent_texts(env: BotEnv, chat_id: int = USER_ID) -> list[str]:
    return [
        str(c.params.get("text", ""))
        for c in env.fake_telegram.calls_to("sendMessage")
        if int(c.params.get("chat_id", 0)) == chat_id
    ]


async def load(env: BotEnv) -> tuple[Esim, list[EsimBundle]]:
    async with env.deps.session_factory() as session:
        esim = await session.scalar(select(Esim).where(Esim.iccid == ICCID))
        bundles = list(await session.scalars(select(EsimBundle).where(EsimBundle.iccid == ICCID)))
    assert esim is not None
    return esim, bundles


async def test_a_poll_stores_profile_usage_and_dates_and_tells_the_user(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    fake.add_esim(ICCID)
    fake.assign_bundle(ICCID, BUNDLE, reference="ord-1")
    fake.set_usage(ICCID, remaining_bytes=600_000_000, state="Active")
    fake.set_profile_status(ICCID, "Installed", installed_ms=1_763_000_000_000)
    fake.bundle_state_case = "title"  # eSIM Go documents "Active"; stored lower-case
    await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)

    updated = await bot_env.deps.tracking.poll_once(AiogramMessenger(bot_env.bot))

    assert updated == 1
    esim, [bundle] = await load(bot_env)
    assert esim.profile_status == "Installed" and esim.first_installed_at is not None
    assert esim.last_polled_at is not None and esim.tracking
    assert bundle.bundle_name == BUNDLE and bundle.state == "active"
    assert bundle.initial_bytes == 1_000_000_000 and bundle.remaining_bytes == 600_000_000
    assert bundle.assignment_key == "ord-1-0"
    assert bundle.start_at is not None and bundle.end_at == bundle.start_at + timedelta(days=7)
    texts = sent_texts(bot_env)
    assert len(texts) == 2
    assert "installed" in texts[0]
    assert "has started" in texts[1] and "United Kingdom" in texts[1]

    # Nothing changed: a second poll sends nothing new.
    await bot_env.deps.tracking.poll_once(AiogramMessenger(bot_env.bot))
    assert len(sent_texts(bot_env)) == 2


async def test_usage_growing_between_polls_warns_once_at_80_percent(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    fake.add_esim(ICCID)
    fake.assign_bundle(ICCID, BUNDLE)
    fake.set_usage(ICCID, remaining_bytes=900_000_000, state="active")
    await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    messenger = AiogramMessenger(bot_env.bot)

    await bot_env.deps.tracking.poll_once(messenger)
    fake.set_usage(ICCID, remaining_bytes=210_000_000)  # 79 %
    await bot_env.deps.tracking.poll_once(messenger)
    assert not any("80" in t for t in sent_texts(bot_env))
    fake.set_usage(ICCID, remaining_bytes=150_000_000)  # 85 %
    await bot_env.deps.tracking.poll_once(messenger)
    fake.set_usage(ICCID, remaining_bytes=100_000_000)  # 90 %
    await bot_env.deps.tracking.poll_once(messenger)

    warnings = [t for t in sent_texts(bot_env) if "80" in t]
    assert len(warnings) == 1 and "150 MB left" in warnings[0]


async def test_tracking_stops_once_every_bundle_is_finished(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    fake.add_esim(ICCID)
    fake.assign_bundle(ICCID, BUNDLE)
    fake.set_usage(ICCID, remaining_bytes=0, state="Depleted")
    fake.assign_bundle(ICCID, "esim_1GB_7D_TH_V2")
    fake.set_usage(ICCID, state="EXPIRED", bundle_name="esim_1GB_7D_TH_V2")
    await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)

    await bot_env.deps.tracking.poll_once(None)
    esim, bundles = await load(bot_env)
    assert not esim.tracking
    assert sorted(b.state for b in bundles) == ["depleted", "expired"]

    calls_before = len(fake.requests)
    assert await bot_env.deps.tracking.poll_once(None) == 0
    assert len(fake.requests) == calls_before


async def test_an_empty_fresh_esim_stays_tracked_and_an_old_one_does_not(
    bot_env: BotEnv,
) -> None:
    fake = bot_env.fake_esimgo
    fake.add_esim(ICCID)
    fake.add_esim("8944000000000000002")
    await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    await seed_esim(
        bot_env.deps.session_factory,
        user_id=USER_ID,
        iccid="8944000000000000002",
        created_at=datetime.now(UTC) - timedelta(days=5),
    )
    await bot_env.deps.tracking.poll_once(None)
    async with bot_env.deps.session_factory() as session:
        rows = (await session.execute(select(Esim.iccid, Esim.tracking))).all()
    tracking = {str(row[0]): bool(row[1]) for row in rows}
    assert tracking == {ICCID: True, "8944000000000000002": False}


async def test_an_esim_gone_from_esim_go_is_no_longer_polled(bot_env: BotEnv) -> None:
    await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)  # unknown to the fake: 404
    await bot_env.deps.tracking.poll_once(None)
    esim, _ = await load(bot_env)
    assert not esim.tracking


async def test_the_poller_keeps_under_the_request_budget(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    iccids = [f"89440000000000001{i:02d}" for i in range(12)]
    for iccid in iccids:
        fake.add_esim(iccid)
        fake.assign_bundle(iccid, BUNDLE)
        await seed_esim(bot_env.deps.session_factory, user_id=USER_ID, iccid=iccid)
    deps = bot_env.deps
    # Our own pacing set high so the client's shared limiter (9/s) is what binds.
    tracking = TrackingService(
        deps.esimgo, deps.session_factory, deps.notifier, deps.catalogue, polls_per_second=100
    )
    fake.requests.clear()

    assert await tracking.poll_once(None) == 12

    assert len(fake.requests) == 24
    assert fake.max_requests_in_window(1.0) <= 10


async def test_default_pacing_leaves_room_for_sales(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    for i in range(4):
        iccid = f"89440000000000002{i:02d}"
        fake.add_esim(iccid)
        await seed_esim(bot_env.deps.session_factory, user_id=USER_ID, iccid=iccid)
    fake.requests.clear()
    await bot_env.deps.tracking.poll_once(None)
    # Two eSIMs a second by default: four requests a second at most.
    assert fake.max_requests_in_window(1.0) <= 5


async def test_on_demand_refresh_is_cached_for_a_minute(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    fake.add_esim(ICCID)
    fake.assign_bundle(ICCID, BUNDLE)
    await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    clock = Clock()
    tracking = tracking_with_clock(bot_env, clock)
    route = f"GET /esims/{ICCID}"

    assert await tracking.refresh(ICCID)
    fake.set_usage(ICCID, remaining_bytes=500_000_000, state="active")
    clock.now += timedelta(seconds=30)
    assert await tracking.refresh(ICCID)
    assert len(fake.calls(route)) == 1
    _, [bundle] = await load(bot_env)
    assert bundle.state == "queued"

    clock.now += timedelta(seconds=31)
    assert await tracking.refresh(ICCID)
    assert len(fake.calls(route)) == 2
    _, [bundle] = await load(bot_env)
    assert bundle.state == "active" and bundle.remaining_bytes == 500_000_000


async def test_on_demand_refresh_shows_stored_state_when_esim_go_fails(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    fake.add_esim(ICCID)
    await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    client = EsimGoClient(fake.base_url, fake.api_key)
    try:
        tracking = TrackingService(
            client, bot_env.deps.session_factory, bot_env.deps.notifier, bot_env.deps.catalogue
        )
        fake.fail_next(f"GET /esims/{ICCID}", status=500, times=10)
        assert await tracking.refresh(ICCID) is False
        assert await tracking.refresh("8900000000000000000") is False  # not ours
    finally:
        await client.close()


async def test_expiry_warning_comes_a_day_before_the_end(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    fake.add_esim(ICCID)
    fake.assign_bundle(ICCID, BUNDLE, reference="ord-9")
    fake.set_usage(ICCID, state="active")
    clock = Clock()
    started = clock.now - timedelta(days=5)
    await seed_esim(
        bot_env.deps.session_factory,
        user_id=USER_ID,
        bundles=[
            {
                "assignment_key": "ord-9-0",
                "bundle_name": BUNDLE,
                "state": "active",
                "start_at": started,
                "end_at": started + timedelta(days=7),
            }
        ],
    )
    tracking = tracking_with_clock(bot_env, clock)
    messenger = AiogramMessenger(bot_env.bot)

    await tracking.poll_once(messenger)  # 2 days left
    assert not any("24 hours" in t for t in sent_texts(bot_env))

    clock.now += timedelta(hours=25)  # 23 h left
    await tracking.poll_once(messenger)
    clock.now += timedelta(hours=1)
    await tracking.poll_once(messenger)

    warnings = [t for t in sent_texts(bot_env) if "24 hours" in t]
    assert len(warnings) == 1
