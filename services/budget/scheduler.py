"""One eSIM Go request budget for the process: calls leave one at a time, most urgent first."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from services.budget.priority import Priority

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
WaitObserver = Callable[[Priority, float], None]

# A backlog may leave this many seconds' worth of calls at once when the rate allows more than
# one call in that time: a loop pass under load takes milliseconds, and one turn per pass held
# a fast budget far below its rate (bench/purchase.py at 1000/s: paid calls waited p95 162 ms,
# with 100 calls/s asked for). Below 1/BURST_SECONDS a second (eSIM Go's 10) calls stay spaced.
BURST_SECONDS = 0.05
# A Retry-After beyond this is not believed for the whole budget: a bogus header must not stop
# sales for hours. A budget still rate limited after it simply meets the next 429.
MAX_PAUSE_SECONDS = 60.0


class SharedSlots(Protocol):
    """Slots booked with the other replicas (Redis); see services.budget.redis_slots."""

    @property
    def fallback_share(self) -> int:
        """1 while shared; while unreachable, the number of replicas to split the rate with."""
        ...

    async def reserve(self, priority: Priority) -> float:
        """0 when this replica may send now, else seconds to wait before asking again."""
        ...

    async def pause(self, seconds: float) -> None: ...

    async def close(self) -> None: ...


@dataclass(order=True, slots=True)
class _Waiter:
    priority: Priority
    seq: int
    turn: asyncio.Future[None] = field(compare=False)


class RequestBudget:
    """Grants turns, at most `rate` a second, to the most urgent caller waiting (FIFO within a
    class); with `shared` slots each turn is also booked with the other replicas."""

    def __init__(
        self,
        rate: float,
        *,
        shared: SharedSlots | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_wait: WaitObserver | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._burst = max(1, int(rate * BURST_SECONDS))
        self._shared = shared
        self._clock = clock
        self._sleep = sleep
        self._on_wait = on_wait
        self._waiting: list[_Waiter] = []
        self._seq = itertools.count()
        self._last_turn = float("-inf")
        self._paused_until = float("-inf")
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def rate(self) -> float:
        return 1.0 / self._interval

    async def acquire(self, priority: Priority) -> float:
        """Wait for this call's turn; returns the seconds waited (also given to `on_wait`)."""
        started = self._clock()
        if self._free_now():
            self._granted()
            if self._on_wait is not None:
                self._on_wait(priority, 0.0)
            return 0.0
        waiter = _Waiter(priority, next(self._seq), asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, waiter)
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="esimgo-budget")
        await waiter.turn  # a cancelled caller cancels its future; the dispatcher skips it
        waited = self._clock() - started
        if self._on_wait is not None:
            self._on_wait(priority, waited)
        return waited

    async def pause(self, seconds: float) -> None:
        """Hold every call for `seconds` (the server said Retry-After); overlapping pauses
        end with the latest, they never add up."""
        seconds = min(seconds, MAX_PAUSE_SECONDS)
        if seconds <= 0:
            return
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        if self._shared is not None:
            await self._shared.pause(seconds)

    async def close(self) -> None:
        """Stop the dispatcher (callers still waiting are cancelled) and the shared slots."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        for waiter in self._waiting:
            waiter.turn.cancel()
        self._waiting.clear()
        if self._shared is not None:
            await self._shared.close()

    def _head(self) -> _Waiter | None:
        """The most urgent caller still waiting (cancelled ones are dropped)."""
        while self._waiting and self._waiting[0].turn.done():
            heapq.heappop(self._waiting)
        return self._waiting[0] if self._waiting else None

    async def _dispatch(self) -> None:
        # A turn goes to whoever is most urgent when it comes due, not to whoever came first:
        # a paid call waits at most one interval behind any number of background calls.
        try:
            while self._head() is not None:
                await self._wait_for_turn()
                waiter = self._head()
                if waiter is None:
                    break  # everyone waiting gave up meanwhile
                heapq.heappop(self._waiting)
                self._granted()
                waiter.turn.set_result(None)
        except Exception as exc:
            # Never leave callers hanging on a dispatcher that died: they get its error.
            log.exception("eSIM Go request budget failed")
            for waiter in self._waiting:
                if not waiter.turn.done():
                    waiter.turn.set_exception(exc)
            self._waiting.clear()
        finally:
            self._dispatcher = None

    def _granted(self) -> None:
        step = self._step()
        self._last_turn = max(self._last_turn + step, self._clock() - (self._burst - 1) * step)

    def _free_now(self) -> bool:
        """Nobody waits and a turn is due: the caller may go without a trip through the
        dispatcher (a loop pass for it and one for the caller: bench/purchase.py)."""
        if self._waiting or self._shared is not None:
            return False
        return max(self._last_turn + self._step(), self._paused_until) <= self._clock()

    def _step(self) -> float:
        """Seconds between turns: the interval, times the replicas while Redis is away."""
        return self._interval * (self._shared.fallback_share if self._shared is not None else 1)

    async def _wait_for_turn(self) -> None:
        """Return when the next turn may be granted; the head may change while this waits."""
        while (head := self._head()) is not None:
            # Spaced from the last turn granted: calls held up by a stalled loop do not leave in
            # a burst (beyond `burst`), and idle time is not banked.
            due = max(self._last_turn + self._step(), self._paused_until)
            delay = due - self._clock()
            if delay <= 0 and self._shared is not None:
                delay = await self._shared.reserve(head.priority)
            if delay <= 0:
                return
            await self._sleep(delay)
