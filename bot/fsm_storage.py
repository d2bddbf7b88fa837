"""FSM storage in memory that forgets, as RedisStorage does with a TTL."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

Record = tuple[Any, float]  # (value, expires at on the clock)


class ExpiringMemoryStorage(BaseStorage):
    """Like aiogram's MemoryStorage, but a state or data record is forgotten `ttl` seconds
    after it was last written, and nothing is kept for a user who has no state (MemoryStorage
    keeps an empty record for everyone who ever wrote, for good)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._states: dict[StorageKey, Record] = {}
        self._data: dict[StorageKey, Record] = {}
        self._next_sweep = clock() + ttl

    def _put(self, records: dict[StorageKey, Record], key: StorageKey, value: Any) -> None:
        now = self._clock()
        if value:
            records[key] = (value, now + self._ttl)
        else:
            records.pop(key, None)
        if now >= self._next_sweep:
            # Whoever never came back: drop them all once per ttl, not on every read.
            for table in (self._states, self._data):
                for stale in [k for k, (_, until) in table.items() if until <= now]:
                    del table[stale]
            self._next_sweep = now + self._ttl

    def _get(self, records: dict[StorageKey, Record], key: StorageKey) -> Any:
        record = records.get(key)
        if record is None or record[1] <= self._clock():
            return None
        return record[0]

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        self._put(self._states, key, state.state if isinstance(state, State) else state)

    async def get_state(self, key: StorageKey) -> str | None:
        state: str | None = self._get(self._states, key)
        return state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        self._put(self._data, key, data.copy())

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        data: dict[str, Any] | None = self._get(self._data, key)
        return data.copy() if data else {}

    async def close(self) -> None:
        self._states.clear()
        self._data.clear()
