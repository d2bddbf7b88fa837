"""Secrets out of texts that leave the process: logs, command output, stored errors, alerts.

aiohttp names the failing URL in some of its errors, and the Bot API's URLs hold the bot token
(`…/bot<token>/getMe`); aiogram passes those texts on in its own exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from bot.config import Settings

REDACTED = "[redacted]"
# Shorter values are not secrets worth the name, and replacing them would mangle ordinary text.
MIN_SECRET_LENGTH = 8


class Redactor:
    """Replaces each secret, as written and as URL-encoded, with REDACTED."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {
            form
            for secret in secrets
            if len(secret) >= MIN_SECRET_LENGTH
            for form in (secret, quote(secret, safe=""))
        }
        # Longest first, so no secret is left half-replaced by a shorter one inside it.
        self._forms = sorted(forms, key=len, reverse=True)

    @classmethod
    def for_settings(cls, settings: Settings) -> Redactor:
        return cls(
            value.get_secret_value()
            for value in (
                settings.bot_token,
                settings.esimgo_api_key,
                settings.webhook_secret,
                settings.payment_provider_token,
            )
        )

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text
