"""Secrets stay where they belong: the eSIM Go key never follows a redirect, and the bot token
never shows in logs, command output, an order's failure reason or an admin's message."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db.models import OrderStatus
from services.esimgo.client import EsimGoClient
from services.esimgo.errors import EsimGoError
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.helpers import ADMIN_ID, BotEnv, command_env, make_user
from tests.test_purchase import get_invoice, load_order, open_confirmation, pay, worker

WAIT_SECONDS = 60
# A Bot API base aiohttp cannot parse: its error repeats the whole URL, token included.
UNPARSABLE_API_BASE = "http://[::1"


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeEsimGo]:
    """A second server on another port: where a hostile redirect would send the key."""
    fake = FakeEsimGo(api_key="never-sent-here")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


async def test_the_esimgo_client_never_follows_a_redirect(
    fake_esimgo: FakeEsimGo, elsewhere: FakeEsimGo
) -> None:
    for route, path, status in [
        ("GET /organisation", "/organisation", 302),
        ("POST /orders", "/orders", 307),
    ]:
        away = {"Location": elsewhere.base_url + path}
        fake_esimgo.fail_next(route, status=status, headers=away)
    async with EsimGoClient(fake_esimgo.base_url, fake_esimgo.api_key) as client:
        with pytest.raises(EsimGoError):
            await client.get_organisation()
        with pytest.raises(EsimGoError):
            await client.create_order("esim_1GB_7D_GB_V2")

    assert elsewhere.requests == [], "the API key travelled to another host"
    assert len(fake_esimgo.calls("GET /organisation")) == 1, "a redirect is not retried either"


async def _esimbot(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str]:
    """Run the command; returns its exit code and everything it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(WAIT_SECONDS):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_failing_run_never_prints_the_bot_token(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path, log_format: str
) -> None:
    env = command_env(
        fake_telegram,
        fake_esimgo,
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        # Debug logging adds the traceback of the fatal error, exception texts and all.
        LOG_LEVEL="DEBUG",
        LOG_FORMAT=log_format,
    )
    env["TELEGRAM_API_BASE"] = UNPARSABLE_API_BASE

    code, output = await _esimbot(env, tmp_path, "run")

    assert code == 1
    assert "InvalidUrlClientError" in output, output
    assert "Traceback" in output, "the debug traceback was logged"
    assert DEFAULT_TOKEN not in output
    assert DEFAULT_TOKEN.replace(":", "%3A") not in output


async def test_check_reports_a_telegram_failure_without_the_bot_token(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path
) -> None:
    env = command_env(fake_telegram, fake_esimgo, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    env["TELEGRAM_API_BASE"] = UNPARSABLE_API_BASE

    code, output = await _esimbot(env, tmp_path, "check")

    assert code == 1
    telegram_line = next(line for line in output.splitlines() if line.startswith("Telegram"))
    assert "FAILED" in telegram_line and "InvalidUrlClientError" in telegram_line
    assert DEFAULT_TOKEN not in output


async def test_a_delivery_failure_keeps_the_token_out_of_the_order_and_admin_messages(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice = make_user(1001)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    await pay(env, alice, invoice)
    # A proxy in front of the Bot API bounces the photo upload until aiohttp gives up; its
    # error names the URL, which holds the token.
    env.fake_telegram.redirect_loop("sendPhoto", times=20)

    await worker(env).run_once()

    order = await load_order(env, str(invoice.params["payload"]))
    assert order.status == OrderStatus.DELIVERED.value and order.delivered_at is None
    assert "TooManyRedirects" in (order.failure_reason or "")
    assert DEFAULT_TOKEN not in (order.failure_reason or "")
    admin_texts = [
        json.dumps(call.params, ensure_ascii=False)
        for call in env.fake_telegram.calls_to("sendMessage")
        if call.params.get("chat_id") == ADMIN_ID
    ]
    assert all(DEFAULT_TOKEN not in text for text in admin_texts)
