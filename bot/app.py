"""Factories that build the application's objects from settings; nothing runs at import time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage

from bot.config import Settings
from bot.deps import AppDeps
from bot.messenger import AiogramMessenger
from bot.middlewares import KeepResponseModels
from bot.telegram_session import JsonBodySession
from db.engine import create_engine, create_session_factory
from handlers.screen_cache import ScreenCache
from handlers.topup import open_esim_callback_data, topup_callback_data
from services.admin_alerts import AdminAlerts
from services.callbacks import CallbackService
from services.catalogue import CatalogueService
from services.esimgo.client import EsimGoClient
from services.fulfilment import FulfilmentWorker, WorkerSettings
from services.fulfilment import create_fulfilment_worker as build_fulfilment_worker
from services.i18n import Translator
from services.notifications import Notifier
from services.orders import OrderService
from services.pricing import PricingService
from services.tracking import TrackingService


def create_bot(settings: Settings) -> Bot:
    session = JsonBodySession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    session.middleware(KeepResponseModels())
    return Bot(
        settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def create_storage(settings: Settings) -> BaseStorage:
    """FSM storage: Redis when REDIS_URL is set (several replicas), memory otherwise."""
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(settings.redis_url)
    return MemoryStorage()


async def create_deps(settings: Settings) -> AppDeps:
    """Build every service; the catalogue is empty until load_snapshot() or sync()."""
    engine = create_engine(settings.database_url)
    session_factory = create_session_factory(engine)
    esimgo = EsimGoClient(settings.esimgo_base_url, settings.esimgo_api_key.get_secret_value())
    catalogue = CatalogueService(
        esimgo, session_factory, refresh_minutes=settings.catalogue_refresh_minutes
    )
    pricing = PricingService(
        settings.price_markup_percent, settings.usd_per_star, settings.payment_currency
    )
    translator = Translator()
    alerts = AdminAlerts(session_factory, settings.admin_ids)
    notifier = Notifier(
        session_factory,
        translator,
        catalogue,
        alerts=alerts,
        default_language=settings.default_language,
        topup_callback=topup_callback_data,
    )
    tracking = TrackingService(
        esimgo, session_factory, notifier, catalogue, poll_minutes=settings.status_poll_minutes
    )
    callbacks = CallbackService(
        session_factory, settings.esimgo_api_key.get_secret_value(), tracking, notifier
    )
    return AppDeps(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        esimgo=esimgo,
        catalogue=catalogue,
        pricing=pricing,
        translator=translator,
        orders=OrderService(esimgo, catalogue, pricing),
        alerts=alerts,
        fulfilment_wake=asyncio.Event(),
        notifier=notifier,
        tracking=tracking,
        callbacks=callbacks,
        screens=ScreenCache(catalogue),
    )


def create_fulfilment_worker(deps: AppDeps, bot: Bot) -> FulfilmentWorker:
    """The worker that turns paid orders into delivered eSIMs (or refunds); run() it."""
    from handlers.myesims import install_help_callback_data  # handlers import bot: no cycle

    deadline = timedelta(minutes=deps.settings.fulfilment_deadline_minutes)
    return build_fulfilment_worker(
        session_factory=deps.session_factory,
        esimgo=deps.esimgo,
        messenger=AiogramMessenger(bot),
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
    await deps.engine.dispose()
