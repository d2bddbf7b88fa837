"""The operator's commands besides `run`: `esimbot migrate` and `esimbot sync-catalogue`."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path

from sqlalchemy import inspect

from db.engine import create_engine
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram
from tests.helpers import command_env

WAIT_SECONDS = 60


async def _esimbot(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT_SECONDS):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_migrate_creates_the_schema_in_a_new_data_folder(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}"
    env = command_env(fake_telegram, fake_esimgo, url)

    code, out, err = await _esimbot(env, tmp_path, "migrate")

    assert code == 0, err
    assert "up to date" in out
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    assert {"users", "orders", "esims", "catalogue_snapshots"} <= tables


async def test_sync_catalogue_prints_what_changed_since_the_last_snapshot(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path
) -> None:
    env = command_env(fake_telegram, fake_esimgo, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")

    code, first, err = await _esimbot(env, tmp_path, "sync-catalogue")
    assert code == 0, err
    assert f"catalogue: {len(fake_esimgo.catalogue)} bundles" in first
    assert "first snapshot stored" in first
    # The networks per country come with the catalogue (plan cards read them, never eSIM Go).
    assert f"networks: {len(fake_esimgo.networks)} countries" in first

    removed = fake_esimgo.catalogue.pop()
    repriced = fake_esimgo.catalogue[0]
    old_price = Decimal(str(repriced["price"]))
    repriced["price"] = float(old_price + Decimal("1.5"))
    added = dict(fake_esimgo.catalogue[1], name="esim_3GB_30D_TH_TEST")
    fake_esimgo.catalogue.append(added)

    code, second, err = await _esimbot(env, tmp_path, "sync-catalogue")
    assert code == 0, err
    assert "1 added, 1 removed, 1 price changes" in second
    assert "Added: esim_3GB_30D_TH_TEST" in second
    assert f"Removed: {removed['name']}" in second
    assert f"Price: {repriced['name']} {old_price}" in second
    assert "Traceback" not in err


async def test_sync_catalogue_with_esimgo_down_says_so_in_one_line(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path
) -> None:
    env = command_env(fake_telegram, fake_esimgo, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    fake_esimgo.api_key = "rotated-key"  # ours is now refused with 401

    code, _, err = await _esimbot(env, tmp_path, "sync-catalogue")

    assert code == 1
    assert "Traceback" not in err
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("esimbot sync-catalogue:")
    assert "ESIMGO_API_KEY" in last_line, "the operator is told what to check"
    assert "rotated-key" not in err and "test-key" not in err


async def test_run_with_a_revoked_bot_token_says_which_setting_to_fix(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path
) -> None:
    env = command_env(fake_telegram, fake_esimgo, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    env["BOT_TOKEN"] = "123456:revoked-token-of-the-old-bot"

    code, _, err = await _esimbot(env, tmp_path, "run")

    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("esimbot run: Telegram refused BOT_TOKEN")
    assert "revoked-token" not in err
