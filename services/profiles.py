"""Users' Telegram profiles, written behind the updates that bring them, many per transaction."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories.users import Profile, UserRepository

log = logging.getLogger(__name__)


class ProfileWriter:
    """`save()` queues a profile and returns at once; one task writes whatever is queued in
    one upsert and one commit. A burst of new users costs a few transactions, not one each,
    and the update that brought a user is answered without waiting for their row."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._queued: dict[int, tuple[Profile, list[asyncio.Future[None]]]] = {}
        self._writing: asyncio.Task[None] | None = None

    def save(self, user_id: int, profile: Profile) -> asyncio.Future[None]:
        """Resolves once the row holds `profile` (or with the error that kept it from it)."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        _, waiting = self._queued.get(user_id, (profile, []))
        self._queued[user_id] = (profile, [*waiting, stored])
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_queued(), name="profile-writer")
        return stored

    async def _write_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, {}
            error: Exception | None = None
            try:
                async with self._session_factory() as session:
                    profiles = {user_id: profile for user_id, (profile, _) in batch.items()}
                    await UserRepository(session).save_profiles(profiles)
                    await session.commit()
            except Exception as exc:
                log.warning("storing %d user profiles failed: %s", len(batch), exc)
                error = exc
            for _, waiting in batch.values():
                for stored in waiting:
                    if stored.done():  # its update was cancelled meanwhile
                        continue
                    if error is None:
                        stored.set_result(None)
                    else:
                        stored.set_exception(error)
