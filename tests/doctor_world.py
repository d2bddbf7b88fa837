"""The eSIM doctor's and self-refund's surroundings for service tests: a real database, the
fake eSIM Go over loopback (through the real client), a real aiogram Bot against the fake Bot
API behind AiogramMessenger, and purchases seeded the way fulfilment stores them."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import User as TelegramUser
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from db.engine import create_engine, create_session_factory
from db.models import Esim, EsimBundle, Order, OrderStatus, User
from handlers.callbacks import MyEsimsCallback
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.esimgo.client import EsimGoClient, RetryPolicy, Timeouts
from services.qr import lpa_string
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram, StoredMessage
from tests.helpers import BotEnv, make_user

ALICE = 7001
BOB = 7002
ADMIN = 900_000_001
TH_5GB = "esim_5GB_30D_TH_V2"
TH_1GB = "esim_1GB_7D_TH_V2"
# Public ids unique across every World on one database.
_PUBLIC_IDS = itertools.count(1)
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, max_retry_after=1.0)


class Clock:
    """The services' clock, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass(frozen=True)
class Purchase:
    order_id: int
    public_id: str
    esim_id: int
    iccid: str
    charge: str | None
    reference: str


@dataclass
class World:
    fake: FakeEsimGo
    telegram: FakeTelegram
    session_factory: async_sessionmaker[AsyncSession]
    esimgo: EsimGoClient
    catalogue: CatalogueService
    messenger: AiogramMessenger
    alerts: AdminAlerts
    clock: Clock = field(default_factory=Clock)

    async def buy(
        self,
        bundle: str = TH_5GB,
        *,
        owner: int = ALICE,
        topup_of: str | None = None,
        currency: str = "XTR",
        paid_days_ago: float = 0,
    ) -> Purchase:
        """A delivered order as fulfilment leaves it: bought at eSIM Go through the client,
        stored with its eSIM and plan row, the Stars charge in Telegram's ledger."""
        result = await self.esimgo.create_order(bundle, iccid=topup_of)
        credentials = result.esims[0]
        public_id = f"DOC{next(_PUBLIC_IDS):05d}"
        charge = f"charge-{public_id}" if currency == "XTR" else None
        paid_at = self.clock.now - timedelta(days=paid_days_ago)
        async with self.session_factory() as session:
            if await session.get(User, owner) is None:
                session.add(User(telegram_id=owner, language="en", telegram_language="en"))
            order = Order(
                public_id=public_id,
                telegram_user_id=owner,
                chat_id=owner,
                language="en",
                kind="topup" if topup_of else "new",
                bundle_name=bundle,
                country_code="TH",
                country_name="Thailand",
                cost=result.total,
                price=450 if currency == "XTR" else 699,
                price_currency=currency,
                status=OrderStatus.DELIVERED.value,
                iccid=credentials.iccid,
                esimgo_order_reference=result.reference,
                telegram_payment_charge_id=charge,
                provider_payment_charge_id=None if charge else f"provider-{public_id}",
                paid_at=paid_at,
                delivered_at=paid_at,
                created_at=paid_at,
            )
            session.add(order)
            await session.flush()
            esim = await session.scalar(select(Esim).where(Esim.iccid == credentials.iccid))
            if esim is None:
                esim = Esim(
                    iccid=credentials.iccid,
                    telegram_user_id=owner,
                    first_order_id=order.id,
                    smdp_address=credentials.smdp_address,
                    matching_id=credentials.matching_id,
                    lpa=lpa_string(credentials.smdp_address, credentials.matching_id),
                    profile_status="Released",
                    created_at=paid_at,
                )
                session.add(esim)
            session.add(
                EsimBundle(
                    iccid=credentials.iccid,
                    assignment_key=f"{result.reference}-0",
                    bundle_name=bundle,
                    state="queued",
                    assigned_at=paid_at,
                )
            )
            await session.commit()
        if charge:  # Telegram refunds a charge only to the user who paid it
            self.telegram.add_star_payment(owner, public_id, 450, charge_id=charge)
        return Purchase(order.id, public_id, esim.id, credentials.iccid, charge, result.reference)

    async def poll(self, iccid: str) -> None:
        """What the status poller stores: the profile's install time and each plan's state."""
        details = await self.esimgo.get_esim(iccid)
        states = {a.reference: a.state for a in await self.esimgo.get_esim_bundles(iccid)}
        async with self.session_factory() as session:
            esim = await session.scalar(select(Esim).where(Esim.iccid == iccid))
            assert esim is not None
            esim.profile_status = details.profile_status
            esim.first_installed_at = details.first_installed_at
            rows = await session.scalars(select(EsimBundle).where(EsimBundle.iccid == iccid))
            for row in rows:
                row.state = states.get(row.assignment_key, row.state)
            await session.commit()

    async def order(self, order_id: int) -> Order:
        async with self.session_factory() as session:
            order = await session.get(Order, order_id)
        assert order is not None
        return order

    async def esim(self, esim_id: int) -> Esim:
        async with self.session_factory() as session:
            esim = await session.get(Esim, esim_id)
        assert esim is not None
        return esim

    def admin_messages(self) -> list[StoredMessage]:
        return [m for m in self.telegram.chat(ADMIN) if m.from_bot]


@contextlib.asynccontextmanager
async def open_world(
    database_url: str, fake: FakeEsimGo, telegram: FakeTelegram
) -> AsyncIterator[World]:
    engine = create_engine(database_url)
    session_factory = create_session_factory(engine)
    esimgo = EsimGoClient(
        fake.base_url,
        fake.api_key,
        max_requests_per_second=1000,
        timeouts=Timeouts(catalogue=10.0, orders=5.0, default=2.0),
        retry=FAST,
    )
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.base_url))
    bot = Bot(DEFAULT_TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    catalogue = CatalogueService(esimgo, session_factory)
    try:
        await catalogue.sync()
        yield World(
            fake,
            telegram,
            session_factory,
            esimgo,
            catalogue,
            AiogramMessenger(bot),
            AdminAlerts(session_factory, {ADMIN}),
        )
    finally:
        await bot.session.close()
        await esimgo.close()
        await engine.dispose()


# -- the same purchases in the bot's own world (tests.helpers.bot_env) ---------------------


def world_of(env: BotEnv) -> World:
    """Purchases stored as fulfilment leaves them, in the bot's own database and eSIM Go."""
    deps = env.deps
    return World(
        env.fake_esimgo,
        env.fake_telegram,
        deps.session_factory,
        deps.esimgo,
        deps.catalogue,
        deps.messenger,  # type: ignore[arg-type]
        deps.alerts,
    )


async def bought(
    env: BotEnv, language: str = "en", **options: Any
) -> tuple[TelegramUser, Purchase]:
    """Alice (Telegram in `language`) has met the bot and owns a delivered eSIM."""
    alice = make_user(ALICE, language_code=language, first_name="Alice", username="alice")
    await env.send(alice, "/start")
    return alice, await world_of(env).buy(**options)


async def open_card(env: BotEnv, user: TelegramUser, purchase: Purchase) -> int:
    """/myesims, then the eSIM; returns the id of the message showing its card."""
    await env.send(user, "/myesims")
    screen_id = env.screen(user).message_id
    await env.press(user, MyEsimsCallback(action="esim", id=purchase.esim_id), screen_id)
    return screen_id
