"""`kill -9` of the process that holds a paid order: a restarted `esimbot run` finishes it within a
minute, bought once and delivered once (real processes against the loopback fakes)."""

from __future__ import annotations

import asyncio
import signal
import sys
from decimal import Decimal
from pathlib import Path

from db.base import utcnow
from db.engine import create_engine, create_session_factory
from db.models import Order, OrderStatus
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram
from tests.helpers import command_env
from tests.test_purchase import GB
from tests.test_run_command import _free_port

BUYER = 7001
# The whole recovery, from the kill to the photo, as the issue asks.
RECOVERY_SECONDS = 60
START_SECONDS = 60


async def _paid_order(database_url: str) -> str:
    engine = create_engine(database_url)
    now = utcnow()
    try:
        async with create_session_factory(engine)() as session:
            session.add(
                Order(
                    public_id="CRASH00001",
                    telegram_user_id=BUYER,
                    chat_id=BUYER,
                    language="en",
                    kind="new",
                    bundle_name=GB,
                    country_code="GB",
                    country_name="United Kingdom",
                    cost=Decimal("1.5"),
                    cost_currency="USD",
                    price=150,
                    price_currency="XTR",
                    status=OrderStatus.PAID.value,
                    attempts=0,
                    telegram_payment_charge_id="crash-charge",
                    paid_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.commit()
    finally:
        await engine.dispose()
    return "CRASH00001"


async def _start(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, database_url: str, tmp_path: Path
) -> asyncio.subprocess.Process:
    env = command_env(
        fake_telegram,
        fake_esimgo,
        database_url,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(_free_port()),
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(START_SECONDS):
            await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
    assert process.returncode is not None
    return process.returncode


def _transactions(fake_esimgo: FakeEsimGo) -> int:
    return len(
        [
            r
            for r in fake_esimgo.calls("POST /orders")
            if (r.json or {}).get("type") == "transaction"
        ]
    )


async def _recover(
    fake_telegram: FakeTelegram,
    fake_esimgo: FakeEsimGo,
    database_url: str,
    tmp_path: Path,
    *,
    bought: bool,
) -> None:
    await _paid_order(database_url)
    fake_telegram.record_star_payment(BUYER, "crash-charge")
    # The first process's purchase hangs: eSIM Go either bought (and the answer is lost) or not.
    fake_esimgo.fail_next(
        "POST /orders:transaction", status=500, delay=600, create_then_fail=bought
    )
    first = await _start(fake_telegram, fake_esimgo, database_url, tmp_path)
    try:
        async with asyncio.timeout(START_SECONDS):
            while not _transactions(fake_esimgo):  # noqa: ASYNC110 - the fake has no hook
                await asyncio.sleep(0.1)
    finally:
        first.kill()  # SIGKILL: no clean-up, its lease stays in the database
        await first.wait()
    assert len(fake_esimgo.orders) == (1 if bought else 0)

    second = await _start(fake_telegram, fake_esimgo, database_url, tmp_path)
    try:
        async with asyncio.timeout(RECOVERY_SECONDS):
            while not fake_telegram.calls_to("sendPhoto"):  # noqa: ASYNC110 - polled, bounded
                await asyncio.sleep(0.1)
    finally:
        assert await _stop(second) == 0

    assert len(fake_esimgo.orders) == 1, "bought once"
    assert _transactions(fake_esimgo) == (1 if bought else 2)
    [photo] = fake_telegram.calls_to("sendPhoto")
    assert photo.ok and photo.params["chat_id"] == BUYER
    assert not fake_telegram.calls_to("refundStarPayment")


async def test_after_kill_9_during_a_purchase_that_went_through_a_restart_adopts_it(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, database_url: str, tmp_path: Path
) -> None:
    await _recover(fake_telegram, fake_esimgo, database_url, tmp_path, bought=True)


async def test_after_kill_9_during_a_purchase_that_never_happened_a_restart_buys_once(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, database_url: str, tmp_path: Path
) -> None:
    await _recover(fake_telegram, fake_esimgo, database_url, tmp_path, bought=False)
