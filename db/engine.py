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

from db.sqlite import create_sqlite_engine


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the folder of a file-based SQLite database (`data/` by default)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(database_url: str, *, echo: bool = False) -> AsyncEngine:
    ensure_sqlite_directory(database_url)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return create_sqlite_engine(url, echo=echo)
    return create_async_engine(url, echo=echo, pool_pre_ping=True)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for one unit of work each; objects stay readable after the commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
