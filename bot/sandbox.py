"""The Bot of sandbox mode, where Telegram is real but no money may move: every screen gets the
sandbox banner, an invoice goes out as a message with "Simulate payment" (a Stars invoice is real
money), and a simulated charge is refunded without asking Telegram, which never saw it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from aiogram import Bot
from aiogram.methods import (
    CreateInvoiceLink,
    EditMessageCaption,
    EditMessageText,
    RefundStarPayment,
    SendInvoice,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)

from bot.deps import AppDeps
from handlers.sandbox import banner, simulated_invoice
from services.esimgo.standin import EsimGoStandIn
from services.esimgo.standin.callbacks import CallbackSender
from services.i18n import Translator
from services.sandbox import Sandbox, SandboxOperator, SimulatedPayments, is_simulated_charge
from services.sandbox.restore import restore_account

log = logging.getLogger(__name__)

T = TypeVar("T")
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
LanguageOf = Callable[[int], Awaitable[str]]
# What users see as a screen: each gets the banner.
_SCREENS = (SendInvoice, SendMessage, EditMessageText, SendPhoto, EditMessageCaption)


class SandboxRefusalError(RuntimeError):
    """Something tried to take real money in sandbox mode."""


class SandboxBot(Bot):
    """Rewrites what it sends (see the module); `speak()` gives it the texts and each chat's
    language once the services exist (English until then)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._translator = Translator()
        self._language_of: LanguageOf | None = None
        self._default_language = "en"

    def speak(self, translator: Translator, language_of: LanguageOf, default: str) -> None:
        self._translator = translator
        self._language_of = language_of
        self._default_language = default

    async def __call__(self, method: TelegramMethod[T], request_timeout: int | None = None) -> T:
        if isinstance(method, RefundStarPayment) and is_simulated_charge(
            method.telegram_payment_charge_id
        ):
            log.info("simulated charge %s refunded", method.telegram_payment_charge_id)
            return cast(T, True)
        if isinstance(method, CreateInvoiceLink):
            raise SandboxRefusalError("no invoice links in sandbox mode: they take real money")
        if isinstance(method, _SCREENS):
            method = await self._sandboxed(method)
        return await super().__call__(method, request_timeout)

    async def _sandboxed(self, method: Any) -> Any:
        """The method with the banner on top (an invoice turned into its simulated message)."""
        lang = await self._language(method.chat_id)
        if isinstance(method, SendInvoice):
            method = simulated_invoice(method, self._translator, lang)
        field, limit = ("caption", CAPTION_LIMIT) if hasattr(method, "caption") else ("text", 0)
        limit = limit or TEXT_LIMIT
        body = getattr(method, field) or ""
        top = banner(self._translator, lang)
        if len(top) + 1 + len(body) > limit:
            return method  # a banner must never cost the message itself
        return method.model_copy(update={field: f"{top}\n{body}" if body else top})

    async def _language(self, chat_id: int | str | None) -> str:
        if self._language_of is None or not isinstance(chat_id, int):
            return self._default_language
        try:
            return await self._language_of(chat_id)
        except Exception as exc:
            log.warning("sandbox banner: the language of %s is unknown (%s)", chat_id, exc)
            return self._default_language


async def create_sandbox(deps: AppDeps, bot: Bot, standin: EsimGoStandIn) -> Sandbox:
    """What sandbox mode adds to the services, with the eSIMs sold before a restart back on the
    stand-in; a SandboxBot learns each chat's language."""
    if isinstance(bot, SandboxBot):

        async def language_of(chat_id: int) -> str:
            # Someone writing now is known before their row is stored; others are looked up.
            known = deps.profiles.known.get(chat_id)
            if known is not None:
                _username, _first_name, telegram_language = known.profile
                return deps.profiles.language(known.language, telegram_language)
            return (await deps.notifier.recipient(chat_id)).language

        bot.speak(deps.translator, language_of, deps.settings.default_language)
    log.warning(
        "SANDBOX MODE (ESIMGO_API_KEY=sandbox): eSIM Go is a stand-in at %s, payments are only "
        "simulated, no eSIM sold here works; admins move usage with /sandbox",
        standin.base_url,
    )
    await restore_account(standin, deps.session_factory)
    callbacks = CallbackSender(standin.api_key)
    return Sandbox(
        standin=standin,
        callbacks=callbacks,
        payments=SimulatedPayments(deps.session_factory, deps.orders, deps.checkout),
        operator=SandboxOperator(
            standin, callbacks, deps.session_factory, deps.tracking, deps.messenger
        ),
    )
