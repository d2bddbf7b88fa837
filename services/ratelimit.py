"""Client-side request pacing: keeps an API client under a requests-per-second ceiling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """Spaces calls evenly (one every 1/rate s), so no 1 s window ever sees more than rate+1.

    Even spacing rather than a burst window: eSIM Go counts per fixed window per IP, and network
    jitter could push a burst at a window's edge into the next one. Safe for concurrent tasks:
    each `acquire` books its slot synchronously before it awaits, so callers are served in order
    without queueing behind one another. A caller that wakes late (the loop stalled on a long
    collection or a blocking call) still keeps one interval after the last call that went out,
    so the calls held up by a stall do not leave in a burst.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next_slot = float("-inf")
        self._paused_until = float("-inf")
        self._last_sent = float("-inf")

    @property
    def rate(self) -> float:
        return 1.0 / self._interval

    def reserve(self) -> float:
        """Book the next free slot now; returns how long the caller must wait for it."""
        now = self._clock()
        slot = max(now, self._next_slot, self._paused_until)
        self._next_slot = slot + self._interval
        return slot - now

    async def acquire(self) -> None:
        """Wait until this call may go out."""
        delay = self.reserve()
        while True:
            if delay > 0:
                await self._sleep(delay)
            now = self._clock()
            delay = max(self._last_sent + self._interval, self._paused_until) - now
            if delay <= 0:
                break
        self._last_sent = now
        # Later bookings start after this call, even if its own slot passed long ago.
        self._next_slot = max(self._next_slot, now + self._interval)

    def pause(self, seconds: float) -> None:
        """Hold every later call for `seconds` (the server said Retry-After)."""
        if seconds > 0:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def __aenter__(self) -> RateLimiter:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
