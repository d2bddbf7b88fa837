"""Run alembic migrations from code (`esimbot migrate`, `esimbot run`, tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url

import migrations
from db.engine import create_engine, ensure_sqlite_directory

# PostgreSQL advisory lock id ("esimbot" in ASCII): one for every replica, used by nothing else.
MIGRATION_LOCK_ID = 0x65_73_69_6D_62_6F_74


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # ConfigParser treats % as interpolation; URLs may carry percent-encoded passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@asynccontextmanager
async def _migration_lock(database_url: str) -> AsyncIterator[None]:
    """On PostgreSQL, one migrating process at a time: replicas that start together would
    otherwise all see an empty schema and race to create it (all but one crash). The lock is
    held by its own connection, outside alembic's transaction, and dies with the process."""
    if make_url(database_url).get_backend_name() != "postgresql":
        yield
        return
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
            try:
                yield
            finally:
                await autocommit.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
    finally:
        await engine.dispose()


async def _locked(database_url: str, run: Callable[[Config], None]) -> None:
    ensure_sqlite_directory(database_url)
    async with _migration_lock(database_url):
        # Alembic's env runs its own event loop, so it runs off the caller's loop.
        await asyncio.to_thread(run, alembic_config(database_url))


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    await _locked(database_url, lambda config: command.upgrade(config, revision))


def upgrade(database_url: str, revision: str = "head") -> None:
    """For callers without an event loop (the CLI, tests in a thread)."""
    asyncio.run(upgrade_async(database_url, revision))


def downgrade(database_url: str, revision: str) -> None:
    asyncio.run(_locked(database_url, lambda config: command.downgrade(config, revision)))
