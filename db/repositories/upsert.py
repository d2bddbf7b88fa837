"""INSERT … ON CONFLICT for the database a session runs on: both we run on (SQLite, PostgreSQL)
have one, each behind its own dialect's insert()."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import Base


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def insert_for(dialect: str, model: type[Base]) -> Any:
    """The dialect's INSERT into `model`'s table, which has on_conflict_do_update()."""
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"no upsert for {dialect}")
