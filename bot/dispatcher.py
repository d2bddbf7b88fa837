"""The aiogram Dispatcher: dependencies, middlewares, feature routers and the error handler."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import fields

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand, ErrorEvent

from bot.deps import AppDeps
from bot.i18n import CatalogueI18n
from bot.middlewares import (
    LANGUAGE_KEY,
    ButtonAnswerMiddleware,
    CountUpdates,
    LanguageI18nMiddleware,
    UserMiddleware,
)
from bot.payments import is_payment, payment_update_failed
from bot.throttle import ThrottleMiddleware, UserThrottle
from handlers import feature_routers
from services.admin_alerts import AdminAlerts
from services.bot_profile import BotProfile, bot_profiles
from services.i18n import N_, Translator, normalize_language

logger = logging.getLogger(__name__)

ERROR_TEXT = N_(
    "😔 Something went wrong on our side. Please try again in a minute — "
    "or press /start to open the menu."
)


# AppDeps fields no handler takes: the runner's wiring. aiogram copies the workflow data at
# each router and handler an update crosses, so every key costs on every update.
_WIRING = frozenset(
    {
        "settings",
        "engine",
        "session_factory",
        "esimgo",
        "fulfilment_wake",
        "notifier",
        "tracking",
        "esimgo_events",
        "metrics",
    }
)


def create_dispatcher(deps: AppDeps, storage: BaseStorage | None = None) -> Dispatcher:
    """A Dispatcher wired like production: the services handlers take and settings-derived
    values in workflow data (handlers never read bot/), middlewares, routers."""
    dp = Dispatcher(storage=storage or MemoryStorage())
    for field in fields(deps):
        if field.name not in _WIRING:
            dp[field.name] = getattr(deps, field.name)
    dp["admin_ids"] = deps.settings.admin_ids
    dp["provider_token"] = deps.settings.payment_provider_token.get_secret_value() or None

    dp.update.outer_middleware(CountUpdates(deps.metrics))
    # Runs after aiogram's own outer middlewares (user/chat context, FSM).
    dp.update.outer_middleware(UserMiddleware(deps.profiles))
    throttle = UserThrottle(deps.settings.throttle_rate, deps.settings.throttle_burst)
    dp.update.outer_middleware(ThrottleMiddleware(throttle, deps.translator))
    i18n = CatalogueI18n(deps.translator, default_locale=deps.settings.default_language)
    LanguageI18nMiddleware(i18n).setup(dp)
    # Every callback query is answered once, after its handler (handlers may set the text).
    dp.callback_query.middleware(ButtonAnswerMiddleware())

    dp.include_routers(*feature_routers(sandbox_mode=deps.sandbox is not None))
    dp.errors.register(_on_error)
    return dp


async def _on_error(
    event: ErrorEvent, bot: Bot, translator: Translator, alerts: AdminAlerts, **data: object
) -> bool:
    """Log with the update id, tell the user politely in their language, answer the button.
    A payment update is reported and raised again: a webhook answers 5xx, Telegram retries."""
    update = event.update
    logger.error(
        "Update %s failed: %s", update.update_id, event.exception, exc_info=event.exception
    )
    if is_payment(update):
        await payment_update_failed(update, bot, alerts)
        raise event.exception
    language = data.get(LANGUAGE_KEY)
    if not isinstance(language, str):
        sender = data.get("event_from_user")
        language = normalize_language(getattr(sender, "language_code", None))
    text = translator.gettext(ERROR_TEXT, language)
    query = update.callback_query
    try:
        if query is not None:
            # Usually answered already by ButtonAnswerMiddleware; then this one fails quietly.
            with contextlib.suppress(TelegramAPIError):
                await bot.answer_callback_query(query.id)
        chat = update.message.chat.id if update.message else None
        if chat is None and query is not None and query.message is not None:
            chat = query.message.chat.id
        if chat is not None:
            await bot.send_message(chat, text)
    except TelegramAPIError as exc:
        logger.warning(
            "Could not tell the user about the failed update %s: %s", update.update_id, exc
        )
    return True


async def set_bot_profile(bot: Bot, translator: Translator) -> None:
    """What a user sees before pressing Start, in each language we speak and the default
    (English): the command menu, the description and the short description. A refusal is
    logged, never fatal: the bot works without them."""
    for profile in bot_profiles(translator):
        try:
            await _publish(bot, profile)
        except TelegramAPIError as exc:
            logger.warning(
                "Telegram refused the bot's profile (%s): %s", profile.language_code, exc
            )


async def _publish(bot: Bot, profile: BotProfile) -> None:
    code = profile.language_code
    commands = [BotCommand(command=name, description=text) for name, text in profile.commands]
    await bot.set_my_commands(commands, language_code=code)
    # Descriptions are written only when they differ, so a restart (or ten replicas) rewrites
    # nothing.
    if (await bot.get_my_description(language_code=code)).description != profile.description:
        await bot.set_my_description(profile.description, language_code=code)
    short = profile.short_description
    if (await bot.get_my_short_description(language_code=code)).short_description != short:
        await bot.set_my_short_description(short, language_code=code)
