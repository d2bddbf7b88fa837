"""The Messenger interface (services.messenger) implemented with aiogram's Bot."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.types import (
    BufferedInputFile,
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
)

from bot.redaction import Redactor
from services.messenger import (
    Button,
    Keyboard,
    MessengerError,
    RecipientUnavailableError,
    RefundError,
    RetryLaterError,
)

log = logging.getLogger(__name__)

ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
NOT_MODIFIED = "message is not modified"
# Bad Request texts meaning the chat is gone for good, as opposed to a malformed request.
_GONE = ("chat not found", "user not found", "user is deactivated", "peer_id_invalid")


def to_button(button: Button) -> InlineKeyboardButton:
    copy = CopyTextButton(text=button.copy_text) if button.copy_text else None
    return InlineKeyboardButton(
        text=button.text, url=button.url, callback_data=button.callback_data, copy_text=copy
    )


def to_markup(keyboard: Keyboard | None) -> InlineKeyboardMarkup | None:
    if not keyboard:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[[to_button(b) for b in row] for row in keyboard])


def _translate(exc: TelegramAPIError, redact: Redactor) -> MessengerError:
    # A network error's text may name the request URL, which holds the bot token; what this
    # returns ends up in orders' failure reasons and in admin alerts.
    message = redact(exc.message)
    if isinstance(exc, TelegramRetryAfter):
        return RetryLaterError(float(exc.retry_after))
    if isinstance(exc, TelegramForbiddenError):
        return RecipientUnavailableError(message)
    if isinstance(exc, TelegramBadRequest) and any(g in message.lower() for g in _GONE):
        return RecipientUnavailableError(message)
    return MessengerError(message)


class AiogramMessenger:
    """Sends through a Bot; Telegram errors become the Messenger's own error types."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._redact = Redactor([bot.token])

    async def send_text(self, chat_id: int, text: str, keyboard: Keyboard | None = None) -> int:
        try:
            message = await self._bot.send_message(chat_id, text, reply_markup=to_markup(keyboard))
        except TelegramAPIError as exc:
            raise _translate(exc, self._redact) from exc
        return message.message_id

    async def send_photo(
        self, chat_id: int, png: bytes, caption: str, keyboard: Keyboard | None = None
    ) -> int:
        try:
            message = await self._bot.send_photo(
                chat_id,
                BufferedInputFile(png, filename="esim-qr.png"),
                caption=caption,
                reply_markup=to_markup(keyboard),
            )
        except TelegramAPIError as exc:
            raise _translate(exc, self._redact) from exc
        return message.message_id

    async def send_upload_photo_action(self, chat_id: int) -> None:
        try:
            await self._bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
        except TelegramAPIError as exc:
            raise _translate(exc, self._redact) from exc

    async def send(
        self,
        chat_id: int,
        text: str,
        *,
        photo: str | None = None,
        reply_to: int | None = None,
        keyboard: Keyboard | None = None,
    ) -> int:
        # A reply whose original was deleted is still sent, as a plain message.
        reply = (
            ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
            if reply_to is not None
            else None
        )
        markup = to_markup(keyboard)
        try:
            message: Message
            if photo is not None:
                message = await self._bot.send_photo(
                    chat_id, photo, caption=text, reply_parameters=reply, reply_markup=markup
                )
            else:
                message = await self._bot.send_message(
                    chat_id, text, reply_parameters=reply, reply_markup=markup
                )
        except TelegramAPIError as exc:
            raise _translate(exc, self._redact) from exc
        return message.message_id

    async def edit_text(
        self, chat_id: int, message_id: int, text: str, keyboard: Keyboard | None = None
    ) -> None:
        try:
            await self._bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=message_id, reply_markup=to_markup(keyboard)
            )
        except TelegramBadRequest as exc:
            if NOT_MODIFIED not in exc.message.lower():
                raise _translate(exc, self._redact) from exc
        except TelegramAPIError as exc:
            raise _translate(exc, self._redact) from exc

    async def refund_star_payment(self, user_id: int, telegram_payment_charge_id: str) -> None:
        try:
            await self._bot.refund_star_payment(
                user_id=user_id, telegram_payment_charge_id=telegram_payment_charge_id
            )
        except TelegramBadRequest as exc:
            if ALREADY_REFUNDED in exc.message.upper():
                log.info("charge %s was already refunded", telegram_payment_charge_id)
                return
            raise RefundError(self._redact(exc.message)) from exc
        except TelegramAPIError as exc:
            raise _translate(exc, self._redact) from exc
