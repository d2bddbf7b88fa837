"""Broadcasts and their recipients: who gets one, and how far sending got."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Broadcast, BroadcastRecipient, Order, OrderStatus, User

# broadcasts.status
DRAFT, SENDING, DONE, CANCELLED = "draft", "sending", "done", "cancelled"
# broadcast_recipients.status; "unknown": a send was under way when its job died, so it may
# have arrived: never sent again.
PENDING, IN_FLIGHT, SENT, FAILED, BLOCKED, UNKNOWN = (
    "pending",
    "sending",
    "sent",
    "failed",
    "blocked",
    "unknown",
)

_RECORD = (
    update(BroadcastRecipient)
    .where(
        BroadcastRecipient.broadcast_id == bindparam("b_id"),
        BroadcastRecipient.telegram_user_id == bindparam("u_id"),
    )
    .values(
        status=bindparam("new_status"),
        error=bindparam("new_error"),
        updated_at=bindparam("at"),
    )
)


def _speaks(language: str, supported: Sequence[str], default: str) -> ColumnElement[bool]:
    """The user's language is `language`: chosen with /language, or else Telegram's mapped as
    services.i18n.normalize_language maps it (unsupported or unknown → the default)."""

    def telegram_says(code: str) -> ColumnElement[bool]:
        tg = func.lower(User.telegram_language)
        return or_(tg == code, tg.like(f"{code}-%"), tg.like(f"{code}\\_%", escape="\\"))

    from_telegram = telegram_says(language)
    if language == default:
        from_telegram = or_(from_telegram, not_(or_(*(telegram_says(c) for c in supported))))
        from_telegram = or_(from_telegram, User.telegram_language.is_(None))
    return or_(User.language == language, and_(User.language.is_(None), from_telegram))


def audience_filter(
    audience: str, supported: Sequence[str], default: str
) -> list[ColumnElement[bool]]:
    """Users who have not blocked the bot and are in `audience` ("all", "buyers", "lang:xx")."""
    where: list[ColumnElement[bool]] = [User.blocked_at.is_(None)]
    if audience == "buyers":
        where.append(
            exists().where(
                Order.telegram_user_id == User.telegram_id,
                Order.status == OrderStatus.DELIVERED.value,
            )
        )
    elif audience.startswith("lang:"):
        where.append(_speaks(audience.removeprefix("lang:"), supported, default))
    return where


class BroadcastRepository:
    """Never commits: the calling service owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, broadcast: Broadcast) -> Broadcast:
        self.session.add(broadcast)
        await self.session.flush()
        return broadcast

    async def get(self, broadcast_id: int) -> Broadcast | None:
        return await self.session.get(Broadcast, broadcast_id, populate_existing=True)

    async def count_users(self, where: list[ColumnElement[bool]]) -> int:
        return int(await self.session.scalar(select(func.count()).where(*where)) or 0)

    async def start(
        self, broadcast_id: int, where: list[ColumnElement[bool]], now: datetime
    ) -> int | None:
        """draft → sending with its recipients fixed now; None when it was no draft."""
        result = await self.session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.status == DRAFT)
            .values(status=SENDING, started_at=now)
        )
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            return None
        users = select(literal(broadcast_id), User.telegram_id, literal(PENDING)).where(*where)
        inserted = await self.session.execute(
            insert(BroadcastRecipient).from_select(
                ["broadcast_id", "telegram_user_id", "status"], users
            )
        )
        return int(getattr(inserted, "rowcount", 0) or 0)

    async def set_audience(self, broadcast_id: int, audience: str) -> bool:
        """Change who a draft goes to; False once it is no draft."""
        result = await self.session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.status == DRAFT)
            .values(audience=audience)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def set_status(self, broadcast_id: int, old: Collection[str], new: str) -> bool:
        result = await self.session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.status.in_(list(old)))
            .values(status=new)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def acquire(
        self, broadcast_id: int, runner: str, now: datetime, stale: datetime
    ) -> bool:
        """Become the job sending it: nobody else is, or its job stopped renewing."""
        result = await self.session.execute(
            update(Broadcast)
            .where(
                Broadcast.id == broadcast_id,
                Broadcast.status == SENDING,
                or_(Broadcast.runner.is_(None), Broadcast.heartbeat_at < stale),
            )
            .values(runner=runner, heartbeat_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def renew(self, broadcast_id: int, runner: str, now: datetime, **values: object) -> bool:
        """Still ours and still sending (an admin may have stopped it)."""
        result = await self.session.execute(
            update(Broadcast)
            .where(
                Broadcast.id == broadcast_id,
                Broadcast.runner == runner,
                Broadcast.status == SENDING,
            )
            .values(heartbeat_at=now, **values)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def release(self, broadcast_id: int, runner: str, **values: object) -> None:
        await self.session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.runner == runner)
            .values(runner=None, **values)
        )

    async def resumable(self, stale: datetime) -> list[int]:
        rows = await self.session.execute(
            select(Broadcast.id)
            .where(
                Broadcast.status == SENDING,
                or_(Broadcast.runner.is_(None), Broadcast.heartbeat_at < stale),
            )
            .order_by(Broadcast.id)
        )
        return [int(row[0]) for row in rows.all()]

    async def in_flight_to_unknown(self, broadcast_id: int, now: datetime) -> int:
        result = await self.session.execute(
            update(BroadcastRecipient)
            .where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.status == IN_FLIGHT,
            )
            .values(status=UNKNOWN, error="interrupted while sending", updated_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def claim(self, broadcast_id: int, limit: int, now: datetime) -> list[int]:
        """The next pending recipients, marked as being sent to (before any send starts)."""
        rows = await self.session.execute(
            select(BroadcastRecipient.telegram_user_id)
            .where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.status == PENDING,
            )
            .order_by(BroadcastRecipient.telegram_user_id)
            .limit(limit)
        )
        user_ids = [int(row[0]) for row in rows.all()]
        if user_ids:
            await self.session.execute(
                update(BroadcastRecipient)
                .where(
                    BroadcastRecipient.broadcast_id == broadcast_id,
                    BroadcastRecipient.telegram_user_id.in_(user_ids),
                    BroadcastRecipient.status == PENDING,
                )
                .values(status=IN_FLIGHT, updated_at=now)
            )
        return user_ids

    async def record(
        self, broadcast_id: int, results: Iterable[tuple[int, str, str | None]], now: datetime
    ) -> None:
        """(user id, new status, error) for recipients of this broadcast."""
        params = [
            {
                "b_id": broadcast_id,
                "u_id": user,
                "new_status": status,
                "new_error": error,
                "at": now,
            }
            for user, status, error in results
        ]
        if params:
            connection = await self.session.connection()
            await connection.execute(_RECORD, params)

    async def mark_blocked(self, user_ids: Collection[int], now: datetime) -> None:
        if user_ids:
            await self.session.execute(
                update(User)
                .where(User.telegram_id.in_(list(user_ids)), User.blocked_at.is_(None))
                .values(blocked_at=now)
            )

    async def counts(self, broadcast_id: int) -> dict[str, int]:
        rows = await self.session.execute(
            select(BroadcastRecipient.status, func.count())
            .where(BroadcastRecipient.broadcast_id == broadcast_id)
            .group_by(BroadcastRecipient.status)
        )
        return {row[0]: int(row[1]) for row in rows.all()}
