"""Telegram's webhook route: updates are answered at once and handled after, except payments.

A 200 tells Telegram the update is ours; for a pre-checkout query or a successful payment that
must not be said before it is handled. Those are handled first and a failure answers 500, so
Telegram delivers the update again (bot.dispatcher re-raises a payment update's failure).
"""

from __future__ import annotations

import logging
import re
import secrets

from aiogram import Bot
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.payments import is_payment

log = logging.getLogger(__name__)

# Every payment update's JSON holds one of these keys; other updates skip a second parse.
_PAYMENT_KEYS = re.compile(rb'"(?:pre_checkout_query|successful_payment)"')


def secret_matches(received: str, expected: str) -> bool:
    """Compare in constant time, as bytes: aiogram compares str, which raises on a header with
    non-ASCII characters (a 500, not a 401). Undecodable header bytes arrive as surrogates."""
    return secrets.compare_digest(
        received.encode("utf-8", "surrogateescape"), expected.encode("utf-8")
    )


class WebhookHandler(SimpleRequestHandler):
    """aiogram's handler, with a secret check that refuses any header it cannot match and
    payment updates handled before the answer."""

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        return secret_matches(telegram_secret_token, self.secret_token or "")

    async def _handle_request_background(self, bot: Bot, request: web.Request) -> web.Response:
        # Called by handle() once the secret token is verified.
        body = await request.read()
        if _PAYMENT_KEYS.search(body):
            update = Update.model_validate(bot.session.json_loads(body), context={"bot": bot})
            if is_payment(update):
                return await self._handle_now(bot, update)
        return await super()._handle_request_background(bot, request)

    async def _handle_now(self, bot: Bot, update: Update) -> web.Response:
        try:
            await self.dispatcher.feed_update(bot, update, **self.data)
        except Exception:
            log.warning(
                "payment update %s failed: answered 500, Telegram delivers it again",
                update.update_id,
            )
            return web.json_response({"ok": False}, status=500)
        return web.json_response({})
