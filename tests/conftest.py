"""Shared fixtures: databases (SQLite always, PostgreSQL when TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import create_engine, create_session_factory
from db.migrate import upgrade_async

pytest_plugins = [
    "tests.fakes.telegram",
    "tests.fakes.esimgo",
    "tests.helpers",
    "tests.tracking_helpers",
    "tests.admin_helpers",
]

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The usual event loop, unless the test module names its own in LOOP_FACTORY."""
    module = getattr(item, "module", None)
    factory = getattr(module, "LOOP_FACTORY", None)
    if factory is not None:
        return {factory.__name__: factory}
    return {"default": asyncio.new_event_loop}


async def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


async def prepare_database(kind: str, tmp_path: Path) -> str:
    """A migrated, empty database of the given kind; returns its URL."""
    if kind == "postgres":
        if not POSTGRES_URL:
            pytest.skip("TEST_POSTGRES_URL not set")
        await reset_postgres(POSTGRES_URL)
        url = POSTGRES_URL
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'esimbot.db'}"
    await upgrade_async(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Storage tests take this: they run on SQLite and again on PostgreSQL."""
    return await prepare_database(request.param, tmp_path)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """For tests whose subject is not storage: SQLite only, to keep the suite quick."""
    return await prepare_database("sqlite", tmp_path)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_session_factory(sqlite_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(sqlite_engine)
