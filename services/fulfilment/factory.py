"""The one way to build the fulfilment worker: production, tests and benches all call it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.esimgo.client import EsimGoClient
from services.fulfilment.adoption import Reconciler
from services.fulfilment.purchase import Purchase
from services.fulfilment.refunds import Refunds
from services.fulfilment.sender import DeliveryButtons, DeliverySender, GiftDelivery
from services.fulfilment.settings import WorkerSettings
from services.fulfilment.side_tasks import SideTasks
from services.fulfilment.store import OrderStore
from services.fulfilment.worker import FulfilmentWorker
from services.i18n import Translator
from services.messenger import Messenger
from services.metrics import Metrics
from services.orders import OrderService


def create_fulfilment_worker(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    esimgo: EsimGoClient,
    messenger: Messenger,
    translator: Translator,
    alerts: AdminAlerts,
    orders: OrderService,
    catalogue: CatalogueService,
    wake_event: asyncio.Event,
    install_help_callback: str,
    open_esim_callback: Callable[[int], str],
    settings: WorkerSettings | None = None,
    worker_id: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    gift_delivery: GiftDelivery | None = None,
    metrics: Metrics | None = None,
) -> FulfilmentWorker:
    """The worker and its parts; the callbacks are those of the buttons under a delivery."""
    settings = settings or WorkerSettings()
    side_tasks = SideTasks()
    refunds = Refunds(session_factory, messenger, translator, alerts, settings, clock)
    buttons = DeliveryButtons(install_help_callback, open_esim_callback)
    sender = DeliverySender(
        session_factory, messenger, translator, catalogue, buttons, settings, clock, gift_delivery
    )
    store = OrderStore(
        session_factory, esimgo, messenger, alerts, sender, refunds, side_tasks, settings, clock
    )
    reconciler = Reconciler(session_factory, esimgo, settings.clock_skew)
    purchase = Purchase(
        esimgo, messenger, alerts, reconciler, store, refunds, side_tasks, settings, clock
    )
    return FulfilmentWorker(
        session_factory,
        orders,
        purchase,
        sender,
        refunds,
        alerts,
        messenger,
        side_tasks,
        settings,
        wake_event,
        worker_id,
        clock,
        metrics,
    )
