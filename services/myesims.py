"""A user's own eSIMs and orders, as /myesims and /paysupport show them.

Every read is scoped to the owner: someone else's id simply finds nothing. Screens get the
frozen views below, never database rows; a database session lives for one read and never
across the eSIM Go refresh.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Esim, EsimBundle, Order
from db.models import OrderStatus as OrderStatus  # the screens name an order's status
from db.repositories.esims import MyEsimsRepository
from services.catalogue import CatalogueService
from services.delivery import QrPhoto, StoredCodes, qr_photo
from services.esimgo.client import user_waits
from services.i18n import Translator
from services.messenger import Messenger
from services.notifications import Notifier
from services.pricing import Price
from services.tracking import TrackingService
from services.usage import PlanState

# A slow eSIM Go must not keep the button spinning: past this, the stored state is shown.
REFRESH_WAIT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class OrderView:
    """One of the user's orders."""

    id: int
    public_id: str
    bundle_name: str
    country_code: str | None
    country_name: str | None
    status: OrderStatus
    price: Price
    created_at: datetime
    iccid: str | None
    lpa: str | None
    smdp_address: str | None
    matching_id: str | None
    failure_reason: str | None

    @classmethod
    def of(cls, row: Order) -> OrderView:
        return cls(
            id=row.id,
            public_id=row.public_id,
            bundle_name=row.bundle_name,
            country_code=row.country_code,
            country_name=row.country_name,
            status=row.status,
            price=Price(row.price, row.price_currency),
            created_at=row.created_at,
            iccid=row.iccid,
            lpa=row.qr_code,
            smdp_address=row.smdp_address,
            matching_id=row.activation_code,
            failure_reason=row.failure_reason,
        )


@dataclass(frozen=True, slots=True)
class EsimView:
    """One of the user's eSIMs, as last stored."""

    id: int
    iccid: str
    telegram_user_id: int
    profile_status: str | None
    first_installed_at: datetime | None
    last_polled_at: datetime | None
    created_at: datetime
    lpa: str | None
    smdp_address: str | None
    matching_id: str | None

    @property
    def has_qr(self) -> bool:
        return bool(self.lpa or (self.smdp_address and self.matching_id))


@dataclass(frozen=True, slots=True)
class BundleView(PlanState):
    """A plan on an eSIM, as eSIM Go last reported it."""

    assignment_key: str


@dataclass(frozen=True, slots=True)
class Freshness:
    """How current the shown state is: whether reading eSIM Go just now worked, and when it
    last did."""

    refreshed: bool
    polled_at: datetime | None
    now: datetime


@dataclass(frozen=True, slots=True)
class EsimEntry:
    """An eSIM with its purchases (newest first) and plans."""

    esim: EsimView
    orders: tuple[OrderView, ...]
    bundles: tuple[BundleView, ...]

    @property
    def when(self) -> datetime:
        """Its latest event: the eSIM's creation or a purchase (a top-up)."""
        return max([self.esim.created_at, *(o.created_at for o in self.orders)])


