"""Factories that build the application's objects from settings; nothing runs at import time.

The Bot comes first: services send through it (as a Messenger) and get it at construction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TypedDict

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
from bot.payments import AiogramStarLedger
from bot.sandbox import SandboxBot, create_sandbox
from db.base import utcnow
from db.engine import create_engine, create_session_factory
from handlers.admin.tickets import close_ticket_keyboard
from handlers.callbacks import (
    gift_take_back_callback_data,
    install_help_callback_data,
    open_esim_callback_data,
    reminder_buttons,
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
from services.deeplinks import StartLinks
from services.doctor import EsimDoctor
from services.esimgo.client import EsimGoClient
from services.esimgo.standin import EsimGoStandIn
from services.esimgo_events import EsimGoEventService
from services.fulfilment import FulfilmentWorker, WorkerSettings, deliver_on_return
from services.fulfilment import create_fulfilment_worker as build_fulfilment_worker
from services.gift_delivery import GiftDelivery
from services.gifts import GiftService
from services.i18n import Translator
from services.inline import InlineCatalogue
from services.messenger import Messenger
from services.metrics import Metrics
from services.myesims import MyEsimsService
from services.networks import NetworkService
from services.notifications import Notifier
from services.orders import OrderService
from services.plan_takeback import PlanTakeBack
from services.pricing import PricingService
from services.profiles import UserProfiles
from services.reminders import ReminderService
from services.sandbox import start_standin
from services.self_refund import SelfRefunds
from services.support_ticket import AdminAlertDesk, SupportDesk
from services.tracking import TrackingService
from services.trip import TripPlanner


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


def create_esimgo_client(
    settings: Settings, metrics: Metrics | None = None, base_url: str | None = None
) -> EsimGoClient:
    """The eSIM Go client, paced by the account's request budget (shared through Redis);
    `base_url` replaces ESIMGO_BASE_URL (the sandbox's stand-in)."""
    api_key = settings.esimgo_api_key.get_secret_value()
    budget = request_budget(
        settings.esimgo_requests_per_second,
        redis_url=settings.redis_url,
        account=api_key,
        on_wait=(lambda _, waited: metrics.esimgo_budget_wait(waited)) if metrics else None,
    )
    url = base_url or settings.esimgo_base_url
    return EsimGoClient(url, api_key, budget=budget, metrics=metrics)


async def _supplier(
    settings: Settings, metrics: Metrics
) -> tuple[EsimGoClient, EsimGoStandIn | None]:
    """eSIM Go itself or, in sandbox mode, its stand-in, started here in this process."""
    if not settings.sandbox:
        return create_esimgo_client(settings, metrics), None
    standin = await start_standin(settings.esimgo_api_key.get_secret_value())
    return create_esimgo_client(settings, metrics, standin.base_url), standin


async def create_deps(settings: Settings, bot: Bot) -> AppDeps:
    """Every service, sending through `bot`; the catalogue is empty until load_snapshot() or
    sync()."""
    messenger = AiogramMessenger(bot)
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    session_factory = create_session_factory(engine)
    metrics = Metrics()
    esimgo, standin = await _supplier(settings, metrics)
    catalogue, networks, pricing, orders = _selling(settings, session_factory, esimgo, metrics)
    translator = Translator()
    alerts = AdminAlerts(session_factory, settings.admin_ids)
    wake = asyncio.Event()
    admin = create_admin_services(
        settings, session_factory, esimgo, messenger, translator, alerts, metrics, wake, bot
    )
    notifier, tracking, esimgo_events, myesims = _tracking(
        settings, session_factory, esimgo, catalogue, alerts, translator, metrics, messenger
    )
    look = (catalogue, pricing, translator)
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
        checkout=_checkout(settings, session_factory, orders, catalogue, alerts, messenger, wake),
        alerts=alerts,
        fulfilment_wake=wake,
        notifier=notifier,
        tracking=tracking,
        esimgo_events=esimgo_events,
        profiles=_profiles(settings, session_factory, wake),
        myesims=myesims,
        screens=ScreenCache(catalogue),
        networks=networks,
        metrics=metrics,
        admin=admin,
        **_doctor(
            settings, session_factory, esimgo, catalogue, alerts, messenger, admin.tickets, metrics
        ),
        **_reach(settings, bot, messenger, session_factory, look, notifier, myesims),
    )
    if standin is not None:
        deps.sandbox = await create_sandbox(deps, bot, standin)
    return deps


def _checkout(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    orders: OrderService,
    catalogue: CatalogueService,
    alerts: AdminAlerts,
    messenger: Messenger,
    wake: asyncio.Event,
) -> Checkout:
    """Buying, up to the recorded payment that wakes the fulfilment worker."""
    return Checkout(
        session_factory,
        orders,
        catalogue,
        alerts,
        messenger,
        wake_worker=wake.set,
        unpaid_cap=settings.unpaid_orders_per_user,
    )


def _profiles(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], wake: asyncio.Event
) -> UserProfiles:
    """Who talks and in which language; a blocked buyer who returns gets what waited for them."""
    return UserProfiles(
        session_factory,
        settings.default_language,
        on_return=partial(deliver_on_return, session_factory, wake, utcnow),
    )


