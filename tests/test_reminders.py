"""Reminders: an invoice unpaid for 30 minutes, an eSIM not installed after 24 hours; each
once, in the user's language, with a button to stop them, and none after opting out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from db.models import Esim, OrderStatus
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.gifts import GiftService
from services.i18n import Translator
from services.notifications import Notifier
from services.reminders import ReminderButtons, ReminderService
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram
from tests.reach_helpers import add_order, add_user, synced_catalogue, telegram_messenger

ANNA, BORIS, CAROL = 1001, 2002, 3003
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
BUTTONS = ReminderButtons(
    turn_off="reminders:off",
    pay=lambda public_id: f"pay:{public_id}",
    install_help=lambda esim_id: f"install:{esim_id}",
)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def messenger(fake_telegram: FakeTelegram) -> AsyncIterator[AiogramMessenger]:
    async with telegram_messenger(fake_telegram) as messenger:
        yield messenger


@pytest.fixture
async def catalogue(
    fake_esimgo: FakeEsimGo, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[CatalogueService]:
    async with synced_catalogue(fake_esimgo, session_factory) as catalogue:
        yield catalogue


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def notifier(
    session_factory: async_sessionmaker[AsyncSession], catalogue: CatalogueService
) -> Notifier:
    return Notifier(session_factory, Translator(), catalogue, AdminAlerts(session_factory, ()))


@pytest.fixture
def reminders(
    session_factory: async_sessionmaker[AsyncSession], notifier: Notifier, clock: Clock
) -> ReminderService:
    return ReminderService(session_factory, notifier, Translator(), buttons=BUTTONS, clock=clock)


async def test_an_unpaid_invoice_is_reminded_once_after_half_an_hour(
    session_factory: async_sessionmaker[AsyncSession],
    reminders: ReminderService,
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
) -> None:
    await add_user(session_factory, ANNA, language="en")
    await add_user(session_factory, BORIS, language="ru")
    unpaid = OrderStatus.AWAITING_PAYMENT
    due = await add_order(
        session_factory, user_id=ANNA, status=unpaid, created_at=NOW - timedelta(minutes=31)
    )
    russian = await add_order(
        session_factory, user_id=BORIS, status=unpaid, created_at=NOW - timedelta(minutes=45)
    )
    await add_order(
        session_factory, user_id=ANNA, status=unpaid, created_at=NOW - timedelta(minutes=10)
    )
    await add_order(  # expired long ago: the invoice no longer works
        session_factory, user_id=ANNA, status=unpaid, created_at=NOW - timedelta(days=2)
    )
    await add_order(
        session_factory,
        user_id=ANNA,
        status=OrderStatus.PAID,
        created_at=NOW - timedelta(hours=1),
    )

    sent = await reminders.run_once(messenger)

    assert sent == [f"reminder:unpaid:{due.order_id}", f"reminder:unpaid:{russian.order_id}"]
    to_anna = fake_telegram.last_bot_message(ANNA)
    assert to_anna.text == (
        "🕑 You have not paid for 🇬🇧 United Kingdom · 1 GB · 7 days yet. The invoice above "
        "still works: your eSIM arrives a few seconds after payment."
    )
    assert to_anna.button("Pay now")["callback_data"] == f"pay:{due.public_id}"
    assert to_anna.button("No more reminders")["callback_data"] == "reminders:off"
    to_boris = fake_telegram.last_bot_message(BORIS)
    assert (to_boris.text or "").startswith("🕑 Вы ещё не оплатили 🇬🇧 Великобритания")
    assert to_boris.button_texts() == ["💳 Оплатить", "🔕 Больше не напоминать"]

    messages = len(fake_telegram.calls_to("sendMessage"))
    assert await reminders.run_once(messenger) == []
    assert len(fake_telegram.calls_to("sendMessage")) == messages


async def test_no_reminders_once_turned_off_and_again_once_turned_on(
    session_factory: async_sessionmaker[AsyncSession],
    reminders: ReminderService,
    messenger: AiogramMessenger,
    clock: Clock,
) -> None:
    await add_user(session_factory, ANNA)
    unpaid = OrderStatus.AWAITING_PAYMENT
    order = await add_order(
        session_factory, user_id=ANNA, status=unpaid, created_at=NOW - timedelta(minutes=40)
    )
    stranger = await add_order(  # no users row yet: reminders are on by default
        session_factory, user_id=CAROL, status=unpaid, created_at=NOW - timedelta(minutes=40)
    )
    assert await reminders.enabled(ANNA)
    await reminders.set_enabled(ANNA, False)
    await reminders.set_enabled(CAROL, False)  # creates her row
    assert not await reminders.enabled(ANNA)
    assert not await reminders.enabled(CAROL)

    assert await reminders.run_once(messenger) == []

    await reminders.set_enabled(ANNA, True)
    clock.now += timedelta(minutes=5)
    assert await reminders.run_once(messenger) == [f"reminder:unpaid:{order.order_id}"]
    assert stranger.order_id != order.order_id
    text, button = reminders.setting_text(False, "ru")
    assert text == "🔕 Напоминания выключены. Включить их снова можно командой /reminders."
    assert button == "🔔 Включить напоминания"


async def test_an_esim_not_installed_after_a_day_is_reminded_once(
    session_factory: async_sessionmaker[AsyncSession],
    reminders: ReminderService,
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
) -> None:
    await add_user(session_factory, ANNA)
    day_old = NOW - timedelta(hours=25)
    due = await add_order(
        session_factory, user_id=ANNA, iccid="8944000000000000001", created_at=day_old
    )
    await add_order(  # bought two hours ago: too early
        session_factory,
        user_id=ANNA,
        iccid="8944000000000000002",
        created_at=NOW - timedelta(hours=2),
    )
    installed = await add_order(
        session_factory, user_id=ANNA, iccid="8944000000000000003", created_at=day_old
    )
    enabled = await add_order(
        session_factory, user_id=ANNA, iccid="8944000000000000004", created_at=day_old
    )
    await add_order(  # bought ten days ago, before reminders existed: left alone
        session_factory,
        user_id=ANNA,
        iccid="8944000000000000005",
        created_at=NOW - timedelta(days=10),
    )
    async with session_factory() as session:
        await session.execute(
            update(Esim).where(Esim.id == installed.esim_id).values(first_installed_at=NOW)
        )
        await session.execute(
            update(Esim).where(Esim.id == enabled.esim_id).values(profile_status="Enabled")
        )
        await session.commit()

    assert await reminders.run_once(messenger) == ["reminder:install:8944000000000000001"]
    message = fake_telegram.last_bot_message(ANNA)
    assert (message.text or "").startswith(
        "📲 Your eSIM 🇬🇧 United Kingdom · 1 GB · 7 days is not installed yet."
    )
    assert message.button("How to install")["callback_data"] == f"install:{due.esim_id}"
    assert message.button("No more reminders")["callback_data"] == "reminders:off"
    assert await reminders.run_once(messenger) == []


async def test_a_gift_is_reminded_to_whoever_holds_it_a_day_after_they_got_it(
    session_factory: async_sessionmaker[AsyncSession],
    reminders: ReminderService,
    notifier: Notifier,
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
    clock: Clock,
) -> None:
    await add_user(session_factory, ANNA)
    await add_user(session_factory, BORIS, language="ru")
    iccid = "8944000000000000009"
    gift_order = await add_order(
        session_factory, user_id=ANNA, iccid=iccid, created_at=NOW - timedelta(hours=30)
    )
    gifts = GiftService(session_factory, notifier, Translator(), clock=clock)
    await gifts.register(gift_order.order_id, ANNA)
    token = await gifts.issue_link(gift_order.order_id)
    assert token is not None

    # Nobody has claimed it: the buyer is not asked to install a present.
    assert await reminders.run_once(messenger) == []
    await gifts.claim(token, BORIS)
    clock.now += timedelta(hours=23)
    assert await reminders.run_once(messenger) == []
    clock.now += timedelta(hours=2)
    assert await reminders.run_once(messenger) == [f"reminder:install:{iccid}"]
    assert (fake_telegram.last_bot_message(BORIS).text or "").startswith("📲 Ваша eSIM")
