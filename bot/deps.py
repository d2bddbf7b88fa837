"""The application's services, built once by bot.app and handed to handlers and workers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from handlers.screen_cache import ScreenCache
from services.admin.services import AdminServices
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.checkout import Checkout
from services.deeplinks import StartLinks
from services.doctor import EsimDoctor
from services.esimgo.client import EsimGoClient
from services.esimgo_events import EsimGoEventService
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
from services.pricing import PricingService
from services.profiles import UserProfiles
from services.reminders import ReminderService
from services.sandbox import Sandbox
from services.self_refund import SelfRefunds
from services.tracking import TrackingService
from services.trip import TripPlanner


@dataclass(slots=True)
class AppDeps:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    # The Bot as services see it: built first, so that services get it at construction.
    messenger: Messenger
    esimgo: EsimGoClient
    catalogue: CatalogueService
    pricing: PricingService
    translator: Translator
    orders: OrderService
    checkout: Checkout
    alerts: AdminAlerts
    # Set by the payment handler so the fulfilment worker starts at once, not at its next poll.
    fulfilment_wake: asyncio.Event
    notifier: Notifier
    tracking: TrackingService
    esimgo_events: EsimGoEventService
    profiles: UserProfiles
    myesims: MyEsimsService
    # Rendered catalogue and menu screens, per language; started over by a catalogue refresh.
    screens: ScreenCache
    # "It doesn't work" on an eSIM, and the refund of an unused one (issue 14).
    doctor: EsimDoctor
    refunds: SelfRefunds
    # Reach and share: networks per country (refreshed with the catalogue), trips of several
    # countries, inline answers, t.me start links, gifts and reminders.
    networks: NetworkService
    trips: TripPlanner
    inline_catalogue: InlineCatalogue
    start_links: StartLinks
    gifts: GiftService
    gift_delivery: GiftDelivery
    reminders: ReminderService
    # The process's Prometheus registry, fed where events happen, read by GET /metrics.
    metrics: Metrics
    # /admin, /order, support tickets, broadcasts, the supplier balance, the daily report.
    admin: AdminServices
    # Sandbox mode only (ESIMGO_API_KEY=sandbox): the eSIM Go stand-in and simulated payments.
    sandbox: Sandbox | None = None
