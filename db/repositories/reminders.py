"""What reminders are due (unpaid invoices, eSIMs not installed) and who turned them off."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import String, cast, exists, func, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Esim, Gift, GiftStatus, NotificationSent, Order, OrderStatus, User
from db.repositories.upsert import dialect_of, insert_for

_ON = func.coalesce(User.reminders_enabled, true())


class UnpaidOrder(NamedTuple):
    order_id: int
    public_id: str
    user_id: int
    bundle_name: str


class UninstalledEsim(NamedTuple):
    esim_id: int
    iccid: str
    user_id: int
    bundle_name: str | None
    profile_status: str | None


class ReminderRepository:
    """Never commits: the calling service owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def unpaid(
        self, created_from: datetime, created_until: datetime, now: datetime, key_prefix: str
    ) -> Sequence[UnpaidOrder]:
        """Orders awaiting payment, created in the window, still payable, not yet reminded
        (no `key_prefix` + order id sent), of users who did not turn reminders off."""
        reminded = exists().where(
            NotificationSent.dedup_key == literal(key_prefix) + cast(Order.id, String)
        )
        result = await self.session.execute(
            select(Order.id, Order.public_id, Order.telegram_user_id, Order.bundle_name)
            .outerjoin(User, User.telegram_id == Order.telegram_user_id)
            .where(
                Order.status == OrderStatus.AWAITING_PAYMENT.value,
                Order.created_at >= created_from,
                Order.created_at <= created_until,
                or_(Order.expires_at.is_(None), Order.expires_at > now),
                _ON,
                ~reminded,
            )
            .order_by(Order.id)
        )
        return [UnpaidOrder(*row) for row in result.all()]

    async def uninstalled(
        self, since_from: datetime, since_until: datetime, key_prefix: str
    ) -> Sequence[UninstalledEsim]:
        """eSIMs never installed, held since a time in the window, not yet reminded (`key_prefix`
        + ICCID), of users who did not turn reminders off."""
        # Held since: bought, or a gift claimed or taken back. An unclaimed gift is nobody's to
        # install yet.
        since = func.coalesce(Gift.claimed_at, Esim.created_at)
        reminded = exists().where(NotificationSent.dedup_key == literal(key_prefix) + Esim.iccid)
        result = await self.session.execute(
            select(
                Esim.id, Esim.iccid, Esim.telegram_user_id, Order.bundle_name, Esim.profile_status
            )
            .outerjoin(Order, Order.id == Esim.first_order_id)
            .outerjoin(Gift, Gift.order_id == Esim.first_order_id)
            .outerjoin(User, User.telegram_id == Esim.telegram_user_id)
            .where(
                Esim.first_installed_at.is_(None),
                Esim.deleted_at.is_(None),
                or_(Gift.id.is_(None), Gift.status != GiftStatus.PENDING.value),
                since >= since_from,
                since <= since_until,
                _ON,
                ~reminded,
            )
            .order_by(Esim.id)
        )
        return [UninstalledEsim(*row) for row in result.all()]

    async def enabled(self, user_id: int) -> bool:
        result = await self.session.execute(
            select(User.reminders_enabled).where(User.telegram_id == user_id)
        )
        return result.scalar_one_or_none() is not False

    async def set_enabled(self, user_id: int, enabled: bool, now: datetime) -> None:
        """Turn the user's reminders on or off (creating their row if need be)."""
        insert = insert_for(dialect_of(self.session), User)
        await self.session.execute(
            insert.values(
                telegram_id=user_id, reminders_enabled=enabled, created_at=now, updated_at=now
            ).on_conflict_do_update(
                index_elements=[User.telegram_id],
                set_={"reminders_enabled": enabled, "updated_at": now},
            )
        )
