"""Helpers for the reach-and-share service tests: a catalogue synced over loopback, a messenger
that talks to the fake Telegram, delivered orders in the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from db.base import utcnow
from db.models import Esim, Order, OrderStatus, User
from services.catalogue import CatalogueService, SnapshotCompanion
from services.esimgo.client import EsimGoClient
from services.orders import new_public_id
from services.pricing import PricingService
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram

STARS = PricingService(Decimal(30), Decimal("0.013"), "XTR")


@asynccontextmanager
async def telegram_messenger(fake_telegram: FakeTelegram) -> AsyncIterator[AiogramMessenger]:
    """The bot's own Messenger, sending to the fake Bot API over loopback."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake_telegram.base_url))
    bot = Bot(
        DEFAULT_TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML)
    )
    try:
        yield AiogramMessenger(bot)
    finally:
        await bot.session.close()


@asynccontextmanager
async def esimgo_client(fake_esimgo: FakeEsimGo) -> AsyncIterator[EsimGoClient]:
    client = EsimGoClient(fake_esimgo.base_url, fake_esimgo.api_key)
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def synced_catalogue(
    fake_esimgo: FakeEsimGo,
    session_factory: async_sessionmaker[AsyncSession],
    companions: tuple[SnapshotCompanion, ...] = (),
) -> AsyncIterator[CatalogueService]:
    """A CatalogueService synced once from the fake eSIM Go."""
    async with esimgo_client(fake_esimgo) as client:
        service = CatalogueService(client, session_factory, companions=companions)
        await service.sync()
        yield service


async def add_user(
    session_factory: async_sessionmaker[AsyncSession],
    user_id: int,
    *,
    language: str | None = "en",
    first_name: str | None = None,
    username: str | None = None,
) -> None:
    async with session_factory() as session:
        session.add(
            User(
                telegram_id=user_id,
                language=language,
                telegram_language=language,
                first_name=first_name,
                username=username,
            )
        )
        await session.commit()


@dataclass(frozen=True)
class Seeded:
    order_id: int
    public_id: str
    esim_id: int | None
    iccid: str | None


async def add_order(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    user_id: int,
    bundle: str = "esim_1GB_7D_GB_V2",
    country: str = "GB",
    status: OrderStatus = OrderStatus.DELIVERED,
    iccid: str | None = None,
    kind: str = "new",
    created_at: datetime | None = None,
    price: int = 50,
) -> Seeded:
    """An order as the purchase flow leaves it; a delivered new one comes with its eSIM."""
    now = created_at or utcnow()
    async with session_factory() as session:
        order = Order(
            public_id=new_public_id(),
            telegram_user_id=user_id,
            chat_id=user_id,
            language="en",
            kind=kind,
            bundle_name=bundle,
            country_code=country,
            country_name=country,
            cost=Decimal("1.28"),
            price=price,
            price_currency="XTR",
            status=status.value,
            iccid=iccid,
            qr_code=f"LPA:1$rsp.fake-esimgo.test$M-{iccid}" if iccid else None,
            expires_at=now + timedelta(days=1),
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        session.add(order)
        await session.flush()
        esim_id = None
        if iccid is not None and kind == "new" and status == OrderStatus.DELIVERED:
            esim = Esim(
                iccid=iccid,
                telegram_user_id=user_id,
                first_order_id=order.id,
                smdp_address="rsp.fake-esimgo.test",
                matching_id=f"M-{iccid}",
                lpa=order.qr_code,
                country_code=country,
                profile_status="Released",
                tracking=True,
                created_at=now,
                updated_at=now,
            )
            session.add(esim)
            await session.flush()
            esim_id = esim.id
        await session.commit()
        return Seeded(order.id, order.public_id, esim_id, iccid)
