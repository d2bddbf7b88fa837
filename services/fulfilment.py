"""The fulfilment worker: paid orders → eSIM Go transaction → eSIM photo in Telegram, or a refund.

Each order is leased with a guarded UPDATE, so two workers (or a restarted one) never act on the
same order at once. eSIM Go has no idempotency key: before ordering again after an attempt whose
outcome is unknown (timeout, reset, 5xx, crash) the worker looks for the order it may have placed
(`list_orders` since the attempt time) and adopts it. Delivery is its own step, retried on its
own, so a failed Telegram send never buys a second eSIM.

A top-up orders onto the user's ICCID with reassignment off and is delivered as a text (the eSIM
is installed already). If eSIM Go answers with another ICCID the bundle is not the user's eSIM:
nothing is delivered, the order fails and is refunded, and the operators are alerted.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Esim, Order, OrderStatus
from db.repositories.orders import OrderRepository
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.esimgo.client import EsimGoClient
from services.esimgo.errors import (
    AuthError,
    BadRequestError,
    EsimGoError,
    InsufficientBalanceError,
    NotFoundError,
    OrderOutcomeUnknownError,
    RateLimitedError,
)
from services.esimgo.models import EsimCredentials, OrderResult
from services.formatting import order_title
from services.i18n import N_, Translator
from services.install import delivery_caption, delivery_keyboard
from services.messenger import (
    Button,
    Keyboard,
    Messenger,
    MessengerError,
    RecipientUnavailableError,
    RefundError,
    RetryLaterError,
)
from services.metrics import FINAL_STATUSES, Metrics
from services.orders import STRAY, TOPUP, OrderService
from services.pricing import Price, format_price
from services.qr import lpa_string, render_qr_png

log = logging.getLogger(__name__)

# failure_reason prefixes: the last attempt was refused outright (nothing was bought), or its
# outcome is unknown (look for the order before buying again).
REJECTED = "rejected: "
UNKNOWN = "unknown: "

REFUNDED_TEXT = N_(
    "😔 We could not issue your eSIM (order <code>{order}</code>). "
    "Your payment of {price} has been refunded."
)
STRAY_REFUNDED_TEXT = N_(
    "This payment was for an order that is no longer open (order <code>{order}</code>), "
    "so your payment of {price} has been refunded."
)
REFUND_DUE_TEXT = N_(
    "😔 We could not issue your eSIM (order <code>{order}</code>). "
    "Your payment of {price} will be refunded by our team; use /paysupport if you have questions."
)
TOPUP_REFUNDED_TEXT = N_(
    "😔 We could not add the new plan to your eSIM (order <code>{order}</code>). "
    "Your payment of {price} has been refunded."
)
TOPUP_REFUND_DUE_TEXT = N_(
    "😔 We could not add the new plan to your eSIM (order <code>{order}</code>). "
    "Your payment of {price} will be refunded by our team; use /paysupport if you have questions."
)
TOPUP_DELIVERED_TEXT = N_(
    "✅ <b>Your new plan is on your eSIM</b>\n\n"
    "{plan} is now on your eSIM ending in {tail}. Nothing to install: keep using the eSIM you "
    "already have. The plan starts when the eSIM first uses data in a covered country."
)
OPEN_ESIM = N_("📱 Open in My eSIMs")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    deadline: timedelta = timedelta(minutes=15)
    lease: timedelta = timedelta(minutes=3)  # longer than the 60 s order timeout
    poll_seconds: float = 30.0
    sweep_seconds: float = 300.0
    # eSIM Go's clock and ours may differ; reconcile looks a little before the attempt time.
    reconcile_skew: timedelta = timedelta(minutes=2)
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 300.0
    # A delivery Telegram keeps refusing is given up after this (the eSIM stays in /myesims).
    delivery_give_up: timedelta = timedelta(days=1)
    concurrency: int = 32
    batch: int = 100


class FulfilmentWorker:
    """Leases due orders and drives each one step: fulfil, deliver or refund."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        esimgo: EsimGoClient,
        messenger: Messenger,
        translator: Translator,
        alerts: AdminAlerts,
        orders: OrderService | None = None,
        *,
        settings: WorkerSettings | None = None,
        wake_event: asyncio.Event | None = None,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        catalogue: CatalogueService | None = None,
        install_help_callback: str = "",
        open_esim_callback: Callable[[int], str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._metrics = metrics
        self._catalogue = catalogue
        self._install_help_callback = install_help_callback
        # Callback data of the button that opens an eSIM (by id) in /myesims, under a top-up.
        self._open_esim_callback = open_esim_callback
        self._esimgo = esimgo
        self._messenger = messenger
        self._translator = translator
        self._alerts = alerts
        self._orders = orders
        self.settings = settings or WorkerSettings()
        self._wake = wake_event or asyncio.Event()
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._clock = clock
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._batches = 0

    def wake(self) -> None:
        """Look for work now (a payment just arrived) instead of at the next poll."""
        self._wake.set()

    # -- driving ------------------------------------------------------------------------------

    async def run_once(self, max_rounds: int = 20) -> int:
        """Do every step due now, to completion; returns how many order steps ran."""
        done = 0
        for _ in range(max_rounds):
            leased = await self._lease_due(self.settings.batch)
            if not leased:
                break
            await asyncio.gather(*(self._process(order) for order in leased))
            done += len(leased)
        if self._side_tasks:
            await asyncio.gather(*self._side_tasks, return_exceptions=True)
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
                leased: list[Order] = []
                if free > 0:
                    try:
                        leased = await self._lease_due(free)
                    except Exception:
                        log.exception("leasing orders failed")
                for order in leased:
                    task = asyncio.create_task(
                        self._process(order), name=f"order-{order.public_id}"
                    )
                    running.add(task)
                    task.add_done_callback(finished)
                if leased and len(leased) == free:
                    continue  # more may be waiting
                timeout = await self._seconds_to_next_due() if not leased else 0.0
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
                # arrives as the event is set, and the worker would then never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout or None):
                        await self._wake.wait()
        finally:
            pending = list(running) + list(self._side_tasks)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            log.info("fulfilment worker %s stopped", self.worker_id)

    async def _sweep(self) -> None:
        if self._orders is None:
            return
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
            leased = await repo.lease_due(token, now, now + self.settings.lease, limit)
            await session.commit()
        for order in leased:
            if order.status == OrderStatus.FULFILLING.value and order.attempts == 1:
                log.info("order %s: paid → fulfilling (%s)", order.public_id, token)
        return leased

    async def _process(self, order: Order) -> None:
        try:
            if order.status == OrderStatus.FULFILLING.value:
                await self._fulfil(order)
            elif order.status == OrderStatus.DELIVERED.value:
                await self._deliver(order)
            elif order.status == OrderStatus.FAILED.value:
                await self._refund(order)
        except Exception:
            log.exception("order %s: unexpected error; will retry", order.public_id)
            with contextlib.suppress(Exception):
                await self._release(order, self._backoff(order), "error: unexpected")

    # -- small database steps -------------------------------------------------------------------

    @staticmethod
    def _mine(order: Order) -> dict[str, object]:
        """Still leased by the batch that took `order` (lease_owner is a per-batch token)."""
        return {"lease_owner": order.lease_owner}

    async def _update(self, order: Order, **values: object) -> bool:
        """Update an order we hold the lease on (status unchanged)."""
        async with self._session_factory() as session:
            won = await OrderRepository(session).update_where(
                order.id, {"status": order.status, **self._mine(order)}, **values
            )
            await session.commit()
        return won

    async def _move(self, order: Order, new: OrderStatus, **values: object) -> bool:
        async with self._session_factory() as session:
            won = await OrderRepository(session).transition(
                order.id, OrderStatus(order.status), new, self._mine(order), **values
            )
            await session.commit()
        if won:
            log.info("order %s: %s → %s", order.public_id, order.status, new.value)
            self._count(order, new)
        else:
            log.warning("order %s: lost the lease before %s", order.public_id, new.value)
        return won

    def _count(self, order: Order, new: OrderStatus) -> None:
        """Metrics of a transition this worker won: final statuses, and payment → delivered."""
        if self._metrics is None or new.value not in FINAL_STATUSES:
            return
        self._metrics.order_finished(new.value)
        if new is OrderStatus.DELIVERED and order.paid_at is not None:
            self._metrics.delivered_after((self._clock() - order.paid_at).total_seconds())

    async def _reload(self, order: Order) -> Order | None:
        async with self._session_factory() as session:
            return await OrderRepository(session).get(order.id)

    def _backoff(self, order: Order) -> timedelta:
        exponent = max(order.attempts - 1, 0)
        seconds = min(
            self.settings.backoff_base_seconds * 2 ** min(exponent, 16),
            self.settings.backoff_max_seconds,
        )
        return timedelta(seconds=seconds)

    async def _release(self, order: Order, delay: timedelta | None, reason: str | None) -> None:
        """Give the lease back, due again after `delay` (None: nothing more to do)."""
        next_at = self._clock() + delay if delay is not None else None
        await self._update(
            order,
            lease_owner=None,
            lease_until=None,
            next_attempt_at=next_at,
            failure_reason=reason,
        )
        if delay is not None:
            log.info(
                "order %s: %s; next try in %.0f s", order.public_id, reason, delay.total_seconds()
            )

    # -- fulfil -------------------------------------------------------------------------------

    def _show_progress(self, chat_id: int) -> None:
        """Show "sending a photo…" in the chat without waiting for it: it only decorates."""

        async def send() -> None:
            with contextlib.suppress(MessengerError):
                await self._messenger.send_upload_photo_action(chat_id)

        task = asyncio.create_task(send())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _past_deadline(self, order: Order) -> bool:
        start = order.paid_at or order.created_at
        return self._clock() > start + self.settings.deadline

    async def _fulfil(self, order: Order) -> None:
        if order.esimgo_order_reference:
            # Bought earlier but the eSIM details were missing: never order again.
            await self._complete_known_reference(order)
            return
        # The lease of a paid order records the first attempt time; any later lease means an
        # earlier attempt may have bought the eSIM unless eSIM Go refused it outright.
        first_try = order.attempts <= 1 and order.last_attempt_at is not None
        refused = (order.failure_reason or "").startswith(REJECTED)
        if not first_try and order.last_attempt_at is not None and not refused:
            try:
                adopted = await self._reconcile(order)
            except EsimGoError as exc:
                await self._retry_or_fail(order, f"{UNKNOWN}reconcile failed: {exc}")
                return
            if adopted is not None:
                await self._store(order, adopted)
                return
        if self._past_deadline(order):
            await self._fail(order, "fulfilment deadline passed")
            return
        now = self._clock()
        if not first_try:
            if not await self._update(order, last_attempt_at=now, failure_reason=None):
                return
            order.last_attempt_at = now
        topup = order.kind == TOPUP
        if not topup:
            self._show_progress(order.chat_id)
        try:
            result = await self._esimgo.create_order(
                order.bundle_name, iccid=order.iccid if topup else None
            )
        except OrderOutcomeUnknownError as exc:
            await self._retry_or_fail(order, f"{UNKNOWN}{exc}")
            return
        except RateLimitedError as exc:
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            await self._retry_or_fail(order, f"{REJECTED}{exc}", delay)
            return
        except InsufficientBalanceError as exc:
            await self._alerts.alert_once(
                self._messenger,
                f"low-balance:{now.date().isoformat()}",
                f"⚠️ eSIM Go balance too low: order {order.public_id} ({order.bundle_name}) "
                f"could not be placed: {exc}. Top up the eSIM Go account.",
            )
            await self._retry_or_fail(order, f"{REJECTED}{exc}")
            return
        except AuthError as exc:
            await self._alerts.alert_once(
                self._messenger,
                f"esimgo-auth:{now.date().isoformat()}",
                f"⚠️ eSIM Go refused our API key while placing order {order.public_id}: {exc}",
            )
            await self._retry_or_fail(order, f"{REJECTED}{exc}")
            return
        except (NotFoundError, BadRequestError) as exc:
            await self._fail(order, f"{REJECTED}{exc}")
            return
        except EsimGoError as exc:
            await self._retry_or_fail(order, f"{UNKNOWN}{exc}")
            return
        await self._store(order, result)

    async def _retry_or_fail(
        self, order: Order, reason: str, delay: timedelta | None = None
    ) -> None:
        delay = delay if delay is not None else self._backoff(order)
        start = order.paid_at or order.created_at
        deadline = start + self.settings.deadline
        if self._clock() + delay > deadline and reason.startswith(REJECTED):
            # Nothing was bought and the next try would be late anyway: refund now.
            await self._fail(order, reason)
            return
        await self._release(order, delay, reason)

    async def _reconcile(self, order: Order) -> OrderResult | None:
        """An eSIM Go order for this bundle placed since our last attempt and not yet ours."""
        assert order.last_attempt_at is not None
        since = order.last_attempt_at - self.settings.reconcile_skew
        candidates = [
            found
            for found in await self._esimgo.list_orders(created_since=since)
            if found.reference
            and any(item.bundle_name == order.bundle_name for item in found.items)
            and (order.kind != TOPUP or order.iccid in found.iccids)
        ]
        async with self._session_factory() as session:
            taken = await OrderRepository(session).linked_references(
                [c.reference for c in candidates]
            )
        free = [c for c in candidates if c.reference not in taken]
        if not free:
            log.info("order %s: no eSIM Go order to adopt since %s", order.public_id, since)
            return None
        free.sort(key=lambda c: c.created_at or since)
        adopted = free[0]
        log.info("order %s: adopting eSIM Go order %s", order.public_id, adopted.reference)
        if not adopted.esims:
            adopted = await self._with_esims(adopted)
        return adopted

    async def _with_esims(self, result: OrderResult) -> OrderResult:
        esims = tuple(await self._esimgo.get_assignments(result.reference))
        return OrderResult(
            reference=result.reference,
            status=result.status,
            total=result.total,
            currency=result.currency,
            created_at=result.created_at,
            items=result.items,
            esims=esims,
            raw=result.raw,
        )

    async def _complete_known_reference(self, order: Order) -> None:
        assert order.esimgo_order_reference is not None
        try:
            result = await self._esimgo.get_order(order.esimgo_order_reference)
            if not result.esims:
                result = await self._with_esims(result)
        except EsimGoError as exc:
            await self._release(order, self._backoff(order), f"{UNKNOWN}details: {exc}")
            return
        await self._store(order, result)

    @staticmethod
    def _credentials(result: OrderResult) -> EsimCredentials | None:
        for esim in result.esims:
            if esim.matching_id and esim.smdp_address and esim.iccid:
                return esim
        return None

    async def _details_late(self, order: Order, result: OrderResult) -> None:
        """The order exists; only its eSIM details are late. Keep the reference, ask later."""
        log.warning(
            "order %s: eSIM Go order %s has no eSIM yet", order.public_id, result.reference
        )
        if await self._update(order, esimgo_order_reference=result.reference):
            order.esimgo_order_reference = result.reference
            await self._release(order, self._backoff(order), f"{UNKNOWN}eSIM details missing")

    async def _store(self, order: Order, result: OrderResult) -> None:
        """Link the eSIM Go order and its eSIM to ours; then deliver in the same breath."""
        if order.kind == TOPUP:
            await self._store_topup(order, result)
            return
        esim = self._credentials(result)
        now = self._clock()
        if esim is None:
            await self._details_late(order, result)
            return
        lpa = lpa_string(esim.smdp_address, esim.matching_id)
        values: dict[str, object] = {
            "iccid": esim.iccid,
            "qr_code": lpa,
            "activation_code": esim.matching_id,
            "smdp_address": esim.smdp_host,
            "esimgo_order_reference": result.reference,
            "failure_reason": None,
            "next_attempt_at": now,  # delivery is due
        }

        async def write(session: AsyncSession) -> bool:
            repo = OrderRepository(session)
            # Read before writing: keeps SQLite's write lock as short as possible.
            known = await repo.esim_by_iccid(esim.iccid) is not None
            won = await repo.transition(
                order.id,
                OrderStatus.FULFILLING,
                OrderStatus.DELIVERED,
                self._mine(order),
                **values,
            )
            if won and not known:
                await repo.add_esim(
                    Esim(
                        iccid=esim.iccid,
                        telegram_user_id=order.telegram_user_id,
                        first_order_id=order.id,
                        smdp_address=esim.smdp_host,
                        matching_id=esim.matching_id,
                        lpa=lpa,
                        country_code=order.country_code,
                        tracking=True,
                    )
                )
            return won

        await self._link_and_deliver(order, result, write, values, f"ICCID {esim.iccid}")

    async def _store_topup(self, order: Order, result: OrderResult) -> None:
        """The bundle must be on the very ICCID asked for; anything else is not delivered."""
        iccids = result.iccids
        if not iccids:
            await self._details_late(order, result)
            return
        if order.iccid not in iccids:
            await self._topup_landed_elsewhere(order, result)
            return
        iccid = order.iccid
        assert iccid is not None

        values: dict[str, object] = {
            "esimgo_order_reference": result.reference,
            "failure_reason": None,
            "next_attempt_at": self._clock(),  # delivery is due
        }

        async def write(session: AsyncSession) -> bool:
            repo = OrderRepository(session)
            won = await repo.transition(
                order.id,
                OrderStatus.FULFILLING,
                OrderStatus.DELIVERED,
                self._mine(order),
                **values,
            )
            if won:
                await repo.mark_topped_up(iccid, order.telegram_user_id)
            return won

        await self._link_and_deliver(order, result, write, values, f"top-up onto ICCID {iccid}")

    async def _link_and_deliver(
        self,
        order: Order,
        result: OrderResult,
        write: Callable[[AsyncSession], Awaitable[bool]],
        values: Mapping[str, object],
        what: str,
    ) -> None:
        """Run `write` (the guarded step to delivered, setting `values`) in one transaction,
        then deliver."""
        try:
            async with self._session_factory() as session:
                won = await write(session)
                await session.commit()
        except IntegrityError:
            # Another local order adopted this eSIM Go order meanwhile: look again for ours.
            log.warning(
                "order %s: eSIM Go order %s already linked elsewhere",
                order.public_id,
                result.reference,
            )
            await self._release(order, timedelta(0), f"{UNKNOWN}reference taken")
            return
        if not won:
            log.warning("order %s: lost the lease while storing", order.public_id)
            return
        self._count(order, OrderStatus.DELIVERED)
        log.info(
            "order %s: fulfilling → delivered (eSIM Go %s, %s)",
            order.public_id,
            result.reference,
            what,
        )
        await self._deliver(order.mirror(OrderStatus.DELIVERED, values))

    async def _topup_landed_elsewhere(self, order: Order, result: OrderResult) -> None:
        """eSIM Go put the bundle on another ICCID: never hand that over; refund, investigate."""
        got = ", ".join(result.iccids)
        reason = (
            f"ICCID mismatch: top-up of {order.iccid}, eSIM Go assigned {got} "
            f"(eSIM Go order {result.reference}); needs investigation"
        )
        log.error("order %s: %s", order.public_id, reason)
        # The reference is kept so that no other order adopts this eSIM Go order.
        if not await self._move(
            order,
            OrderStatus.FAILED,
            failure_reason=reason,
            next_attempt_at=None,
            esimgo_order_reference=result.reference or None,
        ):
            return
        await self._alerts.alert(
            self._messenger,
            f"🚨 Top-up order {order.public_id} ({order.bundle_name}, user "
            f"{order.telegram_user_id}): requested ICCID {order.iccid}, eSIM Go returned {got} "
            f"(eSIM Go order {result.reference}). Not delivered; the user is being refunded. "
            "Check the eSIM Go account: the bundle was bought onto the other ICCID.",
        )
        fresh = await self._reload(order)
        if fresh is not None:
            await self._refund(fresh)

    async def _fail(self, order: Order, reason: str) -> None:
        log.warning("order %s: giving up: %s", order.public_id, reason)
        if await self._move(
            order, OrderStatus.FAILED, failure_reason=reason, next_attempt_at=None
        ):
            fresh = await self._reload(order)
            if fresh is not None:
                await self._refund(fresh)

    # -- deliver ------------------------------------------------------------------------------

    async def _deliver(self, order: Order) -> None:
        topup = order.kind == TOPUP
        if order.delivered_at is not None or not (order.qr_code or topup):
            await self._release(order, None, order.failure_reason)
            return
        try:
            if topup:
                text, keyboard = await self._topup_text(order)
                await self._messenger.send_text(order.chat_id, text, keyboard)
            else:
                assert order.qr_code is not None
                # On the loop: ~2.5 ms of pure Python that holds the GIL either way. In a thread
                # it also waited to win the GIL back from the busy loop: bench/purchase measured
                # stored → photo at p50 8.5 ms that way, 3.3 ms on the loop.
                png = render_qr_png(order.qr_code)
                caption, keyboard = self._delivery_text(order, order.qr_code)
                await self._messenger.send_photo(order.chat_id, png, caption, keyboard)
        except RecipientUnavailableError as exc:
            log.warning("order %s: user unreachable, delivery given up: %s", order.public_id, exc)
            await self._release(order, None, f"recipient unavailable: {exc}")
            return
        except RetryLaterError as exc:
            await self._release(
                order, timedelta(seconds=max(exc.retry_after, 1)), f"telegram flood wait: {exc}"
            )
            return
        except MessengerError as exc:
            start = order.paid_at or order.created_at
            if self._clock() > start + self.settings.delivery_give_up:
                log.warning("order %s: delivery given up: %s", order.public_id, exc)
                await self._release(order, None, f"delivery given up: {exc}")
            else:
                await self._release(order, self._backoff(order), f"telegram error: {exc}")
            return
        await self._update(
            order,
            delivered_at=self._clock(),
            next_attempt_at=None,
            lease_owner=None,
            lease_until=None,
            failure_reason=None,
        )
        log.info("order %s: eSIM sent to user %s", order.public_id, order.telegram_user_id)

    async def _topup_text(self, order: Order) -> tuple[str, Keyboard | None]:
        """No QR for a top-up: which plan went onto which eSIM, and a way to open it."""
        lang = order.language
        bundle = self._catalogue.catalogue.by_name(order.bundle_name) if self._catalogue else None
        iccid = order.iccid or ""
        text = self._translator.gettext(TOPUP_DELIVERED_TEXT, lang).format(
            plan=f"<b>{html.escape(order_title(order, bundle, lang, self._translator))}</b>",
            tail=f"…{html.escape(iccid[-4:])}",
        )
        if self._open_esim_callback is None:
            return text, None
        async with self._session_factory() as session:
            esim = await OrderRepository(session).esim_by_iccid(iccid)
        if esim is None or esim.telegram_user_id != order.telegram_user_id:
            return text, None
        label = self._translator.gettext(OPEN_ESIM, lang)
        return text, [[Button(text=label, callback_data=self._open_esim_callback(esim.id))]]

    def _delivery_text(self, order: Order, lpa: str) -> tuple[str, Keyboard]:
        lang = order.language
        bundle = self._catalogue.catalogue.by_name(order.bundle_name) if self._catalogue else None
        caption = delivery_caption(
            self._translator,
            lang,
            plan_title=order_title(order, bundle, lang, self._translator),
            iccid=order.iccid or "",
            smdp_address=order.smdp_address or "",
            matching_id=order.activation_code or "",
            lpa=lpa,
        )
        keyboard = delivery_keyboard(
            self._translator,
            lang,
            lpa=lpa,
            install_help_callback=self._install_help_callback or "-",
        )
        if not self._install_help_callback:
            keyboard = [row for row in keyboard if all(b.url for b in row)]
        return caption, keyboard

    # -- refund -------------------------------------------------------------------------------

    async def _refund(self, order: Order) -> None:
        price = Price(order.price, order.price_currency)
        charge = order.telegram_payment_charge_id
        if not price.is_stars or not charge:
            await self._refund_by_hand(order, price)
            return
        try:
            await self._messenger.refund_star_payment(order.telegram_user_id, charge)
        except RefundError as exc:
            log.error("order %s: Stars refund refused: %s", order.public_id, exc)
            await self._refund_by_hand(order, price, f"refundStarPayment refused: {exc}")
            return
        except RetryLaterError as exc:
            await self._release(
                order, timedelta(seconds=max(exc.retry_after, 1)), order.failure_reason
            )
            return
        except MessengerError as exc:
            log.warning("order %s: refund failed, will retry: %s", order.public_id, exc)
            await self._release(order, self._backoff(order), order.failure_reason)
            return
        if not await self._move(
            order,
            OrderStatus.REFUNDED,
            refunded_at=self._clock(),
            lease_owner=None,
            lease_until=None,
            next_attempt_at=None,
        ):
            return
        stray = (order.failure_reason or "").startswith(STRAY)
        if stray:
            text = STRAY_REFUNDED_TEXT
        else:
            text = TOPUP_REFUNDED_TEXT if order.kind == TOPUP else REFUNDED_TEXT
        await self._tell(order, text, price)
        if not stray:
            await self._alerts.alert(
                self._messenger,
                f"↩️ Order {order.public_id} ({order.bundle_name}) refunded: "
                f"{order.failure_reason}",
            )

    async def _refund_by_hand(self, order: Order, price: Price, why: str | None = None) -> None:
        if not await self._move(
            order,
            OrderStatus.REFUND_DUE,
            lease_owner=None,
            lease_until=None,
            next_attempt_at=None,
            failure_reason=why or order.failure_reason,
        ):
            return
        await self._tell(
            order, TOPUP_REFUND_DUE_TEXT if order.kind == TOPUP else REFUND_DUE_TEXT, price
        )
        await self._alerts.alert(
            self._messenger,
            f"💸 Refund due by hand: order {order.public_id}, user {order.telegram_user_id}, "
            f"{order.price} {order.price_currency}, charge {order.telegram_payment_charge_id}, "
            f"provider charge {order.provider_payment_charge_id}: {why or order.failure_reason}",
        )

    async def _tell(self, order: Order, text: str, price: Price) -> None:
        message = self._translator.gettext(text, order.language).format(
            order=order.public_id, price=format_price(price, order.language)
        )
        try:
            await self._messenger.send_text(order.chat_id, message)
        except MessengerError as exc:
            log.warning("order %s: could not tell the user: %s", order.public_id, exc)
