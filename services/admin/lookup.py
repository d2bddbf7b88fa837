"""/order: find orders by public id, ICCID, Telegram user id or @username, and tell one order's
whole story (its state changes, the admins' actions, the eSIM's live state at eSIM Go)."""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Order, OrderStatus
from db.repositories.admin_orders import AdminOrderRepository
from db.repositories.admin_stats import RESOLVE
from services.admin.order_rules import TAKEN_BACK, OrderAction, refusal
from services.esimgo.client import EsimGoClient
from services.esimgo.errors import EsimGoError
from services.esimgo.models import BundleAssignment, EsimDetails
from services.orders import TOPUP
from services.plan_takeback import is_own, order_assignment
from services.pricing import Price
from services.usage import is_installed

log = logging.getLogger(__name__)

FOUND_LIMIT = 20
_USERNAME = re.compile(r"@([A-Za-z0-9_]{4,32})")
_PUBLIC_ID = re.compile(r"[A-Za-z0-9]{6,32}")
# ICCIDs have 18–22 digits (19 or 20 in practice); Telegram ids fit in 64 bits and are shorter.
_ICCID = re.compile(r"\d{18,22}")
_USER_ID = re.compile(r"\d{1,17}")


class QueryKind(enum.StrEnum):
    PUBLIC_ID = "public_id"
    ICCID = "iccid"
    USER_ID = "user_id"
    USERNAME = "username"


def parse_query(text: str) -> tuple[QueryKind, str] | None:
    """What an admin typed after /order; None when it can be none of them."""
    value = text.strip()
    if match := _USERNAME.fullmatch(value):
        return QueryKind.USERNAME, match.group(1)
    if _ICCID.fullmatch(value):
        return QueryKind.ICCID, value
    if _USER_ID.fullmatch(value):
        return QueryKind.USER_ID, value
    if _PUBLIC_ID.fullmatch(value):
        return QueryKind.PUBLIC_ID, value.upper()
    return None


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One order in a list of matches."""

    public_id: str
    status: str
    kind: str
    bundle_name: str
    country_code: str | None
    price: Price
    user_id: int
    username: str | None
    created_at: datetime
    paid_at: datetime | None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    at: datetime
    from_status: str | None
    to_status: str
    actor: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    at: datetime
    admin_id: int
    action: str
    outcome: str  # "done" or "refused"
    note: str | None


@dataclass(frozen=True, slots=True)
class LiveEsim:
    """The eSIM as eSIM Go reports it now; `error` when it could not be asked."""

    details: EsimDetails | None
    bundles: tuple[BundleAssignment, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OrderStory:
    line: OrderLine
    iccid: str | None
    cost: Decimal
    cost_currency: str
    esimgo_order_reference: str | None
    telegram_payment_charge_id: str | None
    provider_payment_charge_id: str | None
    failure_reason: str | None
    attempts: int
    delivered_at: datetime | None
    refunded_at: datetime | None
    events: tuple[OrderEvent, ...]
    actions: tuple[ActionRecord, ...]
    live: LiveEsim | None
    # Each action, and why it does not fit now (None: it does; show its button).
    refusals: dict[OrderAction, str | None]
    # What a Refund leaves of the eSIM, said on its confirmation.
    refund_effect: str = ""


def order_line(order: Order) -> OrderLine:
    return OrderLine(
        public_id=order.public_id,
        status=order.status,
        kind=order.kind,
        bundle_name=order.bundle_name,
        country_code=order.country_code,
        price=Price(order.price, order.price_currency),
        user_id=order.telegram_user_id,
        username=order.telegram_username,
        created_at=order.created_at,
        paid_at=order.paid_at,
    )


def refund_effect(order: Order, live: LiveEsim | None) -> str:
    """What an admin's Refund does to the eSIM, as eSIM Go shows it now (checked again, with
    the eSIM's history, when the Refund is done)."""
    if order.status != OrderStatus.DELIVERED.value:
        return "No eSIM was delivered for it: only the money goes back."
    if live is None or live.details is None:
        return (
            "Its state at eSIM Go is not known now. If its plan is unused and this order's "
            "own, the plan is taken back to your eSIM Go balance first; else only the money "
            "goes back and the eSIM stays active."
        )
    plan = order_assignment(order, live.bundles)
    installed = is_installed(live.details.profile_status, live.details.first_installed_at)
    if plan is None or plan.state != "queued" or (order.kind != TOPUP and installed):
        return (
            "The eSIM and its plan stay active: the plan was installed or has started, so it "
            "cannot go back to the balance; only the money goes back."
        )
    if not is_own(order, plan):
        return (
            "The eSIM and its plan stay active: the unused plan on it cannot be identified as "
            "this order's, so it is not revoked; only the money goes back."
        )
    return (
        f"{TAKEN_BACK} The plan is unused: the money goes back once eSIM Go has taken the "
        "plan back."
    )


class OrderLookup:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        esimgo: EsimGoClient,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._esimgo = esimgo
        self._clock = clock

    async def find(self, query: str, limit: int = FOUND_LIMIT) -> list[OrderLine]:
        """The matching orders, newest first; empty when nothing (or nothing sensible) matches."""
        parsed = parse_query(query)
        if parsed is None:
            return []
        kind, value = parsed
        async with self._session_factory() as session:
            repo = AdminOrderRepository(session)
            if kind is QueryKind.PUBLIC_ID:
                order = await repo.by_public_id(value)
                orders = [order] if order is not None else []
            elif kind is QueryKind.ICCID:
                orders = await repo.by_iccid(value, limit)
            elif kind is QueryKind.USER_ID:
                orders = await repo.by_user([int(value)], limit)
                # A public id can be all digits too (2–9 are in its alphabet).
                if not orders and (order := await repo.by_public_id(value)) is not None:
                    orders = [order]
            else:
                orders = await repo.by_user(await repo.user_ids_named(value), limit)
        return [order_line(order) for order in orders]

    async def story(self, public_id: str) -> OrderStory | None:
        async with self._session_factory() as session:
            repo = AdminOrderRepository(session)
            order = await repo.by_public_id(public_id)
            if order is None:
                return None
            events = await repo.events(order.id)
            actions = await repo.actions(order.id)
        resolved = any(a.action == RESOLVE and a.outcome == "done" for a in actions)
        now = self._clock()
        live = await self._live(order.iccid) if order.iccid else None
        return OrderStory(
            line=order_line(order),
            iccid=order.iccid,
            cost=order.cost,
            cost_currency=order.cost_currency,
            esimgo_order_reference=order.esimgo_order_reference,
            telegram_payment_charge_id=order.telegram_payment_charge_id,
            provider_payment_charge_id=order.provider_payment_charge_id,
            failure_reason=order.failure_reason,
            attempts=order.attempts,
            delivered_at=order.delivered_at,
            refunded_at=order.refunded_at,
            events=tuple(OrderEvent(*event) for event in events),
            actions=tuple(
                ActionRecord(a.at, a.admin_id, a.action, a.outcome, a.note) for a in actions
            ),
            live=live,
            refusals={
                action: refusal(action, order, now=now, resolved=resolved)
                for action in OrderAction
            },
            refund_effect=refund_effect(order, live),
        )

    async def _live(self, iccid: str) -> LiveEsim:
        """Asked after the database session is closed: eSIM Go may take seconds."""
        try:
            details = await self._esimgo.get_esim(iccid)
            bundles = await self._esimgo.get_esim_bundles(iccid)
        except EsimGoError as exc:
            log.warning("live state of %s unknown: %s", iccid, exc)
            return LiveEsim(None, (), str(exc))
        return LiveEsim(details, tuple(bundles))
