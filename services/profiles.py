"""Users' rows read and written for many updates at once: one query serves a burst of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories.users import Profile, StoredUser, UserRepository

log = logging.getLogger(__name__)

K = TypeVar("K")
T = TypeVar("T")
R = TypeVar("R")


class Batched(Generic[K, T, R]):
    """`submit()` queues an item and returns at once; one task passes whatever is queued to
    `run` in one call, and again for what was queued meanwhile. With one item it is a plain
    call a loop turn later; with forty it is one query instead of forty."""

    def __init__(self, run: Callable[[dict[K, T]], Awaitable[Mapping[K, R]]], name: str) -> None:
        self._run = run
        self._name = name
        self._queued: dict[K, tuple[T, list[asyncio.Future[R]]]] = {}
        self._task: asyncio.Task[None] | None = None

    def submit(self, key: K, item: T) -> asyncio.Future[R]:
        """Resolves with `run`'s result for `key` (the last item queued for it wins)."""
        result: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        _, waiting = self._queued.get(key, (item, []))
        self._queued[key] = (item, [*waiting, result])
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=self._name)
        return result

    async def _drain(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, {}
            try:
                results = await self._run({key: item for key, (item, _) in batch.items()})
            except Exception as exc:
                log.warning("%s: %d items failed: %s", self._name, len(batch), exc)
                for _, waiting in batch.values():
                    for result in waiting:
                        if not result.done():  # done: its update was cancelled meanwhile
                            result.set_exception(exc)
                continue
            for key, (_, waiting) in batch.items():
                for result in waiting:
                    if not result.done():
                        result.set_result(results[key])


class UserRows:
    """The users table as the update middleware uses it: a burst of new users costs a few
    queries and commits instead of one read and one write transaction each."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._reads: Batched[int, None, StoredUser | None] = Batched(self._read, "user-reads")
        self._writes: Batched[int, Profile, None] = Batched(self._write, "user-writes")

    def stored(self, user_id: int) -> asyncio.Future[StoredUser | None]:
        """The user's row as stored (None for someone new)."""
        return self._reads.submit(user_id, None)

    def save(self, user_id: int, profile: Profile) -> asyncio.Future[None]:
        """Resolves once the row holds `profile` and no blocked mark."""
        return self._writes.submit(user_id, profile)

    async def _read(self, wanted: dict[int, None]) -> dict[int, StoredUser | None]:
        async with self._session_factory() as session:
            found = await UserRepository(session).stored_many(wanted)
        return {user_id: found.get(user_id) for user_id in wanted}

    async def _write(self, profiles: dict[int, Profile]) -> dict[int, None]:
        async with self._session_factory() as session:
            await UserRepository(session).save_profiles(profiles)
            await session.commit()
        return dict.fromkeys(profiles)
