"""`esimbot run` as operators and acceptance tests start it: env names only, loopback fakes."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.conftest import REDIS_URL
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram
from tests.helpers import ADMIN_ID, command_env, make_user, message_update

WAIT_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _eventually(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(WAIT_SECONDS * 10):
        if condition():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def _start_bot(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path, port: int
) -> asyncio.subprocess.Process:
    env = command_env(
        fake_telegram,
        fake_esimgo,
        f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(port),
        ADMIN_IDS=str(ADMIN_ID),
        # With a Redis to hand (CI), the run also keeps FSM state there and leases the poller.
        REDIS_URL=REDIS_URL,
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_run_migrates_syncs_reconciles_answers_start_serves_healthz_and_stops_cleanly(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path
) -> None:
    # Telegram took Stars while the bot was down and its update never arrived: the payment
    # names no order this bot knows (a fresh database), so it must come back to its payer.
    fake_telegram.add_star_payment(5151, "ORDERGONE42", 120, charge_id="while-down-1")
    port = _free_port()
    process = await _start_bot(fake_telegram, fake_esimgo, tmp_path, port)
    try:
        user = make_user(4242, language_code="ru")
        update = message_update(user, "/start")
        fake_telegram.push_update(update.model_dump(mode="json", by_alias=True, exclude_none=True))

        def answered() -> bool:
            return any(
                call.params.get("chat_id") == user.id
                for call in fake_telegram.calls_to("sendMessage")
            )

        await _eventually(answered, "the answer to /start")
        # Before anyone presses Start the bot has introduced itself, in each language.
        assert fake_telegram.commands[("default", "ru")][0]["description"] == "Главное меню"
        assert any(c["command"] == "reminders" for c in fake_telegram.commands[("default", "")])
        assert set(fake_telegram.descriptions) == set(fake_telegram.short_descriptions)
        assert set(fake_telegram.descriptions) == {"", "en", "ru"}
        assert fake_telegram.short_descriptions["ru"].startswith("eSIM для поездок")
        for method in ("setMyCommands", "setMyDescription"):
            codes = [c.params.get("language_code") for c in fake_telegram.calls_to(method) if c.ok]
            assert sorted(str(code or "") for code in codes) == ["", "en", "ru"], method
        assert fake_telegram.calls_to("getUpdates"), "long polling is the default"
        assert fake_telegram.calls_to("deleteWebhook")
        assert fake_esimgo.calls("GET /catalogue"), "a first catalogue was fetched"
        answer = next(
            c for c in fake_telegram.calls_to("sendMessage") if c.params.get("chat_id") == user.id
        )
        assert any("а" <= ch <= "я" for ch in str(answer.params["text"]).lower()), "in Russian"

        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            assert response.status == 200
            body = await response.json()
        assert (body["status"], body["database"], body["mode"]) == ("ok", "ok", "polling")
        assert body["catalogue"]["bundles"] == len(fake_esimgo.catalogue)

        def refunded() -> bool:
            return any(c.ok for c in fake_telegram.calls_to("refundStarPayment"))

        await _eventually(refunded, "the refund of the payment taken while the bot was down")
        [refund] = fake_telegram.calls_to("refundStarPayment")
        assert (refund.params["user_id"], refund.params["telegram_payment_charge_id"]) == (
            5151,
            "while-down-1",
        )
        to_admins = [
            str(c.params.get("text"))
            for c in fake_telegram.calls_to("sendMessage")
            if c.params.get("chat_id") == ADMIN_ID
        ]
        assert any("while-down-1" in text for text in to_admins), to_admins
        if REDIS_URL:
            # With several replicas only the holder of this lease reconciles (bot/leader.py).
            async with Redis.from_url(REDIS_URL) as redis:
                assert await redis.exists("esimbot:leader:payment-reconcile") == 1
                assert await redis.exists("esimbot:leader:reminders") == 1
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                _, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
    # At start, then every PAYMENT_RECONCILE_SECONDS (5 minutes): one line per reconciliation.
    assert stderr.decode().count("payments reconciled:") == 1, stderr.decode()
    assert (tmp_path / "data" / "bot.db").exists()
