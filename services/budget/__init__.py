"""The eSIM Go request budget: one per account, paid orders first, shared through Redis if set."""

from __future__ import annotations

from services.budget.priority import (
    Priority,
    background_work,
    call_priority,
    current_priority,
    paid_work,
)
from services.budget.redis_slots import RedisSlots
from services.budget.scheduler import RequestBudget, WaitObserver

__all__ = [
    "Priority",
    "RequestBudget",
    "WaitObserver",
    "background_work",
    "call_priority",
    "current_priority",
    "paid_work",
    "request_budget",
]


def request_budget(
    rate: float, *, redis_url: str = "", account: str = "", on_wait: WaitObserver | None = None
) -> RequestBudget:
    """The budget for one eSIM Go account: shared by every replica when `redis_url` is set."""
    shared = RedisSlots.from_url(redis_url, rate, account=account) if redis_url else None
    return RequestBudget(rate, shared=shared, on_wait=on_wait)
