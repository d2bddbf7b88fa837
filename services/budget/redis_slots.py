"""The account's request slots, booked in Redis so that every replica spends one budget."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from services.budget.priority import Priority

log = logging.getLogger(__name__)

# How far ahead of now each class may book; None: any slot (paid calls queue FIFO among them).
# Others that find the next slot further away ask again later, so the queue ahead of a paid
# call never holds more than half a second of lower-priority calls.
HORIZON_SECONDS: dict[Priority, float | None] = {
    Priority.PAID: None,
    Priority.INTERACTIVE: 0.5,
    Priority.BACKGROUND: 0.2,
}
REDIS_TIMEOUT_SECONDS = 0.5
RETRY_REDIS_AFTER_SECONDS = 5.0
# Replicas that booked within this window count when the rate is split during an outage.
REPLICA_WINDOW_SECONDS = 600.0
# A replica that never reached Redis cannot know how many run; assume at least this many.
MIN_FALLBACK_REPLICAS = 2

# Atomic, and on Redis's own clock: the replicas' clocks never need to agree.
# KEYS: next slot, paused until, replicas. ARGV: interval, horizon (-1: none), replica id,
# replica window; times in microseconds. Returns {booked 1/0, µs to wait, replicas seen}.
_BOOK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[4])
redis.call('ZADD', KEYS[3], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
redis.call('PEXPIRE', KEYS[3], math.floor(window / 1000))
local replicas = redis.call('ZCARD', KEYS[3])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or 0),
                      tonumber(redis.call('GET', KEYS[2]) or 0))
local horizon = tonumber(ARGV[2])
if horizon >= 0 and slot - now > horizon then
  return {0, slot - now - horizon, replicas}
end
local after = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX',
           math.floor((after - now) / 1000) + 1000)
return {1, slot - now, replicas}
"""
# KEYS: paused until. ARGV: pause in microseconds. Overlapping pauses end with the latest.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = tonumber(ARGV[1])
if now + pause > tonumber(redis.call('GET', KEYS[1]) or 0) then
  redis.call('SET', KEYS[1], string.format('%.0f', now + pause), 'PX',
             math.floor(pause / 1000) + 1)
end
return 0
"""
# KEYS: paused until. Returns the microseconds of pause left.
_PAUSE_LEFT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return math.max(0, tonumber(redis.call('GET', KEYS[1]) or 0) - now)
"""


def _micro(seconds: float) -> int:
    return round(seconds * 1_000_000)


class RedisSlots:
    """This replica's bookings; while Redis does not answer, it paces alone at its share."""

    def __init__(
        self,
        redis: Redis,
        rate: float,
        *,
        account: str,
        retry_redis_after: float = RETRY_REDIS_AFTER_SECONDS,
    ) -> None:
        self._redis = redis
        self._interval = 1.0 / rate
        self._retry_redis_after = retry_redis_after
        self._clock = time.monotonic
        self._replica = uuid.uuid4().hex
        # Per eSIM Go account: bots of different accounts may share one Redis.
        tag = hashlib.sha256(account.encode()).hexdigest()[:16]
        prefix = f"esimbot:esimgo-budget:{{{tag}}}"  # one hash slot on a Redis Cluster
        self._next_key, self._paused_key = f"{prefix}:next", f"{prefix}:paused"
        self._replicas_key = f"{prefix}:replicas"
        self._book = redis.register_script(_BOOK)
        self._pause = redis.register_script(_PAUSE)
        self._pause_left = redis.register_script(_PAUSE_LEFT)
        self._held: float | None = None  # local time of a slot booked and not yet used
        self._replicas_seen = MIN_FALLBACK_REPLICAS
        self._down_until: float | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        rate: float,
        *,
        account: str,
        retry_redis_after: float = RETRY_REDIS_AFTER_SECONDS,
    ) -> RedisSlots:
        # Fail fast and without retries: a slow Redis must not hold up a sale.
        redis = Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(redis, rate, account=account, retry_redis_after=retry_redis_after)

    @property
    def fallback_share(self) -> int:
        # Sales must not wait for Redis: alone, each replica takes rate / replicas seen lately.
        return 1 if self._down_until is None else self._replicas_seen

    async def reserve(self, priority: Priority) -> float:
        if self._down_until is not None and self._clock() < self._down_until:
            return 0.0  # pacing alone at this replica's share
        try:
            delay = await self._reserve(priority)
        except (RedisError, OSError) as exc:
            _reraise_if_cancelled()
            self._held = None
            self._went_down(exc)
            return 0.0
        _reraise_if_cancelled()
        if self._down_until is not None:
            self._down_until = None
            log.info("Redis answers again: the eSIM Go request budget is shared again")
        return delay

    async def _reserve(self, priority: Priority) -> float:
        if self._held is not None:
            left = self._held - self._clock()
            if left > 0:
                return left
            self._held = None
            if -left < self._interval:
                # Our slot has come; a replica may have met a 429 while we waited for it.
                return int(await self._pause_left(keys=[self._paused_key])) / 1_000_000
        horizon = HORIZON_SECONDS[priority]
        booked, wait_us, replicas = await self._book(
            keys=[self._next_key, self._paused_key, self._replicas_key],
            args=[
                _micro(self._interval),
                -1 if horizon is None else _micro(horizon),
                self._replica,
                _micro(REPLICA_WINDOW_SECONDS),
            ],
        )
        self._replicas_seen = max(int(replicas), MIN_FALLBACK_REPLICAS)
        wait = int(wait_us) / 1_000_000
        if not booked:
            return min(wait, self._interval)  # ask again soon: a paid call may arrive here
        if wait > 0:
            self._held = self._clock() + wait
        return wait

    async def pause(self, seconds: float) -> None:
        if self._down_until is not None and self._clock() < self._down_until:
            return
        try:
            await self._pause(keys=[self._paused_key], args=[_micro(seconds)])
        except (RedisError, OSError) as exc:
            _reraise_if_cancelled()
            self._went_down(exc)

    def _went_down(self, exc: Exception) -> None:
        if self._down_until is None:
            log.warning(
                "Redis unreachable (%s): pacing eSIM Go calls alone at 1/%d of the rate "
                "until it answers",
                exc,
                self._replicas_seen,
            )
        self._down_until = self._clock() + self._retry_redis_after

    async def close(self) -> None:
        await self._redis.aclose()


def _reraise_if_cancelled() -> None:
    """redis-py can absorb a cancellation that lands mid-command; never let it be lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