def create_admin_services(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    esimgo: EsimGoClient,
    messenger: Messenger,
    translator: Translator,
    alerts: AdminAlerts,
    metrics: Metrics,
    fulfilment_wake: asyncio.Event,
    bot: Bot | None = None,
) -> AdminServices:
    """The operator's side (ADMIN_IDS); its background jobs start in bot.runner. With `bot`
    (not in the sandbox, whose payments never reach it) Telegram's Stars ledger is read before
    an admin's retry."""
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
            PlanTakeBack(esimgo),
            wake_worker=fulfilment_wake.set,
            metrics=metrics,
            alerts=alerts,
            ledger=AiogramStarLedger(bot) if bot is not None and not settings.sandbox else None,
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


def _my_esims(
    session_factory: async_sessionmaker[AsyncSession],
    catalogue: CatalogueService,
    tracking: TrackingService,
    notifier: Notifier,
    translator: Translator,
    messenger: Messenger,
) -> MyEsimsService:
    return MyEsimsService(
        session_factory,
        catalogue,
        tracking,
        notifier,
        translator,
        messenger,
        install_help_link=install_help_callback_data(),
    )


def _selling(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    esimgo: EsimGoClient,
    metrics: Metrics,
) -> tuple[CatalogueService, NetworkService, PricingService, OrderService]:
    """What is sold (with the networks per country fetched and kept beside the catalogue on
    every sync), at what price, and the orders that buy it."""
    networks = NetworkService(esimgo, session_factory)
    catalogue = CatalogueService(
        esimgo,
        session_factory,
        refresh_minutes=settings.catalogue_refresh_minutes,
        companions=(networks,),
    )
    pricing = PricingService(
        settings.price_markup_percent, settings.usd_per_star, settings.payment_currency
    )
    orders = OrderService(esimgo, catalogue, pricing, metrics=metrics)
    return catalogue, networks, pricing, orders


class _Reach(TypedDict):
    trips: TripPlanner
    inline_catalogue: InlineCatalogue
    start_links: StartLinks
    gifts: GiftService
    gift_delivery: GiftDelivery
    reminders: ReminderService


def _reach(
    settings: Settings,
    bot: Bot,
    messenger: Messenger,
    session_factory: async_sessionmaker[AsyncSession],
    look: tuple[CatalogueService, PricingService, Translator],
    notifier: Notifier,
    myesims: MyEsimsService,
) -> _Reach:
    """Trips, inline answers, start links, gifts and reminders; `look` is how plans read
    (the catalogue, its prices, the words)."""
    catalogue, pricing, translator = look
    gifts = GiftService(
        session_factory, notifier, translator, default_language=settings.default_language
    )
    delivery = GiftDelivery(
        gifts,
        myesims,
        catalogue,
        translator,
        messenger,
        bot_username=_username(bot),
        take_back_callback=gift_take_back_callback_data,
    )
    reminders = ReminderService(session_factory, notifier, translator, buttons=reminder_buttons())
    return _Reach(
        trips=TripPlanner(catalogue, pricing),
        inline_catalogue=InlineCatalogue(catalogue, pricing, translator),
        start_links=StartLinks(),
        gifts=gifts,
        gift_delivery=delivery,
        reminders=reminders,
    )


def _username(bot: Bot) -> Callable[[], Awaitable[str]]:
    """The bot's @username for t.me links, asked of Telegram once (Bot.me() keeps it)."""

    async def username() -> str:
        return (await bot.me()).username or ""

    return username


def _tracking(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    esimgo: EsimGoClient,
    catalogue: CatalogueService,
    alerts: AdminAlerts,
    translator: Translator,
    metrics: Metrics,
    messenger: Messenger,
) -> tuple[Notifier, TrackingService, EsimGoEventService, MyEsimsService]:
    """What follows an eSIM after delivery: notifications, the poller, eSIM Go's callbacks,
    and the user's own view of their eSIMs."""
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
    myesims = _my_esims(session_factory, catalogue, tracking, notifier, translator, messenger)
    return notifier, tracking, esimgo_events, myesims


class _DoctorDeps(TypedDict):
    doctor: EsimDoctor
    refunds: SelfRefunds


def _doctor(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    esimgo: EsimGoClient,
    catalogue: CatalogueService,
    alerts: AdminAlerts,
    messenger: AiogramMessenger,
    tickets: SupportTickets,
    metrics: Metrics,
) -> _DoctorDeps:
    """The eSIM doctor ("It doesn't work") and the self-refund, as AppDeps fields."""
    desk = SupportDesk(tickets, AdminAlertDesk(alerts, messenger))
    return _DoctorDeps(
        doctor=EsimDoctor(session_factory, esimgo, catalogue, desk),
        refunds=SelfRefunds(
            session_factory,
            esimgo,
            messenger,
            alerts,
            days=settings.self_refund_days,
            metrics=metrics,
        ),
    )


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
        gift_delivery=deps.gift_delivery.deliver,
        metrics=deps.metrics,
    )


async def close_deps(deps: AppDeps) -> None:
    await deps.admin.sender.close()  # broadcast jobs store their progress while the db is up
    await deps.esimgo.close()
    if deps.sandbox is not None:
        await deps.sandbox.close()
    await deps.engine.dispose()
