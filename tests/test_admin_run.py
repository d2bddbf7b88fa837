"""`esimbot run` starts the operator's background jobs: the eSIM Go balance is checked at once
(a low balance alerts the admins, the gauge is set), and a broadcast that a stopped process
left half sent is carried on, each recipient still getting it once."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from db.engine import create_engine, create_session_factory
from db.migrate import upgrade_async
from services.admin.broadcast import Broadcasts
from tests.admin_helpers import add_users
from tests.conftest import REDIS_URL
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram
from tests.helpers import ADMIN_ID, command_env

WAIT_SECONDS = 60
USERS = range(20_000, 20_040)


async def _eventually(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(WAIT_SECONDS * 10):
        if condition():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def _half_sent_broadcast(url: str) -> None:
    """A broadcast being sent whose job died: recipients fixed, nobody holds it."""
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        factory = create_session_factory(engine)
        await add_users(factory, USERS)
        broadcasts = Broadcasts(factory, default_language="en")
        draft = await broadcasts.draft(ADMIN_ID, ADMIN_ID, "<b>Hello</b> again", None, "all")
        assert await broadcasts.start(draft.broadcast_id) == len(USERS)
    finally:
        await engine.dispose()


async def test_run_checks_the_balance_and_resumes_a_broadcast(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}"
    await _half_sent_broadcast(url)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = command_env(
        fake_telegram,
        fake_esimgo,
        url,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(port),
        ADMIN_IDS=str(ADMIN_ID),
        ESIMGO_BALANCE_WARN="5000",  # the fake account holds 1000 USD
        REDIS_URL=REDIS_URL,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:

        def to_admin() -> list[str]:
            calls = fake_telegram.calls_to("sendMessage")
            return [str(c.params["text"]) for c in calls if c.params["chat_id"] == ADMIN_ID]

        await _eventually(lambda: any("below 5000.00" in t for t in to_admin()), "the alert")
        await _eventually(lambda: any("finished" in t for t in to_admin()), "the broadcast")
        received = Counter(
            int(c.params["chat_id"])
            for c in fake_telegram.calls_to("sendMessage")
            if c.params["chat_id"] in USERS
        )
        assert received == Counter(USERS)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200  # loopback, no METRICS_TOKEN
            assert 'esimbot_esimgo_balance{currency="USD"} 1000.0' in await response.text()
        if REDIS_URL:
            async with Redis.from_url(REDIS_URL) as redis:
                for job in ("supplier-balance", "broadcasts"):
                    assert await redis.exists(f"esimbot:leader:{job}") == 1, job
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_SECONDS):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
