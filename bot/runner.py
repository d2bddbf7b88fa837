"""`esimbot run`: migrate, load the catalogue, serve HTTP, take updates, run the workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from functools import partial
from typing import Any

from aiogram import Bot
from redis.asyncio import Redis

from bot import tuning
from bot.app import (
    close_deps,
    create_bot,
    create_deps,
    create_fulfilment_worker,
    create_storage,
)
from bot.config import Settings
from bot.deps import AppDeps
from bot.dispatcher import create_dispatcher, set_bot_profile
from bot.leader import Job, RedisLease, run_as_leader
from bot.payments import create_payment_reconciler
from bot.server import create_web_app, delete_webhook, register_webhook, start_bot_server
from db.migrate import upgrade_async
from services.refund_reminders import RefundDueReminder

log = logging.getLogger(__name__)

# A replica that stops renewing (crashed, partitioned) hands its jobs over within this.
LEASE_SECONDS = 30.0
# How long start-up waits for a first catalogue when there is no snapshot yet.
FIRST_SYNC_TIMEOUT_SECONDS = 60
# The lease of the catalogue sync: one replica fetches it from eSIM Go, the others load what it
# stored (CatalogueService.run_follow_loop).
CATALOGUE_SYNC = "catalogue-sync"
# How often a replica starting without a snapshot looks for the one another replica fetches.
SNAPSHOT_WAIT_SECONDS = 1.0
# How long shutdown waits for the background workers to end once cancelled.
STOP_TIMEOUT_SECONDS = 10


async def _first_catalogue(settings: Settings, deps: AppDeps) -> None:
    if await deps.catalogue.load_snapshot():
        log.info("catalogue loaded from snapshot: %d bundles", len(deps.catalogue.catalogue))
        return
    try:
        async with asyncio.timeout(FIRST_SYNC_TIMEOUT_SECONDS):
            if settings.redis_url:
                await _first_catalogue_shared(settings, deps)
            else:
                diff = await deps.catalogue.sync()
                log.info("first catalogue sync: %s", diff.summary())
    except Exception as exc:
        log.warning("no catalogue snapshot and eSIM Go unreachable (%s); will retry", exc)


async def _first_catalogue_shared(settings: Settings, deps: AppDeps) -> None:
    """Replicas starting together fetch the catalogue once: the one holding the sync lease
    fetches it, the others wait for the snapshot it stores (or for the lease, if its holder
    died before storing one)."""
    async with Redis.from_url(settings.redis_url) as redis:
        lease = RedisLease(redis, CATALOGUE_SYNC, ttl_seconds=LEASE_SECONDS)
        while not await lease.acquire():
            if await deps.catalogue.load_snapshot():
                log.info("catalogue loaded from the snapshot another replica fetched")
                return
            await asyncio.sleep(SNAPSHOT_WAIT_SECONDS)
        try:
            diff = await deps.catalogue.sync()
            log.info("first catalogue sync: %s", diff.summary())
        finally:
            await lease.release()


def _spawn(tasks: list[asyncio.Task[None]], coro: Coroutine[Any, Any, None], name: str) -> None:
    tasks.append(asyncio.create_task(coro, name=name))


async def _on_one_replica(settings: Settings, name: str, job: Job) -> None:
    """Run `job`; with Redis, only in the replica that holds the lease called `name`."""
    if not settings.redis_url:
        await job()
        return
    redis = Redis.from_url(settings.redis_url)
    try:
        lease = RedisLease(redis, name, ttl_seconds=LEASE_SECONDS)
        await run_as_leader(lease, name, job)
    finally:
        await redis.aclose()


def _spawn_admin_jobs(tasks: list[asyncio.Task[None]], settings: Settings, deps: AppDeps) -> None:
    """The eSIM Go balance check, the daily report (when DAILY_REPORT_HOUR is set) and the
    resuming of broadcasts nobody is sending: each on one replica at a time."""
    admin = deps.admin
    check = partial(admin.supplier.run, deps.messenger, deps.alerts)
    _spawn(tasks, _on_one_replica(settings, "supplier-balance", check), "supplier-balance")
    if admin.daily_report is not None:
        report = partial(admin.daily_report.run, deps.messenger)
        _spawn(tasks, _on_one_replica(settings, "daily-report", report), "daily-report")
    _spawn(tasks, _on_one_replica(settings, "broadcasts", admin.sender.run), "broadcasts")


def _spawn_jobs(
    background: list[asyncio.Task[None]], settings: Settings, deps: AppDeps, bot: Bot
) -> None:
    """The background workers, each running until cancelled; a shop-wide job on one replica."""
    sync = deps.catalogue.run_refresh_loop
    _spawn(background, _on_one_replica(settings, CATALOGUE_SYNC, sync), "catalogue-refresh")
    if settings.redis_url:  # without Redis there is one replica, and it syncs
        _spawn(background, deps.catalogue.run_follow_loop(), "catalogue-follow")
    _spawn(background, create_fulfilment_worker(deps).run(), "fulfilment")
    poll = partial(deps.tracking.run_poll_loop, deps.messenger)
    _spawn(background, _on_one_replica(settings, "status-poll", poll), "status-poll")
    if not settings.sandbox:  # the sandbox's payments never reach Telegram's ledger
        reconcile = create_payment_reconciler(deps, bot).run
        _spawn(background, _on_one_replica(settings, "payment-reconcile", reconcile), "payments")
    _spawn(background, deps.alerts.run(deps.messenger), "admin-alerts")
    reminder = partial(RefundDueReminder(deps.session_factory, deps.alerts).run, deps.messenger)
    _spawn(background, _on_one_replica(settings, "refund-due", reminder), "refund-due")
    reminders = partial(deps.reminders.run_loop, deps.messenger)
    _spawn(background, _on_one_replica(settings, "reminders", reminders), "reminders")
    _spawn_admin_jobs(background, settings, deps)


async def run(settings: Settings) -> None:
    await upgrade_async(settings.database_url)
    bot = create_bot(settings)
    deps = await create_deps(settings, bot)
    dispatcher = create_dispatcher(deps, create_storage(settings))
    tuning.apply(bot, dispatcher)
    background: list[asyncio.Task[None]] = []
    web_runner = None
    try:
        me = await bot.get_me()
        log.info("bot @%s (id %s) starting", me.username, me.id)
        await _first_catalogue(settings, deps)
        await set_bot_profile(bot, deps.translator)
        tuning.settle_heap()

        _spawn_jobs(background, settings, deps, bot)

        web_runner = await start_bot_server(
            create_web_app(deps, dispatcher, bot), settings.http_host, settings.http_port
        )
        log.info("HTTP server on %s:%s", settings.http_host, settings.http_port)
        allowed = dispatcher.resolve_used_update_types()
        if settings.webhook_mode:
            await register_webhook(bot, settings, allowed)
            await _wait_for_stop_signal()
        else:
            await delete_webhook(bot)
            log.info("long polling for %s", ", ".join(allowed))
            await dispatcher.start_polling(bot, allowed_updates=allowed, close_bot_session=False)
    finally:
        await _stop(background)
        if web_runner is not None:
            await web_runner.cleanup()
        await bot.session.close()
        await close_deps(deps)
        log.info("stopped")


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the background tasks and wait for them, but not forever: on Python 3.11 a cancel
    that arrives as `asyncio.wait_for` finishes is lost, and the task would run on."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_SECONDS)
    for task in stuck:
        log.warning("background task %s did not stop", task.get_name())
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %s failed: %r", task.get_name(), exc)


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
