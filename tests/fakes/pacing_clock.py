"""A monotonic clock for pacing tests: it only moves when someone sleeps on it."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Pass as `clock=` and `sleep=`; every sleep advances `now` and is recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # Let whoever is already due run first, at the time they were due.
        await asyncio.sleep(0)
        self.now += seconds


def max_in_window(stamps: list[float], window: float = 1.0) -> int:
    """Most stamps within any half-open `window` seconds."""
    stamps = sorted(stamps)
    best = lo = 0
    for hi, stamp in enumerate(stamps):
        while stamp - stamps[lo] >= window - 1e-9:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
