"""Dispatcher middlewares: one DB session per update, the user row and language, i18n."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n, I18nMiddleware
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models.user import User
from services.i18n import SUPPORTED_LANGUAGES, normalize_language

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# Keys handlers read from the middleware data.
SESSION_KEY = "session"
DB_USER_KEY = "db_user"
LANGUAGE_KEY = "language"


class DbSessionMiddleware(BaseMiddleware):
    """Opens one AsyncSession per update (expire_on_commit=False); services commit."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self._session_factory() as session:
            data[SESSION_KEY] = session
            return await handler(event, data)


def resolve_language(user: User | None, telegram_code: str | None, default: str) -> str:
    """The user's own choice, else their Telegram language if we speak it, else the default."""
    if user is not None and user.language in SUPPORTED_LANGUAGES:
        return user.language
    return normalize_language(telegram_code, default)


class UserMiddleware(BaseMiddleware):
    """Stores who is talking (id, username, Telegram language) and resolves their language."""

    def __init__(self, default_language: str) -> None:
        self._default = default_language

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: TelegramUser | None = data.get("event_from_user")
        session: AsyncSession | None = data.get(SESSION_KEY)
        user = None
        if sender is not None and session is not None and not sender.is_bot:
            user = await upsert_user(session, sender)
        data[DB_USER_KEY] = user
        data[LANGUAGE_KEY] = resolve_language(
            user, sender.language_code if sender else None, self._default
        )
        return await handler(event, data)


async def upsert_user(session: AsyncSession, sender: TelegramUser) -> User:
    """Insert or refresh the user row; writes only when something changed."""
    username = sender.username[:64] if sender.username else None
    first_name = sender.first_name[:128] if sender.first_name else None
    telegram_language = sender.language_code[:16] if sender.language_code else None
    user = await session.get(User, sender.id)
    if user is None:
        user = User(
            telegram_id=sender.id,
            username=username,
            first_name=first_name,
            telegram_language=telegram_language,
        )
        session.add(user)
        try:
            await session.commit()
        except IntegrityError:
            # Another update from the same user inserted it first; use theirs.
            await session.rollback()
            existing = await session.get(User, sender.id)
            if existing is None:
                raise
            user = existing
        return user
    if (user.username, user.first_name, user.telegram_language) != (
        username,
        first_name,
        telegram_language,
    ):
        user.username, user.first_name = username, first_name
        user.telegram_language = telegram_language
        await session.commit()
    return user


async def store_language(session: AsyncSession, user_id: int, language: str) -> None:
    """Remember the user's /language choice."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(telegram_id=user_id)
        session.add(user)
    user.language = language
    await session.commit()


class LanguageI18nMiddleware(I18nMiddleware):
    """aiogram's i18n context, in the language UserMiddleware resolved."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        # `gettext` looks the instance up on I18n's own context variable; a subclass such as
        # CatalogueI18n sets only its own (ContextInstanceMixin keeps one per class).
        token = I18n.set_current(self.i18n)
        try:
            return await super().__call__(handler, event, data)
        finally:
            I18n.reset_current(token)

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        language = data.get(LANGUAGE_KEY)
        if isinstance(language, str) and language in self.i18n.available_locales:
            return language
        return self.i18n.default_locale
