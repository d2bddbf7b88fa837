"""Network snapshots: eSIM Go's networks per country, saved with each catalogue refresh."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import NetworkSnapshot


class NetworkSnapshotRepository:
    """Never commits: the calling service owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, payload: str, country_count: int, fetched_at: datetime) -> int:
        snapshot = NetworkSnapshot(
            payload=payload, country_count=country_count, fetched_at=fetched_at
        )
        self.session.add(snapshot)
        await self.session.flush()
        return snapshot.id

    async def latest(self) -> NetworkSnapshot | None:
        result = await self.session.execute(
            select(NetworkSnapshot)
            .order_by(NetworkSnapshot.fetched_at.desc(), NetworkSnapshot.id.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def prune(self, keep_id: int) -> None:
        """Delete every snapshot but this one."""
        await self.session.execute(delete(NetworkSnapshot).where(NetworkSnapshot.id != keep_id))
