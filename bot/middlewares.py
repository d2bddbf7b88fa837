"""aiogram middlewares: who is talking and in which language, the update's DB session, i18n;
and two for the Bot's own requests."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.base import BaseSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18nMiddleware
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories.users import Profile, UserRepository
from services.i18n import SUPPORTED_LANGUAGES, normalize_language
from services.profiles import UserRows

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
log = logging.getLogger(__name__)

# Keys handlers read from the middleware data.
SESSION_KEY = "session"
LANGUAGE_KEY = "language"

# Long enough that a user tapping through menus costs one database read, short enough that a
# language chosen on another replica (or a send failure seen there) shows soon.
KNOWN_USER_TTL_SECONDS = 30.0
KNOWN_USERS_MAX = 50_000


def profile_of(sender: TelegramUser) -> Profile:
    """(username, first name, Telegram language) cut to the column sizes."""
    return (
        sender.username[:64] if sender.username else None,
        sender.first_name[:128] if sender.first_name else None,
        sender.language_code[:16] if sender.language_code else None,
    )


@dataclass(frozen=True, slots=True)
class KnownUser:
    """A user row as last stored: this profile, this chosen language, not marked blocked."""

    profile: Profile
    language: str | None


class KnownUsers:
    """Users whose row is known to be up to date, so most updates need no database at all."""

    def __init__(
        self,
        ttl_seconds: float = KNOWN_USER_TTL_SECONDS,
        max_size: int = KNOWN_USERS_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_size = max_size
        self._clock = clock
        self._entries: dict[int, tuple[float, KnownUser]] = {}
        # Bumped by forget(): a row read before then may be stale and is not kept.
        self.generation = 0

    def get(self, user_id: int) -> KnownUser | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        expires, user = entry
        if expires <= self._clock():
            del self._entries[user_id]
            return None
        return user

    def put(self, user_id: int, user: KnownUser, read_in_generation: int) -> None:
        if read_in_generation != self.generation:
            return
        self._entries.pop(user_id, None)
        if len(self._entries) >= self._max_size:
            # Dicts keep insertion order: the first entry is the one stored longest ago.
            del self._entries[next(iter(self._entries))]
        self._entries[user_id] = (self._clock() + self._ttl, user)

    def forget(self, user_id: int) -> None:
        self.generation += 1
        self._entries.pop(user_id, None)


# The cache of the update being handled, for store_language (called from a handler).
_known_users: ContextVar[KnownUsers | None] = ContextVar("esimbot_known_users", default=None)


def resolve_language(chosen: str | None, telegram_code: str | None, default: str) -> str:
    """The user's own choice, else their Telegram language if we speak it, else the default."""
    if chosen in SUPPORTED_LANGUAGES:
        return chosen
    return normalize_language(telegram_code, default)


class ForgetUnreachableUsers(BaseRequestMiddleware):
    """A failed send may have marked its recipient blocked: their cached row is stale now."""

    def __init__(self, users: KnownUsers) -> None:
        self._users = users

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except (TelegramForbiddenError, TelegramBadRequest):
            # Forbidden: blocked; a bad request may mean the chat is gone (deactivated user).
            recipient = getattr(method, "chat_id", None) or getattr(method, "user_id", None)
            if isinstance(recipient, int):
                self._users.forget(recipient)
            raise


class UserMiddleware(BaseMiddleware):
    """Stores who is talking (id, username, Telegram language), unmarks them as blocked and
    resolves their language; the database is asked only when the cache cannot answer, and a
    row to write is written while the handler answers (the update ends once it is stored)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        default_language: str,
        on_return: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._default = default_language
        # Told when someone marked blocked writes again (what never reached them can go now).
        self._on_return = on_return
        self.users = KnownUsers()
        self._rows = UserRows(session_factory)
        self._watched: weakref.WeakSet[BaseSession] = weakref.WeakSet()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: TelegramUser | None = data.get("event_from_user")
        chosen = None
        stored: asyncio.Future[None] | None = None
        if sender is not None and not sender.is_bot:
            self._watch(data.get("bot"))
            profile = profile_of(sender)
            known = self.users.get(sender.id)
            if known is None or known.profile != profile:
                known, stored = await self._refresh(sender.id, profile)
            chosen = known.language
        data[LANGUAGE_KEY] = resolve_language(
            chosen, sender.language_code if sender else None, self._default
        )
        token = _known_users.set(self.users)
        try:
            return await handler(event, data)
        finally:
            _known_users.reset(token)
            if stored is not None and sender is not None:
                await self._wait_stored(sender.id, stored)

    def _watch(self, bot: object) -> None:
        # Notifications go through the dispatcher's Bot; a user is cached only after an update
        # came through it, so by then a failed send to them reaches ForgetUnreachableUsers.
        if isinstance(bot, Bot) and bot.session not in self._watched:
            bot.session.middleware(ForgetUnreachableUsers(self.users))
            self._watched.add(bot.session)

    async def _refresh(
        self, user_id: int, profile: Profile
    ) -> tuple[KnownUser, asyncio.Future[None] | None]:
        """The user as stored, and the pending write when the row must change."""
        generation = self.users.generation
        found = await self._rows.stored(user_id)
        stored = None
        if found is None or found.profile != profile or found.blocked:
            stored = self._rows.save(user_id, profile)
        if found is not None and found.blocked and self._on_return is not None:
            try:
                await self._on_return(user_id)
            except Exception:
                log.exception("user %s is back, but what waited for them was not resent", user_id)
        known = KnownUser(profile, found.language if found is not None else None)
        self.users.put(user_id, known, generation)
        return known, stored

    async def _wait_stored(self, user_id: int, stored: asyncio.Future[None]) -> None:
        try:
            await stored
        except Exception as exc:
            # Logged by UserRows; the next update from this user tries again.
            log.debug("profile of %s not stored: %s", user_id, exc)
            self.users.forget(user_id)


async def store_language(session: AsyncSession, user_id: int, language: str) -> None:
    """Remember the user's /language choice."""
    await UserRepository(session).set_language(user_id, language)
    await session.commit()
    users = _known_users.get()
    if users is not None:
        users.forget(user_id)


class DbSessionMiddleware(BaseMiddleware):
    """The update's AsyncSession (expire_on_commit=False; services commit), opened only for a
    handler that takes `session`: most updates never touch the database."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        target = data.get("handler")
        if (
            isinstance(target, HandlerObject)
            and not target.varkw
            and SESSION_KEY not in target.params
        ):
            return await handler(event, data)
        async with self._session_factory() as session:
            data[SESSION_KEY] = session
            return await handler(event, data)


class LanguageI18nMiddleware(I18nMiddleware):
    """aiogram's i18n context, in the language UserMiddleware resolved."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        language = data.get(LANGUAGE_KEY)
        if isinstance(language, str) and language in self.i18n.available_locales:
            return language
        return self.i18n.default_locale


class KeepResponseModels(BaseRequestMiddleware):
    """Holds a strong reference to each `Response[T]` model aiogram parses answers with.

    pydantic caches parametrised generic models only weakly, so each garbage collection threw
    them away and the next request rebuilt one: ~100 ms of CPU, hundreds of times under load.
    """

    def __init__(self) -> None:
        self._models: dict[Any, type[Response[Any]]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._models:
            self._models[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)
