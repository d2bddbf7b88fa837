"""The people who talk to the bot: their Telegram profile, chosen language, blocked mark."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models.user import User


class UserRepository:
    """Reads and changes `users` rows; the caller commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, telegram_id: int) -> User | None:
        return await self.session.get(User, telegram_id)

    async def save_profile(
        self,
        telegram_id: int,
        *,
        username: str | None,
        first_name: str | None,
        telegram_language: str | None,
    ) -> tuple[str | None, bool]:
        """Store this profile, no longer marked as blocked (they are writing to us): the user's
        chosen language, and True when that wrote the row. Core statements: the ORM's unit of
        work cost more than the rest of a /start."""
        found = (
            await self.session.execute(
                select(User.username, User.first_name, User.telegram_language, User.blocked_at)
                .add_columns(User.language)
                .where(User.telegram_id == telegram_id)
            )
        ).one_or_none()
        profile = {
            "username": username,
            "first_name": first_name,
            "telegram_language": telegram_language,
        }
        if found is None:
            await self.session.execute(insert(User).values(telegram_id=telegram_id, **profile))
            return None, True
        stored = (found.username, found.first_name, found.telegram_language)
        if stored == (username, first_name, telegram_language) and found.blocked_at is None:
            return found.language, False
        await self.session.execute(
            update(User).where(User.telegram_id == telegram_id).values(**profile, blocked_at=None)
        )
        return found.language, True

    async def set_language(self, telegram_id: int, language: str) -> None:
        """Remember the language chosen with /language (creating the row if need be)."""
        user = await self.session.get(User, telegram_id)
        if user is None:
            user = User(telegram_id=telegram_id)
            self.session.add(user)
        user.language = language
