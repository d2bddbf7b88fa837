"""The fulfilment worker's timings and limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    # Paid but not delivered after this: refund.
    deadline: timedelta = timedelta(minutes=15)
    # Renewed every third of it while an order is worked on, so another process takes over a
    # dead worker's order within this.
    lease: timedelta = timedelta(seconds=30)
    poll_seconds: float = 30.0
    sweep_seconds: float = 300.0
    # eSIM Go's clock and ours may differ by this much: an eSIM Go order created this little
    # before our attempt might be ours (in doubt), one created earlier is not.
    clock_skew: timedelta = timedelta(seconds=5)
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 300.0
    # A delivery Telegram keeps refusing is given up after this (the eSIM stays in /myesims).
    delivery_give_up: timedelta = timedelta(days=1)
    # A Stars refund Telegram keeps failing is handed to the admins after this.
    refund_give_up: timedelta = timedelta(days=1)
    # Unexpected errors on one order before it is handed to the operators.
    max_errors: int = 3
    concurrency: int = 32
    batch: int = 100

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait before the next try, after `attempts` tries."""
        exponent = min(max(attempts - 1, 0), 16)
        seconds = min(self.backoff_base_seconds * 2**exponent, self.backoff_max_seconds)
        return timedelta(seconds=seconds)
