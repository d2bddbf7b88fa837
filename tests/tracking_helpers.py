"""Fixtures for tracking tests: the bot's real HTTP server on loopback, and seeded eSIMs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.server import EVENT_WORKER_KEY, create_web_app, start_bot_server
from db.base import utcnow
from db.models import Esim, EsimBundle, User
from services.esimgo_events import EsimGoEventWorker, sign
from tests.helpers import BotEnv

ICCID = "8944538532008160222"


def plan_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """A 30-day plan that started yesterday at 08:00 UTC, relative to the clock the bot reads
    (a fixed end date turns into "ends in 24 hours" once the calendar gets there)."""
    today = (now or utcnow()).replace(hour=8, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=1)
    return start, start + timedelta(days=30)


def api_time(moment: datetime) -> str:
    """eSIM Go's timestamp format: 2026-11-20T08:00:00Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def first_use(iccid: Any = ICCID, remaining: int = 4_990_000_000, **bundle: Any) -> dict[str, Any]:
    """An eSIM Go V3 FirstUse callback body for the 5 GB Thailand bundle (see plan_window)."""
    start, end = plan_window()
    return {
        "iccid": iccid,
        "alertType": "FirstUse",
        "bundle": {
            "id": "215009266",
            "reference": "ref-1-0",
            "name": "esim_5GB_30D_TH_V2",
            "description": "eSIM, 5GB, 30 Days, Thailand, V2",
            "initialQuantity": 5_000_000_000,
            "remainingQuantity": remaining,
            "startTime": api_time(start),
            "endTime": api_time(end),
            "unlimited": False,
            **bundle,
        },
    }


def utilisation(remaining: int) -> dict[str, Any]:
    """The same bundle's Utilisation callback body."""
    payload = first_use(remaining=remaining)
    payload["alertType"] = "Utilisation"
    return payload


async def seed_user(
    session_factory: async_sessionmaker[AsyncSession], user_id: int, language: str | None = "en"
) -> None:
    async with session_factory() as session:
        if await session.get(User, user_id) is None:
            session.add(User(telegram_id=user_id, language=language, telegram_language=language))
            await session.commit()


async def seed_esim(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    user_id: int,
    iccid: str = ICCID,
    language: str | None = "en",
    bundles: list[dict[str, Any]] | None = None,
    created_at: datetime | None = None,
) -> Esim:
    """A delivered eSIM owned by `user_id`, with optional bundle rows (EsimBundle fields)."""
    await seed_user(session_factory, user_id, language)
    async with session_factory() as session:
        esim = Esim(
            iccid=iccid,
            telegram_user_id=user_id,
            smdp_address="rsp.fake-esimgo.test",
            matching_id="MATCH-1",
            profile_status="Released",
            tracking=True,
            created_at=created_at or utcnow(),
        )
        session.add(esim)
        for fields in bundles or []:
            session.add(EsimBundle(iccid=iccid, **fields))
        await session.commit()
        return esim


@dataclass
class ServerEnv:
    """The bot's aiohttp server started on 127.0.0.1 with the real dispatcher behind it."""

    env: BotEnv
    app: web.Application
    runner: web.AppRunner
    base_url: str
    http: aiohttp.ClientSession

    @property
    def worker(self) -> EsimGoEventWorker:
        return self.app[EVENT_WORKER_KEY]

    @property
    def api_key(self) -> str:
        return self.env.deps.settings.esimgo_api_key.get_secret_value()

    async def post_callback(
        self,
        payload: Any,
        *,
        encoding: str = "hex",
        signature: str | None = "auto",
        path: str = "/esimgo/callback",
    ) -> tuple[int, Any]:
        """POST like eSIM Go: raw bytes (or JSON of `payload`), signed unless told otherwise."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if signature == "auto":
            headers["X-Signature-SHA256"] = sign(body, self.api_key, encoding)
        elif signature is not None:
            headers["X-Signature-SHA256"] = signature
        async with self.http.post(self.base_url + path, data=body, headers=headers) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text.startswith("{") else text)

    async def settle(self) -> None:
        """Wait until every accepted callback has been processed."""
        await self.worker.wait_idle()


async def start_server_env(env: BotEnv) -> ServerEnv:
    app = create_web_app(env.deps, env.dispatcher, env.bot)
    runner = await start_bot_server(app, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    http = aiohttp.ClientSession()
    return ServerEnv(env, app, runner, f"http://127.0.0.1:{port}", http)


async def stop_server_env(server: ServerEnv) -> None:
    await server.http.close()
    await server.runner.cleanup()


@pytest.fixture
async def server_env(bot_env: BotEnv) -> AsyncIterator[ServerEnv]:
    """bot_env plus its HTTP server (long-polling mode: /healthz and the eSIM Go callback)."""
    server = await start_server_env(bot_env)
    try:
        yield server
    finally:
        await stop_server_env(server)
