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
    jitter could push a burst at a window's edge into the next one. Concurrent callers queue
    in order, and each one's time is set when it actually goes out: if the loop stalls (a
    long collection, a blocking call), the calls held up behind it still leave one interval
    apart instead of all at once.
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
        self._turn = asyncio.Lock()

    @property
    def rate(self) -> float:
        return 1.0 / self._interval

    async def acquire(self) -> None:
        """Wait until this call may go out."""
        async with self._turn:
            delay = max(self._next_slot, self._paused_until) - self._clock()
            if delay > 0:
                await self._sleep(delay)
            self._next_slot = self._clock() + self._interval

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
