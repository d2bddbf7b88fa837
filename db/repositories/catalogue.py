"""Catalogue snapshots: save the latest raw catalogue, load it back, keep only a few."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CatalogueSnapshot


class CatalogueSnapshotRepository:
    """Never commits: the calling service owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, payload: str, bundle_count: int, fetched_at: datetime
    ) -> CatalogueSnapshot:
        snapshot = CatalogueSnapshot(
            payload=payload, bundle_count=bundle_count, fetched_at=fetched_at
        )
        self.session.add(snapshot)
        await self.session.flush()
        return snapshot

    async def latest_ids(self, limit: int) -> Sequence[int]:
        """Ids of the newest snapshots, newest first (payloads are large: load them one by one)."""
        result = await self.session.execute(
            select(CatalogueSnapshot.id)
            .order_by(CatalogueSnapshot.fetched_at.desc(), CatalogueSnapshot.id.desc())
            .limit(limit)
        )
        return result.scalars().all()

    async def latest_fetched_at(self) -> datetime | None:
        """When the newest snapshot was fetched; cheap enough to ask every minute."""
        result = await self.session.execute(
            select(CatalogueSnapshot.fetched_at)
            .order_by(CatalogueSnapshot.fetched_at.desc(), CatalogueSnapshot.id.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def get(self, snapshot_id: int) -> CatalogueSnapshot | None:
        return await self.session.get(CatalogueSnapshot, snapshot_id)

    async def latest(self) -> CatalogueSnapshot | None:
        ids = await self.latest_ids(1)
        return await self.get(ids[0]) if ids else None

    async def prune(self, keep: int) -> int:
        """Delete all but the newest `keep` snapshots; returns how many were deleted."""
        kept = list(await self.latest_ids(max(keep, 1)))
        result = await self.session.execute(
            delete(CatalogueSnapshot).where(CatalogueSnapshot.id.not_in(kept))
        )
        return int(getattr(result, "rowcount", 0) or 0)
