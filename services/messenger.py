"""How services talk to users without knowing Telegram: a small interface the bot implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Button:
    """An inline button: exactly one of `url`, `callback_data` or `copy_text` (the text
    Telegram copies to the clipboard, 1–256 characters)."""

    text: str
    url: str | None = None
    callback_data: str | None = None
    copy_text: str | None = None


Keyboard = Sequence[Sequence[Button]]


class MessengerError(Exception):
    """Sending failed for a reason that may pass (network, Telegram 5xx)."""


class RecipientUnavailableError(MessengerError):
    """The user blocked the bot or deleted the chat: retrying will not help."""


class RetryLaterError(MessengerError):
    """Telegram asked us to slow down (429)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class RefundError(MessengerError):
    """Telegram refused a refund for a reason other than "already refunded"."""


class Messenger(Protocol):
    async def send_text(self, chat_id: int, text: str, keyboard: Keyboard | None = None) -> int:
        """Send an HTML message; returns its message id."""
        ...

    async def send_photo(
        self, chat_id: int, png: bytes, caption: str, keyboard: Keyboard | None = None
    ) -> int:
        """Send a PNG as a chat photo with an HTML caption; returns its message id."""
        ...

    async def send_upload_photo_action(self, chat_id: int) -> None: ...

    async def send(
        self,
        chat_id: int,
        text: str,
        *,
        photo: str | None = None,
        reply_to: int | None = None,
        keyboard: Keyboard | None = None,
    ) -> int:
        """Send an HTML text, or a photo already on Telegram (`photo`: its file id) with the
        text as its caption; a reply to message `reply_to` when given. Returns its message id."""
        ...

    async def edit_text(
        self, chat_id: int, message_id: int, text: str, keyboard: Keyboard | None = None
    ) -> None:
        """Replace the text of a message the bot sent; the same text again is no error."""
        ...

    async def refund_star_payment(self, user_id: int, telegram_payment_charge_id: str) -> None:
        """Refund a Stars payment; "already refunded" counts as success."""
        ...
