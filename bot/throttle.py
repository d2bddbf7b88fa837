"""A per-user throttle: someone sending more than a few messages or button presses a second has
the excess dropped, and is told once, gently, to slow down. Payments always pass, and so does
everything that is not a message or a button (inline queries come as the user types).

Counted per process: with several replicas behind a webhook, each counts what it receives.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update
from aiogram.types import User as TelegramUser

from bot.middlewares import LANGUAGE_KEY
from bot.payments import is_payment
from services.i18n import N_, Translator

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

SLOW_DOWN = N_("🐢 Slow down a little, please: wait a few seconds, then carry on.")


class Verdict(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"  # the first update dropped: say "slow down"
    DROP = "drop"  # dropped quietly (already told)


class UserThrottle:
    """A token bucket per user: `burst` updates at once, refilled at `rate` a second."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        # user id → (tokens, when counted, told to slow down); least recently seen first.
        self._buckets: dict[int, tuple[float, float, bool]] = {}

    def check(self, user_id: int) -> Verdict:
        now = self._clock()
        tokens, at, told = self._buckets.pop(user_id, (self._burst, now, False))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1.0:
            tokens, told, verdict = tokens - 1.0, False, Verdict.PASS
        else:
            verdict = Verdict.DROP if told else Verdict.WARN
            told = True
        self._forget_the_rested(now)
        self._buckets[user_id] = (tokens, now, told)
        return verdict

    def _forget_the_rested(self, now: float) -> None:
        """Drop buckets full again (from the least recently seen): memory stays bounded by
        the users seen in the last burst/rate seconds."""
        rested = []
        for user_id, (tokens, at, _told) in self._buckets.items():
            if tokens + (now - at) * self._rate < self._burst:
                break
            rested.append(user_id)
        for user_id in rested:
            del self._buckets[user_id]


class ThrottleMiddleware(BaseMiddleware):
    """Outer update middleware, after UserMiddleware (the user's language is known)."""

    def __init__(self, throttle: UserThrottle, translator: Translator) -> None:
        self._throttle = throttle
        self._translator = translator

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: TelegramUser | None = data.get("event_from_user")
        if user is None or not isinstance(event, Update) or not _counted(event):
            return await handler(event, data)
        verdict = self._throttle.check(user.id)
        if verdict is Verdict.PASS:
            return await handler(event, data)
        log.info("update %s from %s dropped: too many at once", event.update_id, user.id)
        if verdict is Verdict.WARN:
            await self._slow_down(event, data["bot"], str(data.get(LANGUAGE_KEY, "en")))
        return None

    async def _slow_down(self, update: Update, bot: Bot, language: str) -> None:
        text = self._translator.gettext(SLOW_DOWN, language)
        query, message = update.callback_query, update.message or update.edited_message
        try:
            if query is not None:
                await bot.answer_callback_query(query.id, text=text)
            elif message is not None:
                await bot.send_message(message.chat.id, text)
        except TelegramAPIError as exc:
            log.info("could not ask user to slow down: %s", exc)


def _counted(update: Update) -> bool:
    """Messages and button presses count; payments and everything else pass."""
    if is_payment(update):
        return False
    return any(
        item is not None for item in (update.message, update.edited_message, update.callback_query)
    )
