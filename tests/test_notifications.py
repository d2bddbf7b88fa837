"""Notifications: the right moment, once, in the user's language; and the usage display."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from bot.messenger import AiogramMessenger
from db.models import Esim, EsimBundle, NotificationSent
from services.i18n import Translator
from services.notifications import Notifier
from services.usage import (
    EsimState,
    esim_state,
    group_bundles,
    is_installed,
    state_label,
    usage_bar,
    usage_line,
)
from tests.helpers import BotEnv
from tests.tracking_helpers import ICCID, seed_esim

# Each notification goes out once, deduplicated in the database: every bot_env test runs on
# SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True

USER_ID = 8001
BUNDLE = "esim_1GB_7D_GB_V2"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@dataclass
class Row:
    state: str
    initial_bytes: int | None = 5_000_000_000
    remaining_bytes: int | None = 2_400_000_000
    unlimited: bool = False
    assigned_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = datetime(2026, 12, 12, 9, 0, tzinfo=UTC)


# -- the usage display (pure) -----------------------------------------------------------------


def test_usage_line_in_english_and_russian() -> None:
    translator = Translator()
    row = Row("active")
    assert usage_line(row, "en", translator) == (
        "▓▓▓▓░░░░ 52\u00a0% · 2.4 GB of 5 GB left · until 12 Dec"
    )
    assert usage_line(row, "ru", translator) == (
        "▓▓▓▓░░░░ 52\u00a0% · осталось 2,4 ГБ из 5 ГБ · до 12 дек."
    )


def test_usage_line_for_small_unlimited_and_waiting_plans() -> None:
    translator = Translator()
    small = Row("active", initial_bytes=1_000_000_000, remaining_bytes=150_000_000)
    assert "150 MB of 1 GB left" in usage_line(small, "en", translator)
    unlimited = Row("active", initial_bytes=None, remaining_bytes=None, unlimited=True)
    assert usage_line(unlimited, "en", translator) == "Unlimited data · until 12 Dec"
    queued = Row("queued", remaining_bytes=5_000_000_000, end_at=None)
    assert usage_line(queued, "en", translator) == (
        "░░░░░░░░ 0\u00a0% · 5 GB of 5 GB left · starts on first use"
    )
    depleted = Row("depleted", remaining_bytes=0)
    assert usage_line(depleted, "en", translator).startswith("▓▓▓▓▓▓▓▓ 100\u00a0%")


def test_usage_bar_rounds_to_eighths() -> None:
    assert usage_bar(Decimal(0)) == "░" * 8
    assert usage_bar(Decimal("0.52")) == "▓▓▓▓░░░░"
    assert usage_bar(Decimal(1)) == "▓" * 8


def test_state_in_words() -> None:
    translator = Translator()
    assert esim_state(False, []) is EsimState.NOT_INSTALLED
    assert esim_state(False, ["queued"]) is EsimState.NOT_INSTALLED
    assert esim_state(True, ["Queued"]) is EsimState.READY
    assert esim_state(True, ["expired", "ACTIVE"]) is EsimState.IN_USE
    assert esim_state(True, ["depleted", "expired"]) is EsimState.USED_UP
    assert esim_state(True, ["expired", "lapsed"]) is EsimState.EXPIRED
    assert state_label(EsimState.USED_UP, "en", translator) == "used up"
    assert state_label(EsimState.NOT_INSTALLED, "ru", translator) == "ещё не установлена"
    assert is_installed("Installed", None)
    assert is_installed("Released", NOW)  # removed after install
    assert not is_installed("Released", None)


def test_group_bundles_shows_the_active_one_and_lists_the_queue() -> None:
    active = Row("active")
    first = Row("queued", assigned_at=NOW)
    second = Row("queued", assigned_at=NOW + timedelta(days=1))
    done = Row("expired")
    groups = group_bundles([second, done, active, first])
    assert groups.current is active
    assert groups.queued == (first, second)
    assert groups.finished == (done,)
    assert group_bundles([second, first]).current is first
    assert group_bundles([done]).current is done


# -- notifications ----------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def notifier(env: BotEnv, clock: Clock) -> Notifier:
    deps = env.deps
    return Notifier(
        deps.session_factory,
        deps.translator,
        deps.catalogue,
        deps.alerts,
        clock=clock,
        topup_callback=lambda esim_id: f"topup:{esim_id}",
    )


def texts(env: BotEnv) -> list[str]:
    return [str(c.params["text"]) for c in env.fake_telegram.calls_to("sendMessage")]


def bundle(state: str, remaining: int, **fields: object) -> EsimBundle:
    return EsimBundle(
        iccid=ICCID,
        assignment_key="ref-1",
        bundle_name=BUNDLE,
        state=state,
        unlimited=False,
        initial_bytes=1_000_000_000,
        remaining_bytes=remaining,
        **fields,
    )


async def test_each_notification_fires_once_at_its_moment(bot_env: BotEnv) -> None:
    esim = await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    clock = Clock(NOW)
    notify = notifier(bot_env, clock)
    messenger = AiogramMessenger(bot_env.bot)
    end = NOW + timedelta(days=3)

    # Bought, not installed, plan waiting: nothing to say.
    assert await notify.evaluate(messenger, esim, [bundle("queued", 1_000_000_000)]) == []

    esim.profile_status = "Installed"
    sent = await notify.evaluate(messenger, esim, [bundle("queued", 1_000_000_000)])
    assert sent == [f"esim:{ICCID}:installed"]

    started = bundle("active", 900_000_000, start_at=NOW, end_at=end)
    assert await notify.evaluate(messenger, esim, [started]) == [f"bundle:{ICCID}:ref-1:started"]
    assert "8 Dec" in texts(bot_env)[-1] and "United Kingdom" in texts(bot_env)[-1]

    at_79 = bundle("active", 210_000_000, start_at=NOW, end_at=end)
    assert await notify.evaluate(messenger, esim, [at_79]) == []
    at_80 = bundle("active", 200_000_000, start_at=NOW, end_at=end)
    assert await notify.evaluate(messenger, esim, [at_80]) == [f"bundle:{ICCID}:ref-1:used80"]

    clock.now = end - timedelta(hours=25)
    assert await notify.evaluate(messenger, esim, [at_80]) == []
    clock.now = end - timedelta(hours=23)
    assert await notify.evaluate(messenger, esim, [at_80]) == [f"bundle:{ICCID}:ref-1:expiry24h"]

    used_up = bundle("depleted", 0, start_at=NOW, end_at=end)
    assert await notify.evaluate(messenger, esim, [used_up]) == [f"bundle:{ICCID}:ref-1:used100"]

    # Everything once: evaluating any state again sends nothing.
    for state in (started, at_80, used_up):
        assert await notify.evaluate(messenger, esim, [state]) == []
    assert len(texts(bot_env)) == 5


async def test_a_regional_plan_is_named_as_the_screens_name_it(bot_env: BotEnv) -> None:
    esim = await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    notify = notifier(bot_env, Clock(NOW))
    europe = EsimBundle(
        iccid=ICCID,
        assignment_key="ref-eu",
        bundle_name="esim_1GB_7D_REUP_V2",
        state="active",
        unlimited=False,
        initial_bytes=1_000_000_000,
        remaining_bytes=900_000_000,
        start_at=NOW,
        end_at=NOW + timedelta(days=7),
    )
    await notify.evaluate(AiogramMessenger(bot_env.bot), esim, [europe])
    assert "🚀 Your plan 🌍 Europe+ · 1 GB · 7 days has started." in texts(bot_env)[-1]


async def test_a_plan_used_up_at_once_skips_the_80_percent_warning(bot_env: BotEnv) -> None:
    esim = await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    notify = notifier(bot_env, Clock(NOW))
    sent = await notify.evaluate(AiogramMessenger(bot_env.bot), esim, [bundle("depleted", 0)])
    assert sent == [f"bundle:{ICCID}:ref-1:used100"]


async def test_expired_plans_get_no_usage_or_expiry_messages(bot_env: BotEnv) -> None:
    esim = await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    notify = notifier(bot_env, Clock(NOW))
    old = bundle("expired", 0, start_at=NOW - timedelta(days=8), end_at=NOW - timedelta(days=1))
    assert await notify.evaluate(AiogramMessenger(bot_env.bot), esim, [old]) == []


async def test_russian_user_gets_russian_texts_and_buttons(bot_env: BotEnv) -> None:
    esim = await seed_esim(bot_env.deps.session_factory, user_id=USER_ID, language="ru")
    notify = notifier(bot_env, Clock(NOW))
    messenger = AiogramMessenger(bot_env.bot)
    active = bundle("active", 100_000_000, start_at=NOW, end_at=NOW + timedelta(hours=10))

    await notify.evaluate(messenger, esim, [active])

    started, used80, expiry = texts(bot_env)
    assert "начал действовать" in started and "Великобритания" in started
    assert "80 %" in used80 and "100 МБ" in used80
    assert "24 часа" in expiry
    call = bot_env.fake_telegram.calls_to("sendMessage")[-1]
    markup = call.params["reply_markup"]
    assert "Пополнить" in str(markup)


async def test_a_passing_telegram_failure_is_retried_next_time(bot_env: BotEnv) -> None:
    esim = await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    notify = notifier(bot_env, Clock(NOW))
    messenger = AiogramMessenger(bot_env.bot)
    bot_env.fake_telegram.fail_next("sendMessage", error_code=500, description="Internal")

    assert await notify.evaluate(messenger, esim, [bundle("depleted", 0)]) == []
    assert await notify.evaluate(messenger, esim, [bundle("depleted", 0)]) == [
        f"bundle:{ICCID}:ref-1:used100"
    ]
    async with bot_env.deps.session_factory() as session:
        keys = (await session.scalars(select(NotificationSent.dedup_key))).all()
    assert keys == [f"bundle:{ICCID}:ref-1:used100"]


async def test_a_blocked_user_is_not_messaged_again(bot_env: BotEnv) -> None:
    esim = await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    notify = notifier(bot_env, Clock(NOW))
    messenger = AiogramMessenger(bot_env.bot)
    bot_env.fake_telegram.fail_next("sendMessage")  # 403: bot was blocked by the user

    assert await notify.evaluate(messenger, esim, [bundle("depleted", 0)]) == []
    esim.profile_status = "Installed"
    assert await notify.evaluate(messenger, esim, [bundle("depleted", 0)]) == []
    assert len(bot_env.fake_telegram.calls_to("sendMessage")) == 1


async def test_deletion_notice_once_per_scheduled_date(bot_env: BotEnv) -> None:
    esim = await seed_esim(bot_env.deps.session_factory, user_id=USER_ID)
    notify = notifier(bot_env, Clock(NOW))
    messenger = AiogramMessenger(bot_env.bot)
    assert await notify.deletion_scheduled(messenger, esim, NOW)
    assert not await notify.deletion_scheduled(messenger, esim, NOW + timedelta(hours=1))
    assert "12 Dec" in texts(bot_env)[0]
    async with bot_env.deps.session_factory() as session:
        assert await session.scalar(select(Esim.iccid)) == ICCID
