"""/myesims, live: opening an eSIM reads eSIM Go (cached for a minute) and shows usage bars,
the state in words, queued and finished plans; the list shows stored state only."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from babel.dates import format_date
from sqlalchemy import select, update

from db.models import Esim, EsimBundle, Order, OrderStatus
from handlers.callbacks import MyEsimsCallback, TopUpCallback
from tests.fakes.telegram import StoredMessage
from tests.helpers import BotEnv, make_user
from tests.tracking_helpers import ICCID, seed_esim

ALICE = 7001
TH_5GB = "esim_5GB_30D_TH_V2"
TH_1GB = "esim_1GB_7D_TH_V2"
GB_1GB = "esim_1GB_7D_GB_V2"
TH_UNLIMITED = "esim_UL_7D_TH_V2"
INSTALLED_MS = 1_763_000_000_000
ESIM_ROUTE = f"GET /esims/{ICCID}"
BUNDLES_ROUTE = f"GET /esims/{ICCID}/bundles"


async def seed(
    env: BotEnv,
    bundle_name: str = TH_5GB,
    *,
    language: str = "en",
    bundles: list[dict[str, object]] | None = None,
) -> int:
    """Alice's delivered eSIM bought as `bundle_name` (with its order); returns the eSIM id."""
    esim = await seed_esim(
        env.deps.session_factory, user_id=ALICE, language=language, bundles=bundles
    )
    async with env.deps.session_factory() as session:
        session.add(
            Order(
                public_id="LIVE0001",
                telegram_user_id=ALICE,
                chat_id=ALICE,
                language=language,
                bundle_name=bundle_name,
                country_code="TH",
                country_name="Thailand",
                cost=Decimal("4.50"),
                price=450,
                price_currency="XTR",
                status=OrderStatus.DELIVERED.value,
                iccid=ICCID,
                created_at=datetime(2026, 3, 10, 9, 30, tzinfo=UTC),
            )
        )
        await session.commit()
    return esim.id


async def open_esim(env: BotEnv, esim_id: int, language: str = "en") -> StoredMessage:
    """Alice sends /myesims and opens the eSIM; returns the screen she sees."""
    alice = make_user(ALICE, language_code=language)
    await env.send(alice, "/myesims")
    screen_id = env.screen(alice).message_id
    await env.press(alice, MyEsimsCallback(action="esim", id=esim_id), screen_id)
    # The screen is edited in place; news found by the refresh may follow it as new messages.
    return env.message(alice, screen_id)


async def stored_bundle(env: BotEnv, name: str) -> EsimBundle:
    async with env.deps.session_factory() as session:
        row = await session.scalar(select(EsimBundle).where(EsimBundle.bundle_name == name))
    assert row is not None
    return row


def until(moment: datetime | None, language: str = "en") -> str:
    assert moment is not None
    return format_date(moment.date(), format="d MMM", locale=language)


async def age_last_poll(env: BotEnv, by: timedelta) -> None:
    """Pretend the last poll happened `by` ago (the one-minute cache is over)."""
    async with env.deps.session_factory() as session:
        await session.execute(
            update(Esim).where(Esim.iccid == ICCID).values(last_polled_at=datetime.now(UTC) - by)
        )
        await session.commit()


def live_esim(env: BotEnv, *, installed: bool = True) -> None:
    """eSIM Go knows the eSIM; installed unless told otherwise."""
    env.fake_esimgo.add_esim(ICCID)
    if installed:
        env.fake_esimgo.set_profile_status(ICCID, "Installed", installed_ms=INSTALLED_MS)


