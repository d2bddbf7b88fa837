"""The application's services, built once by bot.app and handed to handlers and workers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from handlers.screen_cache import ScreenCache
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.checkout import Checkout
from services.esimgo.client import EsimGoClient
from services.esimgo_events import EsimGoEventService
from services.i18n import Translator
from services.messenger import Messenger
from services.myesims import MyEsimsService
from services.notifications import Notifier
from services.orders import OrderService
from services.pricing import PricingService
from services.profiles import UserProfiles
from services.sandbox import Sandbox
from services.tracking import TrackingService


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
    # Sandbox mode only (ESIMGO_API_KEY=sandbox): the eSIM Go stand-in and simulated payments.
    sandbox: Sandbox | None = None
