"""Gifts: the claim-link hash of an order bought for someone else, and the move of ownership."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Esim, Gift, GiftStatus, Order, OrderStatus

# Orders that never took money do not follow the eSIM: an unpaid top-up the buyer started stays
# theirs (and its payment is refused, as for any eSIM that is no longer the payer's).
_UNPAID = (OrderStatus.AWAITING_PAYMENT.value, OrderStatus.CANCELLED.value)


class GiftRepository:
    """Never commits: the calling service owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, order_id: int, buyer_id: int, now: datetime) -> Gift:
        gift = Gift(
            order_id=order_id,
            buyer_id=buyer_id,
            status=GiftStatus.PENDING.value,
            created_at=now,
            updated_at=now,
        )
        self.session.add(gift)
        await self.session.flush()
        return gift

    async def by_token_hash(self, token_hash: str) -> Gift | None:
        result = await self.session.execute(
            select(Gift)
            .where(Gift.token_hash == token_hash)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def by_order(self, order_id: int) -> Gift | None:
        result = await self.session.execute(
            select(Gift).where(Gift.order_id == order_id).execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def by_id(self, gift_id: int) -> Gift | None:
        return await self.session.get(Gift, gift_id, populate_existing=True)

    async def pending_of(self, buyer_id: int) -> Sequence[Gift]:
        """The buyer's gifts nobody has claimed yet, newest first."""
        result = await self.session.execute(
            select(Gift)
            .where(Gift.buyer_id == buyer_id, Gift.status == GiftStatus.PENDING.value)
            .order_by(Gift.id.desc())
        )
        return result.scalars().all()

    async def is_pending_on(self, buyer_id: int, iccid: str) -> bool:
        """The eSIM is a gift of `buyer_id` that nobody has claimed yet."""
        result = await self.session.execute(
            select(Gift.id)
            .join(Order, Order.id == Gift.order_id)
            .where(
                Gift.buyer_id == buyer_id,
                Gift.status == GiftStatus.PENDING.value,
                Order.iccid == iccid,
            )
            .limit(1)
        )
        return result.scalar_one_or_none() is not None

    async def set_token_hash(self, gift_id: int, token_hash: str, now: datetime) -> bool:
        """A new link for a pending gift (the previous one stops working); True if it was."""
        result = await self.session.execute(
            update(Gift)
            .where(Gift.id == gift_id, Gift.status == GiftStatus.PENDING.value)
            .values(token_hash=token_hash, link_issued_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def finish(
        self,
        gift_id: int,
        status: GiftStatus,
        *,
        by: int,
        at: datetime,
        iccid: str | None,
        moved_through: int | None,
    ) -> bool:
        """pending → claimed / taken back, guarded on pending; True if this call won."""
        result = await self.session.execute(
            update(Gift)
            .where(Gift.id == gift_id, Gift.status == GiftStatus.PENDING.value)
            .values(
                status=status.value,
                claimed_by=by,
                claimed_at=at,
                iccid=iccid,
                moved_through_order_id=moved_through,
                updated_at=at,
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def last_paid_order_id(self, iccid: str, owner_id: int) -> int | None:
        """The newest order on the eSIM that `owner_id` paid for (None: there is none)."""
        result = await self.session.execute(
            select(func.max(Order.id)).where(
                Order.iccid == iccid,
                Order.telegram_user_id == owner_id,
                Order.status.not_in(_UNPAID),
            )
        )
        return result.scalar_one_or_none()

    async def move_esim(self, iccid: str, from_id: int, to_id: int, now: datetime) -> bool:
        """The eSIM changes owner, only if `from_id` still holds it and it is not deleted."""
        result = await self.session.execute(
            update(Esim)
            .where(
                Esim.iccid == iccid,
                Esim.telegram_user_id == from_id,
                Esim.deleted_at.is_(None),
            )
            .values(telegram_user_id=to_id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def move_orders(
        self,
        iccid: str,
        from_id: int,
        through_id: int,
        to_id: int,
        *,
        username: str | None,
        language: str,
        now: datetime,
    ) -> list[tuple[int, str]] | None:
        """The paid orders on the eSIM follow it (/myesims, its history and top-ups read them);
        their messages go to the new owner's private chat, whose id is the user's. Returns the
        (id, status) of each order moved; None (nothing may be kept) when one of them is under
        a live lease (a refund by its buyer or an admin, a delivery under way)."""
        which = (
            Order.iccid == iccid,
            Order.telegram_user_id == from_id,
            Order.id <= through_id,
            Order.status.not_in(_UNPAID),
        )
        moved = (await self.session.execute(select(Order.id, Order.status).where(*which))).all()
        # A lease counts until it runs out, as for a self-refund (services.self_refund._claimed).
        free = or_(Order.lease_owner.is_(None), Order.lease_until <= now)
        result = await self.session.execute(
            update(Order)
            .where(Order.id.in_([order_id for order_id, _status in moved]), free, *which)
            .values(
                telegram_user_id=to_id,
                chat_id=to_id,
                telegram_username=username,
                language=language,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) != len(moved):
            return None
        return [(order_id, status) for order_id, status in moved]

    async def payer_id(self, order: Order) -> int:
        """Who paid for the order: a claimed gift's orders now name its claimant, but their
        money came from the buyer (refunds go back to them)."""
        gift = await self.payer_gift(order)
        return gift.buyer_id if gift is not None else order.telegram_user_id

    async def payer_gift(self, order: Order) -> Gift | None:
        """The claimed gift whose claim moved this order to its new owner, if any."""
        if not order.iccid:
            return None
        result = await self.session.execute(
            select(Gift).where(
                Gift.iccid == order.iccid,
                Gift.status == GiftStatus.CLAIMED.value,
                Gift.moved_through_order_id >= order.id,
            )
        )
        return result.scalars().first()


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