async def test_opening_an_esim_reads_esim_go_and_shows_the_usage_bar(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    live_esim(bot_env)
    fake.assign_bundle(ICCID, TH_5GB)
    fake.set_usage(ICCID, remaining_bytes=2_400_000_000, state="Active")
    esim_id = await seed(bot_env)

    screen = await open_esim(bot_env, esim_id)

    assert len(fake.calls(ESIM_ROUTE)) == 1 and len(fake.calls(BUNDLES_ROUTE)) == 1
    bundle = await stored_bundle(bot_env, TH_5GB)
    text = screen.text or ""
    assert "🇹🇭 Thailand · 5 GB · 30 days" in text
    assert "Status: in use" in text
    assert f"▓▓▓▓░░░░ 52\u00a0% · 2.4 GB of 5 GB left · until {until(bundle.end_at)}" in text
    assert "Updated just now" in text
    assert screen.button("Top up").get("callback_data") == TopUpCallback(esim_id=esim_id).pack()
    assert not bot_env.error_logs


async def test_a_second_open_within_a_minute_uses_the_cache(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    live_esim(bot_env)
    fake.assign_bundle(ICCID, TH_5GB)
    fake.set_usage(ICCID, remaining_bytes=2_400_000_000, state="active")
    esim_id = await seed(bot_env)
    alice = make_user(ALICE)

    screen_id = (await open_esim(bot_env, esim_id)).message_id
    fake.set_usage(ICCID, remaining_bytes=1_000_000_000)
    await bot_env.tap(alice, "Back", screen_id)
    await bot_env.press(alice, MyEsimsCallback(action="esim", id=esim_id), screen_id)

    assert len(fake.calls(ESIM_ROUTE)) == 1 and len(fake.calls(BUNDLES_ROUTE)) == 1
    assert "2.4 GB of 5 GB left" in (bot_env.message(alice, screen_id).text or "")

    await age_last_poll(bot_env, timedelta(minutes=2))
    await bot_env.press(alice, MyEsimsCallback(action="esim", id=esim_id), screen_id)

    assert len(fake.calls(ESIM_ROUTE)) == 2 and len(fake.calls(BUNDLES_ROUTE)) == 2
    text = bot_env.message(alice, screen_id).text or ""
    assert "▓▓▓▓▓▓░░ 80\u00a0% · 1 GB of 5 GB left" in text
    # The fresh read crossed 80 %: the warning with "Top up" follows the screen, once.
    warnings = [m for m in bot_env.fake_telegram.chat(ALICE) if "used 80" in (m.text or "")]
    assert len(warnings) == 1 and "Top up" in warnings[0].button_texts()[0]


async def test_the_list_shows_state_and_data_left_from_stored_data_only(
    bot_env: BotEnv,
) -> None:
    esim_id = await seed(
        bot_env,
        TH_1GB,
        bundles=[
            {
                "assignment_key": "a-1",
                "bundle_name": TH_1GB,
                "state": "active",
                "initial_bytes": 1_000_000_000,
                "remaining_bytes": 400_000_000,
            }
        ],
    )
    await seed_esim(
        bot_env.deps.session_factory,
        user_id=ALICE,
        iccid="8944538532008169999",
        bundles=[{"assignment_key": "b-1", "bundle_name": GB_1GB, "state": "expired"}],
    )
    alice = make_user(ALICE)
    bot_env.fake_esimgo.requests.clear()  # the catalogue sync at start

    await bot_env.send(alice, "/myesims")

    assert bot_env.fake_esimgo.requests == []
    text = bot_env.screen(alice).text or ""
    assert "🇹🇭 Thailand · 1 GB · 7 days\nin use · 40\u00a0% left" in text
    assert "🇬🇧 United Kingdom · 1 GB · 7 days\nexpired ·" in text
    assert bot_env.screen(alice).button("Thailand").get("callback_data") == (
        MyEsimsCallback(action="esim", id=esim_id).pack()
    )


async def test_no_database_connection_is_held_while_esim_go_answers(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    live_esim(bot_env)
    fake.assign_bundle(ICCID, TH_1GB)
    esim_id = await seed(bot_env, TH_1GB)
    await age_last_poll(bot_env, timedelta(hours=2))
    fake.fail_next(ESIM_ROUTE, status=200, delay=0.5)  # slow, then fine
    pool = bot_env.deps.engine.sync_engine.pool

    opening = asyncio.create_task(open_esim(bot_env, esim_id))
    async with asyncio.timeout(10):
        while not fake.calls(ESIM_ROUTE):  # noqa: ASYNC110 - the fake has no "request" event
            await asyncio.sleep(0.01)
    held_meanwhile = pool.checkedout()  # type: ignore[attr-defined]
    screen = await opening

    assert held_meanwhile == 0
    assert "Updated just now" in (screen.text or "")  # what eSIM Go answered is shown


async def test_esim_go_down_shows_the_stored_state_without_a_crash(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    live_esim(bot_env)
    fake.assign_bundle(ICCID, TH_1GB)
    fake.set_usage(ICCID, remaining_bytes=100_000_000, state="active")
    end = datetime(2026, 3, 17, 12, 0, tzinfo=UTC)
    esim_id = await seed(
        bot_env,
        TH_1GB,
        bundles=[
            {
                "assignment_key": "a-1",
                "bundle_name": TH_1GB,
                "state": "active",
                "initial_bytes": 1_000_000_000,
                "remaining_bytes": 750_000_000,
                "start_at": end - timedelta(days=7),
                "end_at": end,
            }
        ],
    )
    await age_last_poll(bot_env, timedelta(hours=2))
    fake.fail_next(ESIM_ROUTE, status=503, times=10)

    screen = await open_esim(bot_env, esim_id)

    assert fake.calls(ESIM_ROUTE)  # it tried
    text = screen.text or ""
    assert "Status: in use" in text
    assert "▓▓░░░░░░ 25\u00a0% · 750 MB of 1 GB left · until 17 Mar" in text
    assert "Couldn't refresh just now; this was updated 2 hours ago." in text
    assert "Something went wrong" not in text
    assert (await stored_bundle(bot_env, TH_1GB)).remaining_bytes == 750_000_000
    assert not bot_env.error_logs


async def test_queued_and_finished_plans_are_listed(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    live_esim(bot_env)
    fake.assign_bundle(ICCID, GB_1GB)
    fake.set_usage(ICCID, remaining_bytes=0, state="Depleted")
    fake.assign_bundle(ICCID, TH_1GB)
    fake.set_usage(ICCID, remaining_bytes=250_000_000, state="Active")
    fake.assign_bundle(ICCID, TH_5GB)  # queued behind the active one
    esim_id = await seed(bot_env, TH_1GB)

    text = (await open_esim(bot_env, esim_id)).text or ""

    active = await stored_bundle(bot_env, TH_1GB)
    assert text.startswith("🇹🇭 Thailand · 1 GB · 7 days\nStatus: in use\n")
    assert f"▓▓▓▓▓▓░░ 75\u00a0% · 250 MB of 1 GB left · until {until(active.end_at)}" in text
    queued = text.index("Queued — each starts when the plan before it ends:")
    finished = text.index("Finished")
    assert queued < text.index("• 🇹🇭 Thailand · 5 GB · 30 days") < finished
    assert "• 🇬🇧 United Kingdom · 1 GB · 7 days — used up" in text[finished:]


@pytest.mark.parametrize(
    ("installed", "state", "word", "line"),
    [
        (False, "queued", "not installed yet", "░░░░░░░░ 0\u00a0% · 1 GB of 1 GB left · starts"),
        (True, "queued", "ready", "1 GB of 1 GB left · starts on first use"),
        (True, "active", "in use", "▓▓▓▓▓▓▓░ 90\u00a0% · 100 MB of 1 GB left · until"),
        (True, "depleted", "used up", "\nused up\n"),
        (True, "expired", "expired", "\nexpired\n"),
    ],
)
async def test_each_state_in_words(
    bot_env: BotEnv, installed: bool, state: str, word: str, line: str
) -> None:
    fake = bot_env.fake_esimgo
    live_esim(bot_env, installed=installed)
    fake.assign_bundle(ICCID, TH_1GB)
    if state != "queued":
        fake.set_usage(ICCID, remaining_bytes=100_000_000, state=state.title())
    esim_id = await seed(bot_env, TH_1GB)

    text = (await open_esim(bot_env, esim_id)).text or ""

    assert f"Status: {word}\n" in text
    assert line in text


async def test_unlimited_plan_shows_no_bar(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    live_esim(bot_env)
    fake.assign_bundle(ICCID, TH_UNLIMITED)
    fake.set_usage(ICCID, state="active")
    esim_id = await seed(bot_env, TH_UNLIMITED)

    text = (await open_esim(bot_env, esim_id)).text or ""

    bundle = await stored_bundle(bot_env, TH_UNLIMITED)
    assert f"\nUnlimited data · until {until(bundle.end_at)}\n" in text
    assert "▓" not in text and "░" not in text


async def test_a_russian_user_sees_it_in_russian(bot_env: BotEnv) -> None:
    fake = bot_env.fake_esimgo
    live_esim(bot_env)
    fake.assign_bundle(ICCID, TH_5GB)
    fake.set_usage(ICCID, remaining_bytes=2_400_000_000, state="active")
    fake.assign_bundle(ICCID, TH_1GB)
    esim_id = await seed(bot_env, language="ru")
    alice = make_user(ALICE, language_code="ru")

    screen = await open_esim(bot_env, esim_id, "ru")
    text = screen.text or ""

    bundle = await stored_bundle(bot_env, TH_5GB)
    end = until(bundle.end_at, "ru")
    assert "🇹🇭 Таиланд · 5 ГБ · 30 дн." in text
    assert "Статус: используется" in text
    assert f"▓▓▓▓░░░░ 52\u00a0% · осталось 2,4 ГБ из 5 ГБ · до {end}" in text
    assert "В очереди" in text and "Обновлено только что" in text
    assert re.search(r"до \d{1,2} [а-я]+\.?$", text.split("\n")[2])

    await bot_env.tap(alice, "Назад", screen.message_id)
    listing = bot_env.message(alice, screen.message_id).text or ""
    assert "используется · осталось 48\u00a0%" in listing
