"""One replica at a time runs a background job, elected through a Redis lease.

The status poller spends the eSIM Go request budget of the whole account: with several replicas
only the lease holder polls. Without Redis there is one process and the job simply runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Job = Callable[[], Coroutine[Any, Any, None]]

# Compare-and-act on the holder's token, so a replica never extends or frees another's lease.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLease:
    """A named lease in Redis held by this process while it renews it in time."""

    def __init__(self, redis: Redis, name: str, ttl_seconds: float) -> None:
        self._redis = redis
        self.key = f"esimbot:leader:{name}"
        self.ttl_seconds = ttl_seconds
        self._token = secrets.token_hex(16)

    async def acquire(self) -> bool:
        ttl_ms = int(self.ttl_seconds * 1000)
        return bool(await self._redis.set(self.key, self._token, nx=True, px=ttl_ms))

    async def renew(self) -> bool:
        ttl_ms = int(self.ttl_seconds * 1000)
        result = await self._redis.eval(_RENEW, 1, self.key, self._token, ttl_ms)
        return bool(result)

    async def release(self) -> None:
        await self._redis.eval(_RELEASE, 1, self.key, self._token)


async def run_as_leader(lease: RedisLease, name: str, job: Job) -> None:
    """Run `job` whenever this replica holds `lease`; wait and retry while another does.

    The job is cancelled as soon as a renewal fails, so two replicas never run it together for
    longer than one renewal interval.
    """
    interval = lease.ttl_seconds / 3
    while True:
        try:
            acquired = await lease.acquire()
        except RedisError as exc:
            log.warning("%s: Redis unreachable, not running the job now: %s", name, exc)
            acquired = False
        _reraise_if_cancelled()
        if not acquired:
            await asyncio.sleep(interval)
            continue
        log.info("%s: this replica holds the lease and runs the job", name)
        if await _run_while_held(lease, name, job, interval):
            return


async def _run_while_held(lease: RedisLease, name: str, job: Job, interval: float) -> bool:
    """True when the job finished by itself; False when the lease was lost."""
    task = asyncio.create_task(job(), name=name)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                task.result()  # a failure of the job itself propagates to the caller
                return True
            try:
                still_held = await lease.renew()
            except RedisError as exc:
                log.warning("%s: lease renewal failed, stopping the job: %s", name, exc)
                still_held = False
            _reraise_if_cancelled()
            if not still_held:
                log.warning("%s: lease lost, another replica takes over", name)
                return False
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            _reraise_if_cancelled()
        with contextlib.suppress(RedisError):
            await lease.release()
        _reraise_if_cancelled()


def _reraise_if_cancelled() -> None:
    """redis-py can absorb a cancellation that lands mid-command; never let it be lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
