"""The people who talk to the bot: their Telegram profile, chosen language, blocked mark."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models.user import User
from db.repositories.upsert import dialect_of, insert_for

# (username, first name, Telegram language), as the columns hold them.
Profile = tuple[str | None, str | None, str | None]


# Built once: on SQLite, building a select() is a good part of what running it costs.
_STORED = select(
    User.telegram_id,
    User.username,
    User.first_name,
    User.telegram_language,
    User.language,
    User.blocked_at,
).where(User.telegram_id.in_(bindparam("ids", expanding=True)))


class StoredUser(NamedTuple):
    profile: Profile
    language: str | None
    blocked: bool


class UserRepository:
    """Reads and changes `users` rows; the caller commits. Writes are upserts, so a row written
    at the same moment by another update (or replica) never fails them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def stored_many(self, telegram_ids: Iterable[int]) -> dict[int, StoredUser]:
        """The stored profile, chosen language and blocked mark of those who have a row."""
        connection = await self.session.connection()  # plain rows: the ORM would add nothing
        rows = await connection.execute(_STORED, {"ids": list(telegram_ids)})
        return {
            row.telegram_id: StoredUser(
                (row.username, row.first_name, row.telegram_language),
                row.language,
                row.blocked_at is not None,
            )
            for row in rows
        }

    async def save_profiles(self, profiles: Mapping[int, Profile]) -> None:
        """Insert or refresh these users in one statement, no longer marked as blocked (they
        are writing to us); a language they chose is kept."""
        if not profiles:
            return
        now = utcnow()
        rows = [
            {
                "telegram_id": telegram_id,
                "username": username,
                "first_name": first_name,
                "telegram_language": telegram_language,
                "created_at": now,
                "updated_at": now,
            }
            for telegram_id, (username, first_name, telegram_language) in profiles.items()
        ]
        # Core, not the ORM: its bulk-insert bookkeeping adds nothing here but CPU.
        connection = await self.session.connection()
        await connection.execute(_save_profiles(dialect_of(self.session)), rows)

    async def set_language(self, telegram_id: int, language: str) -> None:
        """Remember the language chosen with /language (creating the row if need be)."""
        now = utcnow()
        insert = insert_for(dialect_of(self.session), User).values(
            telegram_id=telegram_id, language=language, created_at=now, updated_at=now
        )
        await self.session.execute(
            insert.on_conflict_do_update(
                index_elements=[User.telegram_id],
                set_={"language": insert.excluded.language, "updated_at": now},
            )
        )

    async def mark_blocked(self, telegram_id: int, now: datetime) -> None:
        """Telegram refused to deliver to this user: they blocked the bot or left."""
        await self.session.execute(
            update(User)
            .where(User.telegram_id == telegram_id, User.blocked_at.is_(None))
            .values(blocked_at=now)
        )


@cache
def _save_profiles(dialect: str) -> Any:
    """The profile upsert, built once per dialect and run with a list of rows: one with the rows
    inlined was compiled anew for every burst."""
    insert = insert_for(dialect, User)
    return insert.on_conflict_do_update(
        index_elements=[User.telegram_id],
        set_={
            "username": insert.excluded.username,
            "first_name": insert.excluded.first_name,
            "telegram_language": insert.excluded.telegram_language,
            "blocked_at": None,
            "updated_at": insert.excluded.updated_at,
        },
    )
