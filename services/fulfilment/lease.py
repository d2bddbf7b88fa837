"""One order leased by a worker: the writes it may make while it holds the lease, and the
renewals that keep the lease short but alive for as long as the worker works on the order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Order, OrderStatus
from db.models.events import WORKER
from db.repositories.orders import OrderRepository
from services.metrics import FINAL_STATUSES, Metrics

log = logging.getLogger(__name__)

# Notes of the order events that record an unexpected error (they are counted).
ERROR_NOTE = "error: "


class OrderLease:
    """Every write is guarded by the lease token (`lease_owner`, one per leased batch) and the
    status the order had: a worker that lost the order changes nothing."""

    def __init__(
        self,
        order: Order,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        length: timedelta,
        metrics: Metrics | None = None,
    ) -> None:
        self.order = order
        self._metrics = metrics
        self._session_factory = session_factory
        self._clock = clock
        self._length = length
        self.lost = False
        self._stopped = False  # the keeper cancelled the step
        # When the lease was last known to be ours (taken just now, or renewed): loop time.
        self._confirmed_at = asyncio.get_running_loop().time()

    @property
    def public_id(self) -> str:
        return self.order.public_id

    def _guard(self) -> dict[str, object]:
        return {"status": self.order.status, "lease_owner": self.order.lease_owner}

    async def update(self, **values: object) -> bool:
        """Set `values` (status unchanged); False when the lease is no longer ours."""
        async with self._session_factory() as session:
            won = await OrderRepository(session).update_where(
                self.order.id, self._guard(), **values
            )
            await session.commit()
        if won:
            for name, value in values.items():
                setattr(self.order, name, value)
        return won

    async def move(self, new: OrderStatus, *, note: str | None = None, **values: object) -> bool:
        """The guarded step to `new` (recorded as an event by the worker)."""
        old = self.order.status
        async with self._session_factory() as session:
            won = await OrderRepository(session).transition(
                self.order.id,
                OrderStatus(old),
                new,
                {"lease_owner": self.order.lease_owner},
                actor=WORKER,
                note=note,
                **values,
            )
            await session.commit()
        if not won:
            log.warning("order %s: lost the lease before %s", self.public_id, new.value)
            return False
        self.order.mirror(new, values)
        log.info("order %s: %s → %s", self.public_id, old, new.value)
        self.finished(new)
        return True

    def finished(self, new: OrderStatus) -> None:
        """Metrics of a step this lease won: final statuses, and payment → delivered."""
        if self._metrics is None or new.value not in FINAL_STATUSES:
            return
        self._metrics.order_finished(new.value)
        if new is OrderStatus.DELIVERED and self.order.paid_at is not None:
            self._metrics.delivered_after((self._clock() - self.order.paid_at).total_seconds())

    async def release(self, delay: timedelta | None, reason: str | None) -> None:
        """Give the lease back, due again after `delay` (None: nothing more to do)."""
        next_at = self._clock() + delay if delay is not None else None
        await self.update(
            lease_owner=None, lease_until=None, next_attempt_at=next_at, failure_reason=reason
        )
        if delay is not None:
            log.info(
                "order %s: %s; next try in %.0f s", self.public_id, reason, delay.total_seconds()
            )

    async def renew(self, **values: object) -> bool:
        """Extend the lease from now (setting `values` too); False (and `lost`) when another
        worker holds it."""
        if not await self.update(lease_until=self._clock() + self._length, **values):
            self.lost = True
            return False
        self._confirmed_at = asyncio.get_running_loop().time()
        return True

    async def confirm(self) -> bool:
        """Whether the lease is still ours, checked before buying. Taken or renewed less than a
        third of its length ago it is (only a lapsed lease is taken over), else renewed now."""
        age = asyncio.get_running_loop().time() - self._confirmed_at
        if not self.lost and age < self._length.total_seconds() / 3:
            return True
        return await self.renew()

    async def note_error(self, error: str) -> int:
        """Record an unexpected error on the order; how many it has had."""
        async with self._session_factory() as session:
            repo = OrderRepository(session)
            status = self.order.status
            await repo.add_events([(self.order.id, status, status)], WORKER, ERROR_NOTE + error)
            count = await repo.count_events(self.order.id, ERROR_NOTE)
            await session.commit()
        return count

    async def reload(self) -> Order | None:
        async with self._session_factory() as session:
            return await OrderRepository(session).get(self.order.id)

    async def hold_while(self, step: Awaitable[None]) -> None:
        """Run `step`, renewing the lease every third of its length. If the lease is lost, or
        cannot be renewed before it would run out, `step` is cancelled: whatever it waits for
        (eSIM Go's budget, a retry, Telegram), it must not buy or write what another worker
        may own by then."""
        task = asyncio.current_task()
        assert task is not None
        # The step runs in this task (no hop through the loop before it starts); the keeper
        # cancels this task if need be, and only that cancel is absorbed here.
        keeper = asyncio.create_task(self._keep(task))
        try:
            await step
        except asyncio.CancelledError:
            if not self._stopped or task.uncancel() > 0:
                raise
            log.warning("order %s: lease lost while working on it; stopped", self.public_id)
        finally:
            # No await before this: the keeper cannot cancel a step that has just finished.
            keeper.cancel()

    async def _keep(self, task: asyncio.Task[None]) -> None:
        """Renew until the lease is lost or renewals fail for two thirds of its length; then
        stop `task`."""
        loop = asyncio.get_running_loop()
        every = self._length.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                if await self.renew():
                    continue
            except Exception as exc:
                log.warning("order %s: lease not renewed: %s", self.public_id, exc)
            if self.lost or loop.time() - self._confirmed_at >= 2 * every:
                self._stopped = True
                task.cancel()
                return
