"""Factories that build the application's objects from settings; nothing runs at import time.

The Bot comes first: services send through it (as a Messenger) and get it at construction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.redis import RedisStorage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.deps import AppDeps
from bot.fsm_storage import ExpiringMemoryStorage
from bot.messenger import AiogramMessenger
from bot.sandbox import SandboxBot, create_sandbox
from db.base import utcnow
from db.engine import create_engine, create_session_factory
from handlers.callbacks import (
    install_help_callback_data,
    open_esim_callback_data,
    topup_callback_data,
)
from handlers.screen_cache import ScreenCache
from services.admin_alerts import AdminAlerts
from services.budget import request_budget
from services.catalogue import CatalogueService
from services.checkout import Checkout
from services.esimgo.client import EsimGoClient
from services.esimgo.standin import EsimGoStandIn
from services.esimgo_events import EsimGoEventService
from services.fulfilment import FulfilmentWorker, WorkerSettings, deliver_on_return
from services.fulfilment import create_fulfilment_worker as build_fulfilment_worker
from services.i18n import Translator
from services.myesims import MyEsimsService
from services.notifications import Notifier
from services.orders import OrderService
from services.pricing import PricingService
from services.profiles import UserProfiles
from services.sandbox import start_standin
from services.tracking import TrackingService


def create_bot(settings: Settings) -> Bot:
    """HTML by default, no link previews. `bot.tuning.apply` gives it a session that sends JSON
    bodies and reads answers without the keyboard Telegram echoes back: a Message returned by
    a send or an edit then has `reply_markup` None (nothing here reads it)."""
    bot_class = SandboxBot if settings.sandbox else Bot
    return bot_class(
        settings.bot_token.get_secret_value(),
        session=AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


# A form left open (a question never typed) is forgotten after this, in either storage.
FSM_TTL = timedelta(days=1)


def create_storage(
    settings: Settings, *, clock: Callable[[], float] = time.monotonic
) -> BaseStorage:
    """FSM storage: Redis when REDIS_URL is set (several replicas), memory otherwise; `clock`
    (seconds) times the memory storage's expiry."""
    if settings.redis_url:
        return RedisStorage.from_url(settings.redis_url, state_ttl=FSM_TTL, data_ttl=FSM_TTL)
    return ExpiringMemoryStorage(FSM_TTL.total_seconds(), clock=clock)


def create_esimgo_client(settings: Settings, base_url: str | None = None) -> EsimGoClient:
    """The eSIM Go client, paced by the account's request budget (shared through Redis);
    `base_url` replaces ESIMGO_BASE_URL (the sandbox's stand-in)."""
    api_key = settings.esimgo_api_key.get_secret_value()
    budget = request_budget(
        settings.esimgo_requests_per_second, redis_url=settings.redis_url, account=api_key
    )
    return EsimGoClient(base_url or settings.esimgo_base_url, api_key, budget=budget)


async def _supplier(settings: Settings) -> tuple[EsimGoClient, EsimGoStandIn | None]:
    """eSIM Go itself or, in sandbox mode, its stand-in, started here in this process."""
    if not settings.sandbox:
        return create_esimgo_client(settings), None
    standin = await start_standin(settings.esimgo_api_key.get_secret_value())
    return create_esimgo_client(settings, standin.base_url), standin


async def create_deps(settings: Settings, bot: Bot) -> AppDeps:
    """Every service, sending through `bot`; the catalogue is empty until load_snapshot() or
    sync()."""
    messenger = AiogramMessenger(bot)
    engine = create_engine(settings.database_url)
    session_factory = create_session_factory(engine)
    esimgo, standin = await _supplier(settings)
    catalogue, pricing, orders = _selling(settings, session_factory, esimgo)
    translator = Translator()
    alerts = AdminAlerts(session_factory, settings.admin_ids)
    wake = asyncio.Event()
    notifier, tracking, esimgo_events = _tracking(
        settings, session_factory, esimgo, catalogue, alerts, translator
    )
    deps = AppDeps(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        messenger=messenger,
        esimgo=esimgo,
        catalogue=catalogue,
        pricing=pricing,
        translator=translator,
        orders=orders,
        checkout=Checkout(session_factory, orders, catalogue, alerts, messenger),
        alerts=alerts,
        fulfilment_wake=wake,
        notifier=notifier,
        tracking=tracking,
        esimgo_events=esimgo_events,
        profiles=UserProfiles(
            session_factory,
            settings.default_language,
            on_return=partial(deliver_on_return, session_factory, wake, utcnow),
        ),
        myesims=MyEsimsService(
            session_factory,
            catalogue,
            tracking,
            notifier,
            translator,
            messenger,
            install_help_link=install_help_callback_data(),
        ),
        screens=ScreenCache(catalogue),
    )
    if standin is not None:
        deps.sandbox = await create_sandbox(deps, bot, standin)
    return deps


def _selling(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], esimgo: EsimGoClient
) -> tuple[CatalogueService, PricingService, OrderService]:
    """What is sold and at what price, and the orders that buy it."""
    catalogue = CatalogueService(
        esimgo, session_factory, refresh_minutes=settings.catalogue_refresh_minutes
    )
    pricing = PricingService(
        settings.price_markup_percent, settings.usd_per_star, settings.payment_currency
    )
    return catalogue, pricing, OrderService(esimgo, catalogue, pricing)


def _tracking(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    esimgo: EsimGoClient,
    catalogue: CatalogueService,
    alerts: AdminAlerts,
    translator: Translator,
) -> tuple[Notifier, TrackingService, EsimGoEventService]:
    """What follows an eSIM after delivery: notifications, the poller, eSIM Go's callbacks."""
    notifier = Notifier(
        session_factory,
        translator,
        catalogue,
        alerts,
        default_language=settings.default_language,
        topup_callback=topup_callback_data,
    )
    tracking = TrackingService(
        esimgo, session_factory, notifier, catalogue, poll_minutes=settings.status_poll_minutes
    )
    esimgo_events = EsimGoEventService(
        session_factory, settings.esimgo_api_key.get_secret_value(), tracking, notifier
    )
    return notifier, tracking, esimgo_events


def create_fulfilment_worker(deps: AppDeps) -> FulfilmentWorker:
    """The worker that turns paid orders into delivered eSIMs (or refunds); run() it."""
    deadline = timedelta(minutes=deps.settings.fulfilment_deadline_minutes)
    return build_fulfilment_worker(
        session_factory=deps.session_factory,
        esimgo=deps.esimgo,
        messenger=deps.messenger,
        translator=deps.translator,
        alerts=deps.alerts,
        orders=deps.orders,
        catalogue=deps.catalogue,
        wake_event=deps.fulfilment_wake,
        install_help_callback=install_help_callback_data(),
        open_esim_callback=open_esim_callback_data,
        settings=WorkerSettings(deadline=deadline),
    )


async def close_deps(deps: AppDeps) -> None:
    await deps.esimgo.close()
    if deps.sandbox is not None:
        await deps.sandbox.close()
    await deps.engine.dispose()
