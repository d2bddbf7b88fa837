"""The eSIM doctor's per-eSIM memory: last diagnosis, and the refresh and ticket limits.

A limit is claimed with one upsert that writes only when the last use is old enough, so two
replicas (or two presses) asking at once cannot both win. Never commits.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import UTCDateTime
from db.models.doctor import EsimCheck
from db.repositories.upsert import dialect_of, insert_for

# The columns that hold "last asked at" for a limited action.
LimitedAction = Literal["refreshed_at", "ticket_at"]

_BY_ICCID = select(EsimCheck).where(EsimCheck.iccid == bindparam("iccid"))


@cache
def _claim(dialect: str, action: LimitedAction) -> Any:
    """Set `action` to now, on a new row or where the last use is at or before `last_allowed`;
    returns the row's id only when this statement won."""
    column = EsimCheck.__table__.c[action]
    insert = insert_for(dialect, EsimCheck).values(
        {"iccid": bindparam("iccid"), action: bindparam("now", type_=UTCDateTime())}
    )
    last_allowed = bindparam("last_allowed", type_=UTCDateTime())
    return insert.on_conflict_do_update(
        index_elements=[EsimCheck.iccid],
        set_={action: insert.excluded[action]},
        where=or_(column.is_(None), column <= last_allowed),
    ).returning(EsimCheck.id)


@cache
def _record(dialect: str) -> Any:
    insert = insert_for(dialect, EsimCheck).values(
        iccid=bindparam("iccid"),
        checked_at=bindparam("at", type_=UTCDateTime()),
        finding=bindparam("finding"),
        report=bindparam("report"),
    )
    return insert.on_conflict_do_update(
        index_elements=[EsimCheck.iccid],
        set_={
            "checked_at": insert.excluded.checked_at,
            "finding": insert.excluded.finding,
            "report": insert.excluded.report,
        },
    )


class EsimCheckRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, iccid: str) -> EsimCheck | None:
        result = await self.session.execute(_BY_ICCID, {"iccid": iccid})
        return result.scalar_one_or_none()

    async def record(self, iccid: str, at: datetime, finding: str, report: str) -> None:
        """Remember the diagnosis just shown (the latest one wins)."""
        params = {"iccid": iccid, "at": at, "finding": finding, "report": report}
        await self.session.execute(_record(dialect_of(self.session)), params)

    async def claim(
        self, iccid: str, action: LimitedAction, now: datetime, last_allowed: datetime
    ) -> bool:
        """Take the action's slot for `now` unless it was last used after `last_allowed`."""
        params = {"iccid": iccid, "now": now, "last_allowed": last_allowed}
        result = await self.session.execute(_claim(dialect_of(self.session), action), params)
        return result.first() is not None

    async def release(self, iccid: str, action: LimitedAction, claimed_at: datetime) -> None:
        """Give back a slot taken at `claimed_at` (the action did not happen)."""
        column = EsimCheck.__table__.c[action]
        await self.session.execute(
            update(EsimCheck)
            .where(and_(EsimCheck.iccid == iccid, column == claimed_at))
            .values({action: None})
            .execution_options(synchronize_session=False)
        )
