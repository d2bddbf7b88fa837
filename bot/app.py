"""Factories that build the application's objects from settings; nothing runs at import time.

The Bot comes first: services send through it (as a Messenger) and get it at construction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

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
from db.engine import create_engine, create_session_factory
from handlers.admin.tickets import close_ticket_keyboard
from handlers.callbacks import (
    install_help_callback_data,
    open_esim_callback_data,
    topup_callback_data,
)
from handlers.screen_cache import ScreenCache
from services.admin.broadcast import Broadcasts, BroadcastSender
from services.admin.daily_report import DailyReport
from services.admin.dashboard import Dashboard
from services.admin.lookup import OrderLookup
from services.admin.order_actions import OrderActions
from services.admin.services import AdminServices
from services.admin.supplier import SupplierService
from services.admin.tickets import SupportTickets
from services.admin_alerts import AdminAlerts
from services.budget import request_budget
from services.catalogue import CatalogueService
from services.checkout import Checkout
from services.esimgo.client import EsimGoClient
from services.esimgo_events import EsimGoEventService
from services.fulfilment import FulfilmentWorker, WorkerSettings
from services.i18n import Translator
from services.messenger import Messenger
from services.metrics import Metrics
from services.myesims import MyEsimsService
from services.notifications import Notifier
from services.orders import OrderService
from services.pricing import PricingService
from services.profiles import UserProfiles
from services.tracking import TrackingService


def create_bot(settings: Settings) -> Bot:
    """HTML by default, no link previews. `bot.tuning.apply` gives it a session that sends JSON
    bodies and reads answers without the keyboard Telegram echoes back: a Message returned by
    a send or an edit then has `reply_markup` None (nothing here reads it)."""
    return Bot(
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


def create_esimgo_client(settings: Settings, metrics: Metrics | None = None) -> EsimGoClient:
    """The eSIM Go client, paced by the account's request budget (shared through Redis)."""
    api_key = settings.esimgo_api_key.get_secret_value()
    budget = request_budget(
        settings.esimgo_requests_per_second,
        redis_url=settings.redis_url,
        account=api_key,
        on_wait=(lambda _, waited: metrics.esimgo_budget_wait(waited)) if metrics else None,
    )
    return EsimGoClient(settings.esimgo_base_url, api_key, budget=budget, metrics=metrics)


async def create_deps(settings: Settings, bot: Bot) -> AppDeps:
    """Every service, sending through `bot`; the catalogue is empty until load_snapshot() or
    sync()."""
    messenger = AiogramMessenger(bot)
    engine = create_engine(settings.database_url)
    session_factory = create_session_factory(engine)
    metrics = Metrics()
    esimgo = create_esimgo_client(settings, metrics)
    catalogue, pricing, orders = _selling(settings, session_factory, esimgo, metrics)
    translator = Translator()
    alerts = AdminAlerts(session_factory, settings.admin_ids)
    wake = asyncio.Event()
    notifier, tracking, esimgo_events = _tracking(
        settings, session_factory, esimgo, catalogue, alerts, translator, metrics
    )
    return AppDeps(
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
        profiles=UserProfiles(session_factory, settings.default_language),
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
        metrics=metrics,
        admin=create_admin_services(
            settings, session_factory, esimgo, messenger, translator, alerts, metrics, wake
        ),
    )


def _selling(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    esimgo: EsimGoClient,
    metrics: Metrics,
) -> tuple[CatalogueService, PricingService, OrderService]:
    """The catalogue, its prices, and the orders placed from it."""
    catalogue = CatalogueService(
        esimgo, session_factory, refresh_minutes=settings.catalogue_refresh_minutes
    )
    pricing = PricingService(
        settings.price_markup_percent, settings.usd_per_star, settings.payment_currency
    )
    return catalogue, pricing, OrderService(esimgo, catalogue, pricing, metrics=metrics)


def create_admin_services(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    esimgo: EsimGoClient,
    messenger: Messenger,
    translator: Translator,
    alerts: AdminAlerts,
    metrics: Metrics,
    fulfilment_wake: asyncio.Event,
) -> AdminServices:
    """The operator's side (ADMIN_IDS); its background jobs start in bot.runner."""
    dashboard = Dashboard(
        session_factory,
        usd_per_star=settings.usd_per_star,
        fulfilment_deadline=timedelta(minutes=settings.fulfilment_deadline_minutes),
    )
    broadcasts = Broadcasts(session_factory, default_language=settings.default_language)
    hour = settings.daily_report_hour
    return AdminServices(
        dashboard=dashboard,
        supplier=SupplierService(
            session_factory, esimgo, warn_below=settings.esimgo_balance_warn, metrics=metrics
        ),
        lookup=OrderLookup(session_factory, esimgo),
        actions=OrderActions(
            session_factory,
            messenger,
            translator,
            wake_worker=fulfilment_wake.set,
            metrics=metrics,
        ),
        tickets=SupportTickets(
            session_factory,
            messenger,
            translator,
            settings.admin_ids,
            close_keyboard=close_ticket_keyboard,
        ),
        broadcasts=broadcasts,
        sender=BroadcastSender(session_factory, messenger, broadcasts),
        daily_report=DailyReport(dashboard, alerts, hour=hour) if hour is not None else None,
    )


def _tracking(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    esimgo: EsimGoClient,
    catalogue: CatalogueService,
    alerts: AdminAlerts,
    translator: Translator,
    metrics: Metrics,
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
        session_factory,
        settings.esimgo_api_key.get_secret_value(),
        tracking,
        notifier,
        metrics=metrics,
    )
    return notifier, tracking, esimgo_events


def create_fulfilment_worker(deps: AppDeps) -> FulfilmentWorker:
    """The worker that turns paid orders into delivered eSIMs (or refunds); run() it."""
    deadline = timedelta(minutes=deps.settings.fulfilment_deadline_minutes)
    return FulfilmentWorker(
        deps.session_factory,
        deps.esimgo,
        deps.messenger,
        deps.translator,
        deps.alerts,
        deps.orders,
        settings=WorkerSettings(deadline=deadline),
        wake_event=deps.fulfilment_wake,
        catalogue=deps.catalogue,
        install_help_callback=install_help_callback_data(),
        open_esim_callback=open_esim_callback_data,
        metrics=deps.metrics,
    )


async def close_deps(deps: AppDeps) -> None:
    await deps.admin.sender.close()  # broadcast jobs store their progress while the db is up
    await deps.esimgo.close()
    await deps.engine.dispose()
