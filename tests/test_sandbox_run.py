"""The sandbox as `make demo` starts it: a real `esimbot` process given only a bot token and
ESIMGO_API_KEY=sandbox (TELEGRAM_API_BASE points it at the fake Bot API, as no test reaches
Telegram). No eSIM Go fake runs here: the process serves its own stand-in."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import Update, User

from handlers.callbacks import BundleCallback
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram, StoredMessage
from tests.helpers import ADMIN_ID, ROOT, callback_update, command_env, make_user, message_update

WAIT_SECONDS = 60
BANNER = "🧪 Sandbox: a test shop. No real money moves, and no eSIM from here works."


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_env(fake_telegram: FakeTelegram, **extra: str) -> dict[str, str]:
    """What `make demo` gives `esimbot`: the token (from .env), the sandbox key and nothing of
    eSIM Go; no DATABASE_URL, so the sandbox's own data/demo.db."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOT_", "ESIMGO_", "WEBHOOK_", "DATABASE_", "REDIS_"))
    }
    env.update(
        BOT_TOKEN=DEFAULT_TOKEN,
        ESIMGO_API_KEY="sandbox",
        TELEGRAM_API_BASE=fake_telegram.base_url,
        PYTHONPATH=str(ROOT),
        # The test taps faster than fingers: no per-user throttle (where the bot has one).
        THROTTLE_BURST="1000000",
        **extra,
    )
    return env


async def _esimbot(env: dict[str, str], cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(WAIT_SECONDS * 10):
        if condition():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


class Chat:
    """A user talking to the bot process through the fake Bot API's getUpdates."""

    def __init__(self, fake: FakeTelegram, user: User) -> None:
        self.fake, self.user = fake, user

    def _push(self, update: Update) -> None:
        self.fake.push_update(update.model_dump(mode="json", by_alias=True, exclude_none=True))

    def screen(self) -> StoredMessage:
        return self.fake.last_bot_message(self.user.id)

    def said(self, words: str) -> bool:
        return any(
            words in (m.text or m.caption or "")
            for m in self.fake.chat(self.user.id)
            if m.from_bot
        )

    async def send(self, text: str, then_see: str) -> None:
        message_id = self.fake.record_user_message(self.user.id, text)
        self._push(message_update(self.user, text, message_id=message_id))
        await _eventually(lambda: self.said(then_see), f"{then_see!r} after {text!r}")

    async def press(self, data: str | CallbackData, then_see: str) -> None:
        self._push(callback_update(self.user, data, self.screen().message_id))
        await _eventually(lambda: self.said(then_see), f"{then_see!r} after pressing {data!r}")

    async def tap(self, button: str, then_see: str) -> None:
        await self.press(str(self.screen().button(button)["callback_data"]), then_see)


async def test_esimbot_run_in_sandbox_mode_sells_an_esim_with_only_a_bot_token(
    fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    # A real Stars payment of the real shop this token may belong to: the sandbox leaves it be.
    fake_telegram.add_star_payment(5151, "REALSHOP01", 120, charge_id="real-money-1")
    port = _free_port()
    env = demo_env(fake_telegram, ADMIN_IDS=str(ADMIN_ID), HTTP_PORT=str(port))
    process = await _esimbot(env, tmp_path, "run")
    try:
        admin = Chat(fake_telegram, make_user(ADMIN_ID))
        await admin.send("/start", then_see=BANNER)
        await admin.press(BundleCallback(action="show", bundle="esim_1GB_7D_GB_V2"), "7 days")
        await admin.tap("🛒", then_see="Confirm your order")
        await admin.tap("💳", then_see="This is not a real invoice")
        await admin.tap("Simulate payment", then_see="Payment received")
        await _eventually(lambda: bool(fake_telegram.calls_to("sendPhoto")), "the QR photo")
        await admin.send("/sandbox use 80", then_see="Utilisation: accepted")
        await _eventually(lambda: admin.said("You have used 80 %"), "the 80 % notification")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_SECONDS):
            _, stderr = await process.communicate()
    log = stderr.decode()
    assert process.returncode == 0, log
    assert "Traceback" not in log
    assert "SANDBOX MODE" in log
    assert not fake_telegram.calls_to("sendInvoice")
    assert not fake_telegram.calls_to("refundStarPayment"), "real Stars are not the sandbox's"
    assert not fake_telegram.calls_to("getStarTransactions")
    assert (tmp_path / "data" / "demo.db").exists()
    assert not (tmp_path / "data" / "esimbot.db").exists()


async def test_esimbot_check_says_which_mode_runs(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path
) -> None:
    migrate = await _esimbot(demo_env(fake_telegram), tmp_path, "migrate")
    await migrate.communicate()
    process = await _esimbot(demo_env(fake_telegram), tmp_path, "check")
    async with asyncio.timeout(WAIT_SECONDS):
        stdout, stderr = await process.communicate()
    report = stdout.decode()

    assert process.returncode == 0, report + stderr.decode()
    assert "mode        SANDBOX (ESIMGO_API_KEY=sandbox): built-in eSIM Go stand-in" in report
    assert "eSIM Go     ok: eSIM Go sandbox (esimbot stand-in): balance 1000" in report
    assert "all checks passed" in report

    refused = await _esimbot(
        demo_env(fake_telegram, ESIMGO_BASE_URL="https://api.esim-go.com/v2.5"), tmp_path, "check"
    )
    _, error = await refused.communicate()
    assert refused.returncode == 2
    assert "ESIMGO_BASE_URL cannot be used with ESIMGO_API_KEY=sandbox" in error.decode()

    live_env = command_env(fake_telegram, fake_esimgo, f"sqlite+aiosqlite:///{tmp_path / 'l.db'}")
    live = await _esimbot(live_env, tmp_path, "check")
    stdout, _ = await live.communicate()
    assert f"mode        LIVE: eSIM Go at {fake_esimgo.base_url}, real payments" in stdout.decode()