@dataclass(frozen=True, slots=True)
class EsimDetail(EsimEntry):
    """An opened eSIM, and how fresh what it shows is."""

    freshness: Freshness


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of /myesims: eSIMs (with their purchases) and orders on no eSIM, newest first;
    `number` counts from 0."""

    entries: tuple[EsimEntry | OrderView, ...]
    number: int
    pages: int


class MyEsimsService:
    """The user's eSIMs and orders; opening an eSIM refreshes it from eSIM Go first."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        catalogue: CatalogueService,
        tracking: TrackingService,
        notifier: Notifier,
        translator: Translator,
        messenger: Messenger,
        *,
        install_help_link: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._catalogue = catalogue
        self._tracking = tracking
        self._notifier = notifier
        self._translator = translator
        self._messenger = messenger
        self._install_help_link = install_help_link
        self._clock = clock

    async def overview(self, user_id: int, page: int, per_page: int) -> ListPage:
        """One page of the user's eSIMs and orders, read as a page (LIMIT/OFFSET in SQL: the
        cost does not grow with their history); stored state only, never eSIM Go. A page past
        the end is the last one."""
        async with self._session_factory() as session:
            repo = MyEsimsRepository(session)
            total = await repo.entry_count(user_id)
            if not total:
                return ListPage((), 0, 0)
            pages = math.ceil(total / per_page)
            number = min(max(page, 0), pages - 1)
            keys = await repo.entry_page(user_id, number * per_page, per_page)
            esims = await repo.esims_by_id([i for is_esim, i in keys if is_esim], user_id)
            orders = await repo.orders_by_id([i for is_esim, i in keys if not is_esim], user_id)
            iccids = [esim.iccid for esim in esims]
            bought = await repo.orders_of_iccids(iccids, user_id) if iccids else ()
            bundles = await repo.bundles_by_iccid(iccids, user_id) if iccids else {}
        purchases = [OrderView.of(o) for o in bought]
        found: dict[tuple[bool, int], EsimEntry | OrderView] = {
            (False, o.id): OrderView.of(o) for o in orders
        }
        for esim in esims:
            found[True, esim.id] = _entry(esim, purchases, bundles.get(esim.iccid, ()))
        entries = tuple(found[key] for key in keys if key in found)
        return ListPage(entries, number, pages)

    async def recent_orders(self, user_id: int, limit: int) -> list[OrderView]:
        async with self._session_factory() as session:
            return [
                OrderView.of(o) for o in await MyEsimsRepository(session).orders(user_id, limit)
            ]

    async def esim(self, esim_id: int, user_id: int) -> EsimView | None:
        """The user's eSIM, if it is theirs and not deleted."""
        async with self._session_factory() as session:
            found = await MyEsimsRepository(session).esim(esim_id, user_id)
        return _view(EsimView, found) if found is not None else None

    async def order(self, order_id: int, user_id: int) -> OrderView | None:
        """The user's order, if it is theirs."""
        async with self._session_factory() as session:
            found = await MyEsimsRepository(session).order(order_id, user_id)
        return OrderView.of(found) if found is not None else None

    async def open_esim(self, esim: EsimView) -> EsimDetail | None:
        """The user's eSIM as eSIM Go has it now (a read from the last minute is reused;
        trouble there leaves the stored state); None if it was deleted meanwhile."""
        try:
            # Tried once: the refresh's calls inherit user_waits() (no retries while they look).
            with user_waits():
                refreshed = await asyncio.wait_for(
                    self._tracking.refresh(esim.iccid), REFRESH_WAIT_SECONDS
                )
        except TimeoutError:
            # The poll goes on (refresh shields it) and the next open shows what it finds.
            refreshed = False
        owner = esim.telegram_user_id
        async with self._session_factory() as session:
            repo = MyEsimsRepository(session)
            row = await repo.esim(esim.id, owner)
            if row is None:
                return None
            orders = await repo.esim_orders(row.iccid, owner)
            bundles = await repo.esim_bundles(row.iccid, owner)
        return EsimDetail(
            _view(EsimView, row),
            tuple(OrderView.of(o) for o in orders),
            tuple(_view(BundleView, b) for b in bundles),
            Freshness(refreshed, row.last_polled_at, self._clock()),
        )

    async def tell_news(self, detail: EsimDetail) -> None:
        """What the refresh found ("plan started", "used up"), sent once each below the
        screen: the poller may never see it again once the eSIM's last plan has finished."""
        if detail.freshness.refreshed:
            await self._notifier.evaluate(self._messenger, detail.esim, detail.bundles)

    async def qr_photo(self, owned: EsimView | OrderView, lang: str) -> QrPhoto | None:
        """The QR of an eSIM or an order again, from what we stored (no eSIM Go call);
        None while it is not ready."""
        if isinstance(owned, EsimView):
            async with self._session_factory() as session:
                repo = MyEsimsRepository(session)
                orders = await repo.esim_orders(owned.iccid, owned.telegram_user_id)
            latest = OrderView.of(orders[0]) if orders else None
        else:
            latest = owned
        codes = StoredCodes(owned.iccid or "", owned.lpa, owned.smdp_address, owned.matching_id)
        return qr_photo(
            self._translator,
            self._catalogue.catalogue,
            lang,
            codes,
            latest,
            self._install_help_link,
        )


V = TypeVar("V", "EsimView", "BundleView")


def _view(kind: type[V], row: Esim | EsimBundle) -> V:
    """The view of a row whose columns are named like the view's fields."""
    return kind(**{field.name: getattr(row, field.name) for field in fields(kind)})


def _entry(esim: Esim, orders: Sequence[OrderView], bundles: Sequence[EsimBundle]) -> EsimEntry:
    mine = tuple(o for o in orders if o.iccid == esim.iccid)
    return EsimEntry(_view(EsimView, esim), mine, tuple(_view(BundleView, b) for b in bundles))
