"""The eSIM Go transaction for a leased order: look first when an earlier attempt may have bought
it, check the lease is still ours, buy once, sort eSIM Go's answers into retry, refund or store.

A top-up orders onto the user's ICCID with reassignment off and is delivered as a text (the eSIM
is installed already).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from db.models import Order, OrderStatus
from services.admin_alerts import AdminAlerts
from services.esimgo import errors
from services.esimgo.client import EsimGoClient
from services.esimgo.errors import EsimGoError
from services.fulfilment.adoption import Reconciler, Verdict, with_esims
from services.fulfilment.lease import OrderLease
from services.fulfilment.refunds import Refunds
from services.fulfilment.settings import WorkerSettings
from services.fulfilment.side_tasks import SideTasks
from services.fulfilment.store import UNKNOWN, OrderStore
from services.messenger import Messenger, MessengerError
from services.orders import TOPUP

log = logging.getLogger(__name__)

# failure_reason of an attempt eSIM Go refused outright: nothing was bought.
REJECTED = "rejected: "
# failure_reason prefix of an order an operator must look at.
NEEDS_ATTENTION = "needs attention: "


class Purchase:
    """Drives a fulfilling order to delivered (through OrderStore) or to failed and refunded."""

    def __init__(
        self,
        esimgo: EsimGoClient,
        messenger: Messenger,
        alerts: AdminAlerts,
        reconciler: Reconciler,
        store: OrderStore,
        refunds: Refunds,
        side_tasks: SideTasks,
        settings: WorkerSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._esimgo = esimgo
        self._messenger = messenger
        self._alerts = alerts
        self._reconciler = reconciler
        self._store = store
        self._refunds = refunds
        self._side_tasks = side_tasks
        self._settings = settings
        self._clock = clock

    async def fulfil(self, lease: OrderLease) -> None:
        order = lease.order
        if order.esimgo_order_reference:
            # Bought earlier but not stored yet: never order again.
            await self._complete_known_reference(lease)
            return
        # The lease of a paid order records the first attempt time; any later lease means an
        # earlier attempt may have bought the eSIM unless eSIM Go refused it outright.
        first_try = order.attempts <= 1 and order.last_attempt_at is not None
        refused = (order.failure_reason or "").startswith(REJECTED)
        if not first_try and not refused and await self._reconciled(lease):
            return
        if self._clock() > order.work_started_at + self._settings.deadline:
            await self.fail(lease, "fulfilment deadline passed")
            return
        # The lease is checked right before buying: a worker that lost it stops. A later
        # attempt records its time with the check.
        if first_try:
            ours = await lease.confirm()
        else:
            ours = await lease.renew(last_attempt_at=self._clock(), failure_reason=None)
        if not ours:
            log.warning("order %s: lease lost before buying; stopping", order.public_id)
            return
        await self._buy(lease)

    async def _reconciled(self, lease: OrderLease) -> bool:
        """Look for what an earlier attempt bought; True when that settled the order."""
        order = lease.order
        if order.last_attempt_at is None:
            return False
        try:
            found = await self._reconciler.look_for(order, order.last_attempt_at)
        except EsimGoError as exc:
            await self._retry_or_fail(lease, f"{UNKNOWN}reconcile failed: {exc}")
            return True
        if found.verdict is Verdict.ADOPT:
            assert found.adopted is not None
            await self._store.store(lease, found.adopted)
            return True
        if found.verdict is Verdict.DOUBT:
            refs = ", ".join(found.doubtful)
            await self._alerts.alert(
                self._messenger,
                f"🚨 Order {order.public_id} ({order.bundle_name}, user "
                f"{order.telegram_user_id}): after a purchase with no answer, eSIM Go orders "
                f"{refs} could each be this one. Nothing delivered; the buyer is being "
                "refunded. Check which of them is ours in the eSIM Go account.",
            )
            await self.fail(lease, f"{NEEDS_ATTENTION}eSIM Go orders {refs} could each be ours")
            return True
        return False

    async def _buy(self, lease: OrderLease) -> None:
        order = lease.order
        topup = order.kind == TOPUP
        if not topup:
            self._side_tasks.spawn(self._show_progress(order.chat_id), "upload_photo action")
        try:
            result = await self._esimgo.create_order(
                order.bundle_name, iccid=order.iccid if topup else None
            )
        except EsimGoError as exc:
            await self._refused(lease, exc)
            return
        await self._store.store(lease, result)

    async def _refused(self, lease: OrderLease, exc: EsimGoError) -> None:
        """Sort eSIM Go's refusal: retry later, alert the operators, or refund now."""
        if isinstance(exc, errors.OrderOutcomeUnknownError):
            await self._retry_or_fail(lease, f"{UNKNOWN}{exc}")
        elif isinstance(exc, errors.RateLimitedError):
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            await self._retry_or_fail(lease, f"{REJECTED}{exc}", delay)
        elif isinstance(exc, errors.InsufficientBalanceError | errors.AuthError):
            await self._alert_account(lease.order, exc)
            await self._retry_or_fail(lease, f"{REJECTED}{exc}")
        elif isinstance(exc, errors.NotFoundError | errors.BadRequestError):
            await self.fail(lease, f"{REJECTED}{exc}")
        else:
            await self._retry_or_fail(lease, f"{UNKNOWN}{exc}")

    async def _alert_account(self, order: Order, exc: EsimGoError) -> None:
        """Once a day each: our eSIM Go balance or API key stops every purchase."""
        day = self._clock().date().isoformat()
        if isinstance(exc, errors.InsufficientBalanceError):
            key = f"low-balance:{day}"
            text = (
                f"⚠️ eSIM Go balance too low: order {order.public_id} ({order.bundle_name}) "
                f"could not be placed: {exc}. Top up the eSIM Go account."
            )
        else:
            key = f"esimgo-auth:{day}"
            text = f"⚠️ eSIM Go refused our API key while placing order {order.public_id}: {exc}"
        await self._alerts.alert_once(self._messenger, key, text)

    async def _show_progress(self, chat_id: int) -> None:
        """ "Sending a photo…" in the chat: it only decorates."""
        with contextlib.suppress(MessengerError):
            await self._messenger.send_upload_photo_action(chat_id)

    async def _complete_known_reference(self, lease: OrderLease) -> None:
        reference = lease.order.esimgo_order_reference
        assert reference is not None
        try:
            result = await with_esims(self._esimgo, await self._esimgo.get_order(reference))
        except EsimGoError as exc:
            backoff = self._settings.backoff(lease.order.attempts)
            await lease.release(backoff, f"{UNKNOWN}details: {exc}")
            return
        await self._store.store(lease, result)

    async def _retry_or_fail(
        self, lease: OrderLease, reason: str, delay: timedelta | None = None
    ) -> None:
        order = lease.order
        delay = delay if delay is not None else self._settings.backoff(order.attempts)
        deadline = order.work_started_at + self._settings.deadline
        if self._clock() + delay > deadline and reason.startswith(REJECTED):
            # Nothing was bought and the next try would be late anyway: refund now.
            await self.fail(lease, reason)
            return
        await lease.release(delay, reason)

    async def fail(self, lease: OrderLease, reason: str) -> None:
        """fulfilling → failed, then the refund."""
        log.warning("order %s: giving up: %s", lease.public_id, reason)
        if await lease.move(
            OrderStatus.FAILED, note=reason, failure_reason=reason, next_attempt_at=None
        ):
            await self._refunds.refund(lease)
