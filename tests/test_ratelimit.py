"""The request pacer keeps calls under the ceiling, measured on a fake clock."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from services.ratelimit import RateLimiter
from tests.fakes.pacing_clock import FakeClock, max_in_window


async def test_first_call_goes_out_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(9, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    assert clock.sleeps == []


async def test_many_concurrent_callers_never_exceed_the_rate_in_any_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(9, clock=clock, sleep=clock.sleep)
    released: list[float] = []

    async def call() -> None:
        # Each caller books its slot; record when its slot comes due.
        delay = limiter.reserve()
        released.append(clock.now + delay)

    await asyncio.gather(*(call() for _ in range(50)))
    assert len(released) == 50
    assert max_in_window(released) <= 9
    # ...and it is not needlessly slow: 50 calls at 9/s take about 49/9 s.
    assert max(released) - min(released) == pytest.approx(49 / 9)


async def test_calls_held_up_by_a_stalled_loop_still_leave_one_interval_apart() -> None:
    limiter = RateLimiter(20)  # real clock: one call every 50 ms
    sent: list[float] = []

    async def call() -> None:
        await limiter.acquire()
        sent.append(time.monotonic())

    first = asyncio.create_task(call())
    waiting = [asyncio.create_task(call()) for _ in range(5)]
    await first
    time.sleep(0.3)  # noqa: ASYNC251 - the point: the loop is blocked while they wait
    await asyncio.gather(*waiting)
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert len(gaps) == 5
    assert min(gaps) >= 0.045  # not a burst of everything whose time passed in the stall


async def test_acquire_sleeps_the_booked_delay() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await limiter.acquire()
    assert clock.sleeps == pytest.approx([0.25, 0.25])


async def test_idle_time_is_not_banked_as_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.now += 60  # a quiet minute
    await limiter.acquire()
    await limiter.acquire()
    assert clock.sleeps == pytest.approx([0.5])


async def test_pause_holds_later_calls_until_retry_after_has_passed() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    limiter.pause(3)
    start = clock.now
    async with limiter:
        pass
    assert clock.now - start == pytest.approx(3)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
