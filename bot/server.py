"""The bot's aiohttp server: /healthz, /metrics, eSIM Go callbacks and (webhook mode) Telegram
updates."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from datetime import datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import setup_application
from aiohttp import web
from sqlalchemy import text

from bot.config import Settings
from bot.deps import AppDeps
from bot.messenger import AiogramMessenger
from bot.webhook import WebhookHandler
from db.base import utcnow
from services.esimgo_events import SIGNATURE_HEADER, EsimGoEventWorker, Receipt

log = logging.getLogger(__name__)

TELEGRAM_WEBHOOK_PATH = "/telegram/webhook"
HEALTH_DB_TIMEOUT_SECONDS = 3.0

DEPS_KEY = web.AppKey("deps", AppDeps)
EVENT_WORKER_KEY = web.AppKey("esimgo_event_worker", EsimGoEventWorker)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def _database_state(deps: AppDeps) -> str:
    """ "ok" when `SELECT 1` works in time, else "timeout" or "unavailable". The body is public:
    an exception's text (host, user, driver details) goes to the log only."""
    try:
        async with asyncio.timeout(HEALTH_DB_TIMEOUT_SECONDS):
            async with deps.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except TimeoutError:
        log.warning("healthz: the database did not answer within %s s", HEALTH_DB_TIMEOUT_SECONDS)
        return "timeout"
    except Exception as exc:
        log.warning("healthz: the database is unavailable: %s: %s", type(exc).__name__, exc)
        return "unavailable"
    return "ok"


def _last_esimgo_success(deps: AppDeps) -> datetime | None:
    """The newest moment eSIM Go answered us: a catalogue sync or a status poll."""
    moments = [deps.catalogue.catalogue.fetched_at, deps.tracking.last_success_at]
    # The client may track every successful call itself; use it when it does.
    client_success = getattr(deps.esimgo, "last_success_at", None)
    if isinstance(client_success, datetime):
        moments.append(client_success)
    known = [m for m in moments if m is not None]
    return max(known) if known else None


async def healthz(request: web.Request) -> web.Response:
    """200 while the database answers; the body says how fresh the eSIM Go data is."""
    deps = request.app[DEPS_KEY]
    now = utcnow()
    database = await _database_state(deps)
    healthy = database == "ok"
    catalogue = deps.catalogue.catalogue
    fetched_at = catalogue.fetched_at
    body: dict[str, Any] = {
        "status": "ok" if healthy else "unavailable",
        "database": database,
        "catalogue": {
            "bundles": len(catalogue),
            "fetched_at": _iso(fetched_at),
            "age_seconds": int((now - fetched_at).total_seconds()) if fetched_at else None,
        },
        "esimgo_last_success_at": _iso(_last_esimgo_success(deps)),
        "esimgo_last_callback_at": _iso(deps.esimgo_events.last_received_at),
        "mode": "webhook" if deps.settings.webhook_mode else "polling",
    }
    return web.json_response(body, status=200 if healthy else 503)


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def _metrics_allowed(request: web.Request, token: str) -> bool:
    """With METRICS_TOKEN: the right Bearer token, from anywhere; without: loopback only."""
    if not token:
        return _is_loopback(request.remote)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format, as prometheus-client writes it."""
    deps = request.app[DEPS_KEY]
    token = deps.settings.metrics_token.get_secret_value()
    if not _metrics_allowed(request, token):
        if token:
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        return web.Response(status=403)
    body, content_type = deps.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def esimgo_callback(request: web.Request) -> web.Response:
    """Verify and store, answer at once; the worker applies the event afterwards."""
    deps = request.app[DEPS_KEY]
    body = await request.read()
    result = await deps.esimgo_events.receive(body, request.headers.get(SIGNATURE_HEADER))
    if result.receipt is Receipt.UNAUTHORIZED:
        return web.json_response({"error": "invalid signature"}, status=401)
    if result.receipt is Receipt.MALFORMED:
        return web.json_response({"error": "malformed", "detail": result.detail}, status=400)
    if result.receipt is Receipt.ACCEPTED and result.event_id is not None:
        request.app[EVENT_WORKER_KEY].enqueue(result.event_id)
    return web.json_response({"status": result.receipt.value})


def create_web_app(deps: AppDeps, dispatcher: Dispatcher, bot: Bot) -> web.Application:
    """Routes for every mode; the Telegram webhook route only when WEBHOOK_URL is set."""
    settings = deps.settings
    app = web.Application()
    app[DEPS_KEY] = deps
    worker = EsimGoEventWorker(deps.esimgo_events, AiogramMessenger(bot))
    app[EVENT_WORKER_KEY] = worker

    async def start_worker(_app: web.Application) -> None:
        await worker.start()

    async def stop_worker(_app: web.Application) -> None:
        await worker.stop()

    app.on_startup.append(start_worker)
    # Registered before aiogram's handler, whose shutdown closes the bot's HTTP session.
    app.on_shutdown.append(stop_worker)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post(settings.esimgo_callback_path, esimgo_callback)
    if settings.webhook_mode:
        WebhookHandler(
            dispatcher, bot, secret_token=settings.webhook_secret.get_secret_value()
        ).register(app, path=TELEGRAM_WEBHOOK_PATH)
        # Runs the dispatcher's startup/shutdown hooks as start_polling would.
        setup_application(app, dispatcher, bot=bot)
    return app


async def start_web_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving; `await runner.cleanup()` stops it. Port 0 picks a free one."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


async def start_bot_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving the bot's own app (create_web_app). In sandbox mode the eSIM Go stand-in
    posts its callbacks here from now on."""
    runner = await start_web_server(app, host, port)
    deps = app[DEPS_KEY]
    if deps.sandbox is not None:
        listening = runner.addresses[0][1]
        deps.sandbox.post_callbacks_to(
            f"http://{_loopback(host)}:{listening}{deps.settings.esimgo_callback_path}"
        )
    return runner


def _loopback(host: str) -> str:
    """How this process reaches a server bound to `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def webhook_endpoint(settings: Settings) -> str:
    return f"{settings.webhook_url}{TELEGRAM_WEBHOOK_PATH}"


async def register_webhook(bot: Bot, settings: Settings, allowed_updates: list[str]) -> None:
    """Point Telegram at our server; pending updates are kept (they may be payments)."""
    await bot.set_webhook(
        webhook_endpoint(settings),
        secret_token=settings.webhook_secret.get_secret_value(),
        allowed_updates=allowed_updates,
        drop_pending_updates=False,
    )
    log.info("webhook set: %s for %s", webhook_endpoint(settings), ", ".join(allowed_updates))


async def delete_webhook(bot: Bot) -> None:
    """Long polling cannot start while a webhook is set; pending updates are kept."""
    await bot.delete_webhook(drop_pending_updates=False)
