"""aiogram middlewares: who is talking and in which language, i18n, the answer to every
button; and one for the Bot's own requests. Handlers get no DB session: services open theirs."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.base import BaseSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import CallbackQuery, TelegramObject, Update
from aiogram.types import User as TelegramUser
from aiogram.types.update import UpdateTypeLookupError
from aiogram.utils.callback_answer import CallbackAnswer, CallbackAnswerMiddleware
from aiogram.utils.i18n import I18nMiddleware

from db.repositories.users import Profile
from services.metrics import Metrics
from services.profiles import UserProfiles

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# Keys handlers read from the middleware data.
LANGUAGE_KEY = "language"


def profile_of(sender: TelegramUser) -> Profile:
    """(username, first name, Telegram language) cut to the column sizes."""
    return (
        sender.username[:64] if sender.username else None,
        sender.first_name[:128] if sender.first_name else None,
        sender.language_code[:16] if sender.language_code else None,
    )


class ForgetUnreachableUsers(BaseRequestMiddleware):
    """A failed send may have marked its recipient blocked: their cached row is stale now."""

    def __init__(self, profiles: UserProfiles) -> None:
        self._profiles = profiles

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
                self._profiles.forget(recipient)
            raise


class CountUpdates(BaseMiddleware):
    """esimbot_updates_total: every update the dispatcher gets, by its type."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update):
            self._metrics.update(_update_type(event))
        return await handler(event, data)


def _update_type(update: Update) -> str:
    try:
        return update.event_type
    except UpdateTypeLookupError:  # a kind of update newer than this aiogram
        return "unknown"


class UserMiddleware(BaseMiddleware):
    """Stores who is talking, unmarks them as blocked and resolves their language; the row is
    written while the handler answers, and the update ends once it is stored."""

    def __init__(self, profiles: UserProfiles) -> None:
        self._profiles = profiles
        self._watched: weakref.WeakSet[BaseSession] = weakref.WeakSet()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: TelegramUser | None = data.get("event_from_user")
        if sender is None or sender.is_bot:
            telegram_language = sender.language_code if sender is not None else None
            data[LANGUAGE_KEY] = self._profiles.language(None, telegram_language)
            return await handler(event, data)
        self._watch(data.get("bot"))
        visit = await self._profiles.visit(sender.id, profile_of(sender), sender.language_code)
        data[LANGUAGE_KEY] = visit.language
        try:
            return await handler(event, data)
        finally:
            await self._profiles.settle(sender.id, visit)

    def _watch(self, bot: object) -> None:
        # Notifications go through the dispatcher's Bot; a user is cached only after an update
        # came through it, so by then a failed send to them reaches ForgetUnreachableUsers.
        if isinstance(bot, Bot) and bot.session not in self._watched:
            bot.session.middleware(ForgetUnreachableUsers(self._profiles))
            self._watched.add(bot.session)


class LanguageI18nMiddleware(I18nMiddleware):
    """aiogram's i18n context, in the language UserMiddleware resolved."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        language = data.get(LANGUAGE_KEY)
        if isinstance(language, str) and language in self.i18n.available_locales:
            return language
        return self.i18n.default_locale


class ButtonAnswerMiddleware(CallbackAnswerMiddleware):
    """aiogram's answer to every button, once its handler is done (handlers may set its text).
    Telegram failing to take that answer (a 5xx, a timeout, a query too old) is logged, not
    reported to the user as the step failing: the step itself worked, or failed on its own."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, CallbackQuery):
            return await handler(event, data)
        answer = self.construct_callback_answer(properties=get_flag(data, "callback_answer"))
        data["callback_answer"] = answer
        try:
            return await handler(event, data)
        finally:
            if not answer.disabled:
                await self._answer_quietly(event, answer)

    async def _answer_quietly(self, query: CallbackQuery, answer: CallbackAnswer) -> None:
        try:
            await self.answer(query, answer)
        except TelegramAPIError as exc:
            log.warning("button %s not acknowledged by Telegram: %s", query.id, exc)
