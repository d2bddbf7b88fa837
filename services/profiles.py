"""The people who talk to the bot: their stored profile and chosen language, kept in a short-lived
cache so that most updates need no database, and read and written for many updates at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories.users import Profile, StoredUser, UserRepository
from services.i18n import SUPPORTED_LANGUAGES, normalize_language

log = logging.getLogger(__name__)

# Long enough that a user tapping through menus costs one database read, short enough that a
# language chosen on another replica (or a send failure seen there) shows soon.
KNOWN_USER_TTL_SECONDS = 30.0
KNOWN_USERS_MAX = 50_000

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


@dataclass(frozen=True, slots=True)
class KnownUser:
    """A user row as last stored: this profile, this chosen language, not marked blocked."""

    profile: Profile
    language: str | None


class KnownUsers:
    """Users whose row is known to be up to date, for a while."""

    def __init__(
        self,
        ttl_seconds: float = KNOWN_USER_TTL_SECONDS,
        max_size: int = KNOWN_USERS_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_size = max_size
        self._clock = clock
        self._entries: dict[int, tuple[float, KnownUser]] = {}
        # Bumped by forget(): a row read before then may be stale and is not kept.
        self.generation = 0

    def get(self, user_id: int) -> KnownUser | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        expires, user = entry
        if expires <= self._clock():
            del self._entries[user_id]
            return None
        return user

    def put(self, user_id: int, user: KnownUser, read_in_generation: int) -> None:
        if read_in_generation != self.generation:
            return
        self._entries.pop(user_id, None)
        if len(self._entries) >= self._max_size:
            # Dicts keep insertion order: the first entry is the one stored longest ago.
            del self._entries[next(iter(self._entries))]
        self._entries[user_id] = (self._clock() + self._ttl, user)

    def forget(self, user_id: int) -> None:
        self.generation += 1
        self._entries.pop(user_id, None)


@dataclass(frozen=True, slots=True)
class Visit:
    """A user seen in an update: the language to answer in, and their row's pending write."""

    language: str
    stored: asyncio.Future[None] | None


class UserProfiles:
    """Stores who is talking (a row written only when it changed, unmarked as blocked), answers
    in their chosen language, and remembers a /language choice."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        default_language: str,
        on_return: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._default = default_language
        # Told when someone marked blocked writes again (what never reached them can go now).
        self._on_return = on_return
        self._rows = UserRows(session_factory)
        self.known = KnownUsers()

    async def visit(self, user_id: int, profile: Profile, telegram_language: str | None) -> Visit:
        """The language for this update; the row's write (if it must change) runs meanwhile:
        `settle()` it once the update is answered."""
        known = self.known.get(user_id)
        stored = None
        if known is None or known.profile != profile:
            generation = self.known.generation
            found = await self._rows.stored(user_id)
            if found is None or found.profile != profile or found.blocked:
                stored = self._rows.save(user_id, profile)
            if found is not None and found.blocked:
                await self._returned(user_id)
            known = KnownUser(profile, found.language if found is not None else None)
            self.known.put(user_id, known, generation)
        return Visit(self.language(known.language, telegram_language), stored)

    async def _returned(self, user_id: int) -> None:
        if self._on_return is None:
            return
        try:
            await self._on_return(user_id)
        except Exception:
            log.exception("user %s is back, but what waited for them was not resent", user_id)

    async def settle(self, user_id: int, visit: Visit) -> None:
        """Wait for the visit's write; a failed one is tried again on the user's next update."""
        if visit.stored is None:
            return
        try:
            await visit.stored
        except Exception as exc:
            log.debug("profile of %s not stored: %s", user_id, exc)  # logged by UserRows
            self.known.forget(user_id)

    def language(self, chosen: str | None, telegram_language: str | None) -> str:
        """The user's own choice, else their Telegram language if we speak it, else the
        default."""
        if chosen in SUPPORTED_LANGUAGES:
            return chosen
        return normalize_language(telegram_language, self._default)

    async def store_language(self, user_id: int, language: str) -> None:
        """Remember the user's /language choice."""
        async with self._session_factory() as session:
            await UserRepository(session).set_language(user_id, language)
            await session.commit()
        self.known.forget(user_id)

    def forget(self, user_id: int) -> None:
        """Their cached row may be stale (a failed send may have marked them blocked)."""
        self.known.forget(user_id)
