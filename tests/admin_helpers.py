"""Fixtures for the operator's side at the service level: the real database (SQLite and
PostgreSQL), a real aiogram Bot talking to FakeTelegram, the eSIM Go client to FakeEsimGo."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import create_bot
from bot.config import load_settings
from bot.messenger import AiogramMessenger
from db.models import Order, OrderStatus, User
from services.esimgo.client import EsimGoClient
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram

ADMINS = (900_000_001, 900_000_002)
GB_BUNDLE = "esim_1GB_7D_GB_V2"
_public_ids = itertools.count(1)


class Clock:
    """A service's clock; tests move it instead of sleeping."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def real_bot(fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo) -> AsyncIterator[Bot]:
    """The production Bot (session, defaults) pointed at FakeTelegram."""
    settings = load_settings(
        _env_file=None,
        bot_token=DEFAULT_TOKEN,
        esimgo_api_key=fake_esimgo.api_key,
        telegram_api_base=fake_telegram.base_url,
    )
    bot = create_bot(settings)
    yield bot
    await bot.session.close()


@pytest.fixture
def messenger(real_bot: Bot) -> AiogramMessenger:
    return AiogramMessenger(real_bot)


@pytest.fixture
async def esimgo_client(fake_esimgo: FakeEsimGo) -> AsyncIterator[EsimGoClient]:
    client = EsimGoClient(fake_esimgo.base_url, fake_esimgo.api_key)
    yield client
    await client.close()


def make_order(**fields: Any) -> Order:
    """An order with sensible defaults: a paid and delivered 1 GB UK plan for 125 Stars."""
    number = next(_public_ids)
    values: dict[str, Any] = {
        "public_id": f"T{number:09d}",
        "telegram_user_id": 1001,
        "telegram_username": "traveller",
        "chat_id": fields.get("telegram_user_id", 1001),
        "language": "en",
        "kind": "new",
        "bundle_name": GB_BUNDLE,
        "country_code": "GB",
        "country_name": "United Kingdom",
        "cost": Decimal("1.25"),
        "cost_currency": "USD",
        "price": 125,
        "price_currency": "XTR",
        "status": OrderStatus.DELIVERED.value,
        "attempts": 1,
        "created_at": datetime.now(UTC),
    }
    values.update(fields)
    if values["status"] not in (OrderStatus.AWAITING_PAYMENT, OrderStatus.CANCELLED):
        values.setdefault("paid_at", values["created_at"])
        values.setdefault("telegram_payment_charge_id", f"charge-{values['public_id']}")
    return Order(**values)


async def add(
    session_factory: async_sessionmaker[AsyncSession],
    *rows: object,
    telegram: FakeTelegram | None = None,
) -> None:
    """Store the rows; with `telegram`, each Stars order's charge is in its ledger as paid by
    the buyer (Telegram refunds a charge only to whoever paid it)."""
    async with session_factory() as session:
        session.add_all(rows)
        await session.commit()
    for row in rows:
        if telegram is not None and isinstance(row, Order) and row.telegram_payment_charge_id:
            telegram.record_star_payment(row.telegram_user_id, row.telegram_payment_charge_id)


async def load(session_factory: async_sessionmaker[AsyncSession], public_id: str) -> Order:
    async with session_factory() as session:
        order = await session.scalar(select(Order).where(Order.public_id == public_id))
        assert order is not None
        return order


async def add_users(
    session_factory: async_sessionmaker[AsyncSession], ids: range | list[int], **fields: Any
) -> None:
    await add(session_factory, *(User(telegram_id=i, **fields) for i in ids))
