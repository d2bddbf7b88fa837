"""Linking an eSIM Go purchase to our order, in one transaction, then handing it to delivery.

What would give a buyer an eSIM that is not theirs is refused and refunded instead: a new eSIM
whose ICCID we already know (it is someone's), a top-up that eSIM Go put on another ICCID.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Esim, Order, OrderStatus
from db.models.events import WORKER
from db.repositories.orders import OrderRepository
from services.admin_alerts import AdminAlerts
from services.esimgo.client import EsimGoClient
from services.esimgo.errors import EsimGoError
from services.esimgo.models import EsimCredentials, OrderResult
from services.fulfilment.lease import OrderLease
from services.fulfilment.refunds import Refunds
from services.fulfilment.sender import DeliverySender
from services.fulfilment.settings import WorkerSettings
from services.fulfilment.side_tasks import SideTasks
from services.messenger import Messenger
from services.orders import TOPUP
from services.qr import lpa_string, smdp_host

log = logging.getLogger(__name__)

# failure_reason of an attempt whose outcome is unknown: look for the order before buying again.
UNKNOWN = "unknown: "

Write = Callable[[AsyncSession], Awaitable[bool]]


class _KnownIccidError(Exception):
    """A new eSIM's ICCID is already someone's: nothing was written."""


def _credentials(result: OrderResult) -> EsimCredentials | None:
    for esim in result.esims:
        if esim.matching_id and esim.smdp_address and esim.iccid:
            return esim
    return None


class OrderStore:
    """Stores what eSIM Go sold for an order (fulfilling → delivered) and delivers it."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        esimgo: EsimGoClient,
        messenger: Messenger,
        alerts: AdminAlerts,
        sender: DeliverySender,
        refunds: Refunds,
        side_tasks: SideTasks,
        settings: WorkerSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._session_factory = session_factory
        self._esimgo = esimgo
        self._messenger = messenger
        self._alerts = alerts
        self._sender = sender
        self._refunds = refunds
        self._side_tasks = side_tasks
        self._settings = settings
        self._clock = clock

    async def store(self, lease: OrderLease, result: OrderResult) -> None:
        self._check_cost(lease.order, result)
        try:
            if lease.order.kind == TOPUP:
                await self._store_topup(lease, result)
            else:
                await self._store_new(lease, result)
        except Exception:
            # It is bought: whatever went wrong, the next try must not look for it or buy again.
            with contextlib.suppress(Exception):
                await lease.update(esimgo_order_reference=result.reference or None)
            raise

    def _check_cost(self, order: Order, result: OrderResult) -> None:
        if result.total <= order.cost:
            return
        self._side_tasks.spawn(
            self._alerts.alert_once(
                self._messenger,
                f"over-cost:{order.public_id}",
                f"⚠️ Order {order.public_id} ({order.bundle_name}) cost {result.total} "
                f"{result.currency} at eSIM Go (order {result.reference}), more than the "
                f"{order.cost} {order.cost_currency} validated before the invoice.",
            ),
            f"cost alert for {order.public_id}",
        )

    async def _store_new(self, lease: OrderLease, result: OrderResult) -> None:
        order = lease.order
        esim = _credentials(result)
        if esim is None:
            await self._details_late(lease, result)
            return
        lpa = lpa_string(esim.smdp_address, esim.matching_id)
        host = smdp_host(esim.smdp_address)
        values: dict[str, object] = {
            "iccid": esim.iccid,
            "qr_code": lpa,
            "activation_code": esim.matching_id,
            "smdp_address": host,
            "esimgo_order_reference": result.reference,
            "failure_reason": None,
            "next_attempt_at": self._clock(),  # delivery is due
        }
        row = Esim(
            iccid=esim.iccid,
            telegram_user_id=order.telegram_user_id,
            first_order_id=order.id,
            smdp_address=host,
            matching_id=esim.matching_id,
            lpa=lpa,
            country_code=order.country_code,
            tracking=True,
        )

        async def write(session: AsyncSession) -> bool:
            repo = OrderRepository(session)
            # Read first, in the same transaction: SQLite's write lock is taken at the first
            # write, so the check does not hold it longer (bench/purchase.py: a session less).
            if await repo.known_iccids([esim.iccid]):
                raise _KnownIccidError
            won = await self._to_delivered(repo, lease, values)
            if won:
                await repo.add_esim(row)
            return won

        try:
            linked = await self._link(lease, result, write, values, f"ICCID {esim.iccid}")
        except _KnownIccidError:
            await self._refuse_known_iccid(lease, result, esim.iccid)
            return
        if linked:
            await self._sender.deliver(lease)
            # After the photo: the tag is for reconciliation and support, the buyer waits.
            self._side_tasks.spawn(
                self._tag(esim.iccid, order.public_id), f"tag of {order.public_id}"
            )

    async def _store_topup(self, lease: OrderLease, result: OrderResult) -> None:
        """The bundle must be on the very ICCID asked for; anything else is not delivered."""
        order = lease.order
        if not result.iccids:
            await self._details_late(lease, result)
            return
        if order.iccid not in result.iccids:
            await self._topup_landed_elsewhere(lease, result)
            return
        iccid = order.iccid
        values: dict[str, object] = {
            "esimgo_order_reference": result.reference,
            "failure_reason": None,
            "next_attempt_at": self._clock(),  # delivery is due
        }

        async def write(session: AsyncSession) -> bool:
            repo = OrderRepository(session)
            won = await self._to_delivered(repo, lease, values)
            if won:
                await repo.mark_topped_up(iccid, order.telegram_user_id)
            return won

        if await self._link(lease, result, write, values, f"top-up onto ICCID {iccid}"):
            await self._sender.deliver(lease)

    @staticmethod
    async def _to_delivered(
        repo: OrderRepository, lease: OrderLease, values: Mapping[str, object]
    ) -> bool:
        return await repo.transition(
            lease.order.id,
            OrderStatus.FULFILLING,
            OrderStatus.DELIVERED,
            {"lease_owner": lease.order.lease_owner},
            actor=WORKER,
            note=f"eSIM Go order {values['esimgo_order_reference']}",
            **values,
        )

    async def _link(
        self,
        lease: OrderLease,
        result: OrderResult,
        write: Write,
        values: Mapping[str, object],
        what: str,
    ) -> bool:
        """Run `write` (the guarded step to delivered, setting `values`) in one transaction."""
        try:
            async with self._session_factory() as session:
                won = await write(session)
                await session.commit()
        except IntegrityError:
            # Another order of ours took this eSIM Go order or eSIM meanwhile: look again.
            log.warning(
                "order %s: eSIM Go order %s already linked elsewhere",
                lease.public_id,
                result.reference,
            )
            await lease.release(timedelta(0), f"{UNKNOWN}reference taken")
            return False
        if not won:
            log.warning("order %s: lost the lease while storing", lease.public_id)
            return False
        lease.order.mirror(OrderStatus.DELIVERED, values)
        lease.finished(OrderStatus.DELIVERED)
        log.info(
            "order %s: fulfilling → delivered (eSIM Go %s, %s)",
            lease.public_id,
            result.reference,
            what,
        )
        return True

    async def _details_late(self, lease: OrderLease, result: OrderResult) -> None:
        """The order exists; only its eSIM details are late. Keep the reference, ask later."""
        log.warning(
            "order %s: eSIM Go order %s has no eSIM yet", lease.public_id, result.reference
        )
        if await lease.update(esimgo_order_reference=result.reference):
            backoff = self._settings.backoff(lease.order.attempts)
            await lease.release(backoff, f"{UNKNOWN}eSIM details missing")

    async def _tag(self, iccid: str, public_id: str) -> None:
        """Our order's public id on the eSIM at eSIM Go: reconciliation and support read it."""
        try:
            await self._esimgo.set_customer_ref(iccid, public_id)
        except EsimGoError as exc:
            log.warning("order %s: eSIM %s not tagged: %s", public_id, iccid, exc)

    async def _refuse_known_iccid(
        self, lease: OrderLease, result: OrderResult, iccid: str
    ) -> None:
        order = lease.order
        async with self._session_factory() as session:
            holder = await OrderRepository(session).holder_of_iccid(iccid, order.id)
        reason = (
            f"ICCID {iccid} of eSIM Go order {result.reference} already belongs to order "
            f"{holder or '(an eSIM of ours)'}; not delivered, needs investigation"
        )
        await self._refuse(
            lease,
            result,
            reason,
            f"🚨 Order {order.public_id} ({order.bundle_name}, user {order.telegram_user_id}): "
            f"eSIM Go order {result.reference} came with ICCID {iccid}, which belongs to order "
            f"{holder or '(an eSIM of ours)'}. Not delivered; the buyer is being refunded. "
            "Check the eSIM Go account.",
        )

    async def _topup_landed_elsewhere(self, lease: OrderLease, result: OrderResult) -> None:
        """eSIM Go put the bundle on another ICCID: never hand that over; refund, investigate."""
        order = lease.order
        got = ", ".join(result.iccids)
        await self._refuse(
            lease,
            result,
            f"ICCID mismatch: top-up of {order.iccid}, eSIM Go assigned {got} "
            f"(eSIM Go order {result.reference}); needs investigation",
            f"🚨 Top-up order {order.public_id} ({order.bundle_name}, user "
            f"{order.telegram_user_id}): requested ICCID {order.iccid}, eSIM Go returned {got} "
            f"(eSIM Go order {result.reference}). Not delivered; the user is being refunded. "
            "Check the eSIM Go account: the bundle was bought onto the other ICCID.",
        )

    async def _refuse(
        self, lease: OrderLease, result: OrderResult, reason: str, alert: str
    ) -> None:
        """fulfilling → failed, keeping the reference so that no other order adopts it."""
        log.error("order %s: %s", lease.public_id, reason)
        if not await lease.move(
            OrderStatus.FAILED,
            note=reason,
            failure_reason=reason,
            next_attempt_at=None,
            esimgo_order_reference=result.reference or None,
        ):
            return
        await self._alerts.alert(self._messenger, alert)
        await self._refunds.refund(lease)
