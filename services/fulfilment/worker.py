"""The leasing loop: finds the orders due now, leases them with one guarded UPDATE (two workers,
or a restarted one, never act on the same order at once) and drives each one step: fulfil,
deliver or refund. An order whose step keeps failing unexpectedly is handed to the operators
after a few tries instead of being retried for ever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Order, OrderStatus
from db.models.events import WORKER
from db.repositories.orders import OrderRepository
from services.admin_alerts import AdminAlerts
from services.fulfilment.lease import OrderLease
from services.fulfilment.purchase import NEEDS_ATTENTION, Purchase
from services.fulfilment.refunds import Refunds
from services.fulfilment.sender import DeliverySender
from services.fulfilment.settings import WorkerSettings
from services.fulfilment.side_tasks import SideTasks
from services.messenger import Messenger
from services.metrics import Metrics
from services.orders import OrderService

log = logging.getLogger(__name__)


class FulfilmentWorker:
    """Leases due orders and drives each one step; build it with create_fulfilment_worker."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        orders: OrderService,
        purchase: Purchase,
        sender: DeliverySender,
        refunds: Refunds,
        alerts: AdminAlerts,
        messenger: Messenger,
        side_tasks: SideTasks,
        settings: WorkerSettings,
        wake_event: asyncio.Event,
        worker_id: str | None,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._session_factory = session_factory
        self._orders = orders
        self._purchase = purchase
        self._sender = sender
        self._refunds = refunds
        self._alerts = alerts
        self._messenger = messenger
        self._side_tasks = side_tasks
        self.settings = settings
        self._wake = wake_event
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._clock = clock
        self._batches = 0

    def wake(self) -> None:
        """Look for work now (a payment just arrived) instead of at the next poll."""
        self._wake.set()

    async def run_once(self, max_rounds: int = 20) -> int:
        """Do every step due now, to completion; returns how many order steps ran."""
        done = 0
        for _ in range(max_rounds):
            leased = await self._lease_due(self.settings.batch)
            if not leased:
                break
            await asyncio.gather(*(self._process(order) for order in leased))
            done += len(leased)
        await self._side_tasks.wait()
        return done

    async def run(self) -> None:
        """Run until cancelled: picks up leftovers at start, then wakes on payments or polls."""
        log.info("fulfilment worker %s started", self.worker_id)
        running: set[asyncio.Task[None]] = set()
        # Sweep at once: the loop's clock is the host's monotonic one, which starts near zero
        # after a reboot (from 0.0, nothing expired for the host's first five minutes).
        last_sweep = float("-inf")
        loop = asyncio.get_running_loop()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            self._wake.set()  # a slot is free: lease more

        try:
            while True:
                self._wake.clear()
                if loop.time() - last_sweep >= self.settings.sweep_seconds:
                    last_sweep = loop.time()
                    await self._sweep()
                free = self.settings.concurrency - len(running)
                leased = await self._lease_free_slots(free)
                for order in leased:
                    task = asyncio.create_task(
                        self._process(order), name=f"order-{order.public_id}"
                    )
                    running.add(task)
                    task.add_done_callback(finished)
                if leased and len(leased) == free:
                    continue  # more may be waiting
                # With orders running, a finished one wakes the loop; else the next due time.
                await self._wait_for_wake(0.0 if leased else await self._seconds_to_next_due())
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await self._side_tasks.cancel()
            log.info("fulfilment worker %s stopped", self.worker_id)

    async def _lease_free_slots(self, free: int) -> list[Order]:
        if free <= 0:
            return []
        try:
            return await self._lease_due(free)
        except Exception:
            log.exception("leasing orders failed")
            return []

    async def _wait_for_wake(self, seconds: float) -> None:
        """Until woken, or `seconds` (0: no limit) have passed."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives
        # as the event is set, and the worker would then never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds or None):
                await self._wake.wait()

    async def _sweep(self) -> None:
        try:
            async with self._session_factory() as session:
                await self._orders.expire_unpaid(session)
        except Exception:
            log.exception("expiring unpaid orders failed")

    async def _seconds_to_next_due(self) -> float:
        try:
            async with self._session_factory() as session:
                due = await OrderRepository(session).next_due_at()
        except Exception:
            log.exception("reading the next due time failed")
            return self.settings.poll_seconds
        if due is None:
            return self.settings.poll_seconds
        wait = (due - self._clock()).total_seconds()
        return min(max(wait, 0.05), self.settings.poll_seconds)

    async def _lease_due(self, limit: int) -> list[Order]:
        now = self._clock()
        self._batches += 1
        token = f"{self.worker_id}:{self._batches}"
        async with self._session_factory() as session:
            repo = OrderRepository(session)
            # A read first: most wake-ups (a task finished) find nothing, and then no write
            # transaction (SQLite's lock, a commit) is spent on an UPDATE of no rows.
            if not await repo.due_ids(now, 1):
                return []
            leased = await repo.lease_due(
                token, now, now + self.settings.lease, limit, actor=WORKER
            )
            await session.commit()
        for order in leased:
            if order.status == OrderStatus.FULFILLING.value and order.attempts == 1:
                log.info("order %s: paid → fulfilling (%s)", order.public_id, token)
        return leased

    async def _process(self, order: Order) -> None:
        lease = OrderLease(
            order, self._session_factory, self._clock, self.settings.lease, self._metrics
        )
        try:
            await lease.hold_while(self._step(lease))
        except Exception as exc:
            log.exception("order %s: unexpected error", order.public_id)
            with contextlib.suppress(Exception):
                await self._after_error(lease, f"{type(exc).__name__}: {exc}")

    async def _step(self, lease: OrderLease) -> None:
        status = lease.order.status
        if status == OrderStatus.FULFILLING.value:
            await self._purchase.fulfil(lease)
        elif status == OrderStatus.DELIVERED.value:
            await self._sender.deliver(lease)
        elif status == OrderStatus.FAILED.value:
            await self._refunds.refund(lease)

    async def _after_error(self, lease: OrderLease, error: str) -> None:
        """Retry later, or after `max_errors` hand the order to the operators."""
        errors = await lease.note_error(error)
        if errors < self.settings.max_errors:
            await lease.release(self.settings.backoff(errors), f"error: {error}")
            return
        order = await lease.reload()
        reference = order.esimgo_order_reference if order is not None else None
        reason = f"{NEEDS_ATTENTION}{errors} unexpected errors, the last: {error}"
        await self._alerts.alert(
            self._messenger,
            f"🚨 Order {lease.public_id} ({lease.order.bundle_name}, user "
            f"{lease.order.telegram_user_id}, {lease.order.status}) failed {errors} times: "
            f"{error}. eSIM Go order: {reference or 'none'}. "
            + _WHAT_NEXT.get(lease.order.status, "Look at it."),
        )
        if lease.order.status == OrderStatus.FULFILLING.value:
            await self._purchase.fail(lease, reason)
        elif lease.order.status == OrderStatus.FAILED.value:
            await self._refunds.by_hand(lease, reason)
        else:
            await lease.release(None, reason)


_WHAT_NEXT = {
    OrderStatus.FULFILLING.value: "The buyer is being refunded; check the eSIM Go account.",
    OrderStatus.DELIVERED.value: "Not sent; the eSIM stays in the buyer's /myesims.",
    OrderStatus.FAILED.value: "The refund is left to you.",
}
