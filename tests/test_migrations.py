"""The schema migrates up, down and up again, and the migrations match the models."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from db.base import Base
from db.engine import create_engine
from db.migrate import alembic_config, downgrade, upgrade
from tests.conftest import POSTGRES_URL, reset_postgres
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram
from tests.helpers import command_env

REPLICAS = 4
# Each replica loads everything, waits until all are ready, then runs `esimbot migrate`: they
# start together, as the replicas of a deployment do.
MIGRATE_TOGETHER = """
import os, pathlib, sys, time
import alembic.command, asyncpg, bot.cli, db.migrate, db.models
ready = pathlib.Path(sys.argv[1])
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < int(sys.argv[2]):
    time.sleep(0.01)
sys.exit(bot.cli.main(["migrate"]))
"""

EXPECTED_TABLES = {
    "users",
    "catalogue_snapshots",
    "orders",
    "esims",
    "esim_bundles",
    "notifications_sent",
    "callback_events",
    "star_ledger",
    "gifts",
    "network_snapshots",
    "admin_alerts",
    "esim_checks",
    "admin_actions",
    "support_tickets",
    "ticket_messages",
    "ticket_message_copies",
    "broadcasts",
    "broadcast_recipients",
    "order_events",
}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return names - {"alembic_version"}


async def _model_diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def _compare(sync_conn: Connection) -> list[object]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return list(compare_metadata(context, Base.metadata))

            return await conn.run_sync(_compare)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("TEST_POSTGRES_URL not set")
        await reset_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'esimbot.db'}"


async def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database: str) -> None:
    await asyncio.to_thread(upgrade, empty_database)
    assert await _tables(empty_database) == EXPECTED_TABLES
    await asyncio.to_thread(downgrade, empty_database, "base")
    assert await _tables(empty_database) == set()
    await asyncio.to_thread(upgrade, empty_database)
    assert await _tables(empty_database) == EXPECTED_TABLES


async def test_each_revision_steps_down_and_up_again(empty_database: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(empty_database))
    revisions = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert revisions[0] == "0001"
    for revision in revisions:
        await asyncio.to_thread(upgrade, empty_database, revision)
        await asyncio.to_thread(downgrade, empty_database, "-1")
        await asyncio.to_thread(upgrade, empty_database, revision)


async def test_migrations_produce_exactly_the_models(empty_database: str) -> None:
    await asyncio.to_thread(upgrade, empty_database)
    assert await _model_diff(empty_database) == []


async def test_replicas_migrating_at_once_on_postgres_all_succeed(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, tmp_path: Path
) -> None:
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL not set")
    await reset_postgres(POSTGRES_URL)
    env = command_env(fake_telegram, fake_esimgo, POSTGRES_URL)
    ready = tmp_path / "ready"
    ready.mkdir()

    async def migrate() -> tuple[int | None, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE_TOGETHER,
            str(ready),
            str(REPLICAS),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(90):
            output, _ = await process.communicate()
        return process.returncode, output.decode()

    results = await asyncio.gather(*(migrate() for _ in range(REPLICAS)))

    assert [code for code, _ in results] == [0] * REPLICAS, [out for _, out in results]
    assert await _tables(POSTGRES_URL) == EXPECTED_TABLES
