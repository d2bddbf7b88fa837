"""The people who talk to the bot: their Telegram profile, chosen language, blocked mark."""

from __future__ import annotations

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
    ) -> tuple[User, bool]:
        """The user with this profile, inserted or refreshed and no longer marked as blocked
        (they are writing to us); True when that changed the row."""
        user = await self.session.get(User, telegram_id)
        if user is None:
            user = User(
                telegram_id=telegram_id,
                username=username,
                first_name=first_name,
                telegram_language=telegram_language,
            )
            self.session.add(user)
            return user, True
        changed = (user.username, user.first_name, user.telegram_language) != (
            username,
            first_name,
            telegram_language,
        )
        if changed:
            user.username, user.first_name = username, first_name
            user.telegram_language = telegram_language
        if user.blocked_at is not None:
            user.blocked_at = None
            changed = True
        return user, changed

    async def set_language(self, telegram_id: int, language: str) -> None:
        """Remember the language chosen with /language (creating the row if need be)."""
        user = await self.session.get(User, telegram_id)
        if user is None:
            user = User(telegram_id=telegram_id)
            self.session.add(user)
        user.language = language
