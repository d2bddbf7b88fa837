"""Engine and session factory; nothing here runs at import time. SQLite gets its own driver
(db/sqlite.py); PostgreSQL runs on asyncpg as SQLAlchemy ships it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from db.sqlite import InlineCloseSession, create_sqlite_engine


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the folder of a file-based SQLite database (`data/` by default)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


# Connections kept open on PostgreSQL unless DATABASE_POOL_SIZE says otherwise.
POOL_SIZE = 10


def create_engine(
    database_url: str, *, echo: bool = False, pool_size: int | None = None
) -> AsyncEngine:
    """An engine whose pool keeps `pool_size` connections (None: the driver's default) and
    opens half as many more in a burst."""
    ensure_sqlite_directory(database_url)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return create_sqlite_engine(url, echo=echo, pool_size=pool_size)
    size = pool_size or POOL_SIZE
    return create_async_engine(
        url, echo=echo, pool_pre_ping=True, pool_size=size, max_overflow=size // 2
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for one unit of work each; objects stay readable after the commit."""
    if engine.dialect.name == "sqlite":
        return async_sessionmaker(engine, class_=InlineCloseSession, expire_on_commit=False)
    return async_sessionmaker(engine, expire_on_commit=False)
