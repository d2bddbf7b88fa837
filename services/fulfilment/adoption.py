"""After a purchase whose outcome is unknown (timeout, reset, 5xx, crash): which eSIM Go order,
if any, is this order's. eSIM Go has no idempotency key, and the same account also carries
other customers' top-ups and orders placed elsewhere (the operator's web shop): an order is
adopted only when it can be nobody else's; when two could be ours, a human decides. An order
placed elsewhere that fits every rule cannot be told from ours unless its eSIM carries a
customerRef (ours carry their order's public id): whatever else shares the account should tag."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Order
from db.repositories.orders import OrderRepository
from services.budget import paid_work
from services.esimgo.client import EsimGoClient
from services.esimgo.models import OrderResult
from services.orders import TOPUP

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    ADOPT = "adopt"  # exactly one order is ours: store it, never buy again
    NONE = "none"  # nothing there is ours: buy
    DOUBT = "doubt"  # more than one could be ours: refund and alert, never deliver


@dataclass(frozen=True, slots=True)
class Reconciliation:
    verdict: Verdict
    adopted: OrderResult | None = None
    # The eSIM Go references that could each be ours (with DOUBT).
    doubtful: tuple[str, ...] = ()


async def with_esims(esimgo: EsimGoClient, result: OrderResult) -> OrderResult:
    """The order with its eSIMs' install details, read from eSIM Go when the order lacks them."""
    if result.esims:
        return result
    return replace(result, esims=tuple(await esimgo.get_assignments(result.reference)))


def _shaped_like(order: Order, found: OrderResult, known_iccids: set[str]) -> bool:
    """One line of this order's bundle for one eSIM: a top-up's on its own ICCID, a new
    eSIM's on an ICCID that appears nowhere in our database."""
    if len(found.items) != 1 or len(found.iccids) > 1:
        return False
    item = found.items[0]
    if item.bundle_name != order.bundle_name or item.quantity != 1:
        return False
    if order.kind == TOPUP:
        return found.iccids == (order.iccid,)
    return not known_iccids.intersection(found.iccids)


class Reconciler:
    """Reads eSIM Go's orders since an attempt and judges them by the rules above."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        esimgo: EsimGoClient,
        clock_skew: timedelta,
    ) -> None:
        self._session_factory = session_factory
        self._esimgo = esimgo
        self._skew = clock_skew

    async def look_for(self, order: Order, attempt: datetime) -> Reconciliation:
        """What became of this order's purchase attempted at `attempt`."""
        found = [
            o
            for o in await self._esimgo.list_orders(created_since=attempt - self._skew)
            if o.reference and any(i.bundle_name == order.bundle_name for i in o.items)
        ]
        candidates = await self._unclaimed(order, found)
        if order.kind != TOPUP:
            candidates = [c for c in candidates if await self._untagged_or_ours(order, c)]
        # eSIM Go may state times to the second only: one from the attempt's second is after it.
        since = attempt.replace(microsecond=0)
        after = [c for c in candidates if c.created_at is not None and c.created_at >= since]
        near = [c for c in candidates if c not in after]
        if not candidates:
            log.info("order %s: no eSIM Go order to adopt since %s", order.public_id, attempt)
            return Reconciliation(Verdict.NONE)
        if len(after) == 1 and not near:
            log.info("order %s: adopting eSIM Go order %s", order.public_id, after[0].reference)
            return Reconciliation(Verdict.ADOPT, await with_esims(self._esimgo, after[0]))
        doubtful = tuple(c.reference for c in candidates)
        log.warning("order %s: eSIM Go orders %s could be ours", order.public_id, doubtful)
        return Reconciliation(Verdict.DOUBT, doubtful=doubtful)

    async def _unclaimed(self, order: Order, found: list[OrderResult]) -> list[OrderResult]:
        """Those shaped like ours that no order of ours holds."""
        if not found:
            return []
        async with self._session_factory() as session:
            repo = OrderRepository(session)
            linked = await repo.linked_references([o.reference for o in found])
            known = await repo.known_iccids({i for o in found for i in o.iccids})
        return [o for o in found if o.reference not in linked and _shaped_like(order, o, known)]

    async def _untagged_or_ours(self, order: Order, found: OrderResult) -> bool:
        """An eSIM someone tagged with another reference (the web shop does) is not ours."""
        for iccid in found.iccids:
            with paid_work():  # money is taken: not behind anyone's validate or a poll
                tag = (await self._esimgo.get_esim(iccid)).customer_ref
            if tag and tag != order.public_id:
                log.info("order %s: eSIM %s is tagged %r", order.public_id, iccid, tag)
                return False
        return True
