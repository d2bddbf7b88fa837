"""The SQLite driver: sqlite3 on the event loop's own thread, behind SQLAlchemy's aiosqlite
dialect (instead of aiosqlite's thread per connection).

Why: a query on a local WAL database takes microseconds, far less than the thread hops aiosqlite
spends on each step; under load each hop also waits its turn in the loop, and the threads fight
the loop for the GIL. bench/webhook.py and bench/purchase.py show it (SQLite is what they run on).
Writers take an asyncio lock for their transaction, so they queue in order instead of
busy-sleeping in SQLite. The commit, with its fsync (synchronous=FULL), runs on the loop too: it
is short, and the write lock is held until it ends anyway.

The classes below are the part of aiosqlite's API that SQLAlchemy's adapter uses (pyproject.toml
pins SQLAlchemy below the next minor version for that reason).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

# Another process (`esimbot sync-catalogue`) holds SQLite's write lock only briefly; this one's
# writers wait on the asyncio lock instead, as long as SQLite used to let them.
BUSY_TIMEOUT_SECONDS = 5.0
WRITE_WAIT_SECONDS = 30.0
# Connections cost no thread here; a session waiting for one is what hurts, and so does opening
# and closing overflow connections under load (pragmas, schema read): keep them all pooled.
# DATABASE_POOL_SIZE overrides it (overflow: half as many again).
POOL_SIZE = 40


def create_sqlite_engine(
    url: URL, *, echo: bool = False, pool_size: int | None = None
) -> AsyncEngine:
    """An engine on `url` (sqlite+aiosqlite) whose connections are the ones below."""
    connect_args = url.get_dialect()().create_connect_args(url)
    size = pool_size or POOL_SIZE
    pool_args: dict[str, Any] = (
        {"pool_size": size, "max_overflow": size // 2} if _file_based(url) else {}
    )
    return create_async_engine(
        url,
        echo=echo,
        async_creator=_connector(url, connect_args),
        pool_pre_ping=False,
        **pool_args,
    )


class InlineCloseSession(AsyncSession):
    """A session on the connections below. AsyncSession closes itself in a task of its own so
    that a cancel cannot cut a close that waits on the network in half; here nothing in a close
    waits (the rollback runs on this thread), and the task cost a trip round the loop for each
    of the dozen sessions a purchase opens (bench/purchase.py: 13 tasks a purchase fewer)."""

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        await self.close()


def _file_based(url: URL) -> bool:
    return url.database not in (None, "", ":memory:")


def _reads_only(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


class _SQLiteCursor:
    """The part of aiosqlite's Cursor that SQLAlchemy uses, run on the calling thread."""

    def __init__(self, owner: _SQLiteConnection, cursor: sqlite3.Cursor) -> None:
        self._owner = owner
        self._cursor = cursor

    async def __aenter__(self) -> _SQLiteCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> _SQLiteCursor:
        await self._owner.before(sql)
        try:
            self._cursor.execute(sql, parameters)
        finally:
            self._owner.after()
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> _SQLiteCursor:
        await self._owner.before(sql)
        try:
            self._cursor.executemany(sql, parameters)
        finally:
            self._owner.after()
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _SQLiteConnection:
    """The part of aiosqlite's Connection that SQLAlchemy uses, without its thread.

    sqlite3 opens a transaction at the first INSERT/UPDATE/DELETE (reads run outside one), so a
    connection takes the engine's write lock before its first non-SELECT statement and gives it
    back when no transaction is left open: after the commit, the rollback or the DDL statement.
    """

    def __init__(self, connection: sqlite3.Connection, writes: asyncio.Lock) -> None:
        # Named like aiosqlite's: SQLAlchemy's adapter checks it before commit and rollback.
        self._connection: sqlite3.Connection | None = connection
        self._writes = writes
        self._writing = False

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    async def before(self, sql: str) -> None:
        if self._writing or _reads_only(sql):
            return
        try:
            async with asyncio.timeout(WRITE_WAIT_SECONDS):
                await self._writes.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        self._writing = True

    def after(self) -> None:
        if self._writing and not (self._connection and self._connection.in_transaction):
            self._release()

    def _release(self) -> None:
        self._writing = False
        self._writes.release()

    def cursor(self) -> _SQLiteCursor:
        return _SQLiteCursor(self, self._db.cursor())

    async def commit(self) -> None:
        try:
            self._db.commit()
        finally:
            self.after()

    async def rollback(self) -> None:
        try:
            self._db.rollback()
        finally:
            self.after()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        connection, self._connection = self._connection, None
        try:
            if connection is not None:
                connection.close()
        finally:
            if self._writing:
                self._release()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._db.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._db.isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction


def _connector(url: URL, connect_args: tuple[Sequence[Any], Mapping[str, Any]]) -> Any:
    """The async_creator for SQLAlchemy's aiosqlite dialect: our connection, its pragmas set."""
    writes = asyncio.Lock()
    args, kwargs = connect_args
    # Used from the loop's thread only, but the garbage collector may close it from another.
    kwargs = {**kwargs, "check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS}

    async def connect() -> _SQLiteConnection:
        connection = sqlite3.connect(*args, **kwargs)
        try:
            # WAL lets readers run while a write commits; FKs are off by default in SQLite.
            if _file_based(url):
                connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            connection.close()
            raise
        return _SQLiteConnection(connection, writes)

    return connect
