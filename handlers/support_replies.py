"""The customer's side of a support conversation: after the support team answered, the user's
next message (text or a photo) goes back to the admins in the ticket's thread; so does a
Telegram reply to one of the ticket's messages.

The admins' answer puts the user in `SupportReply.waiting` (handlers/admin/tickets.py), so
that no other message costs a look at the tickets.
"""

from __future__ import annotations

import html

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from handlers.filters import may_be_a_reply
from services.admin.services import AdminServices

# Telegram messages hold 4096 characters; the admins' copy adds a header.
TEXT_LIMIT = 3000


class SupportReply(StatesGroup):
    waiting = State()  # the support team answered: the next message is the user's reply


def ticket_text(message: Message) -> str:
    """The message's text or caption as HTML with the user's formatting; a very long one is
    cut, as plain text (a cut could break a tag)."""
    plain = message.text or message.caption or ""
    if len(plain) > TEXT_LIMIT:
        return html.escape(plain[:TEXT_LIMIT]) + "…"
    return message.html_text


def photo_of(message: Message) -> str | None:
    return message.photo[-1].file_id if message.photo else None


async def on_reply(
    message: Message, admin: AdminServices, state: FSMContext, raw_state: str | None
) -> None:
    if message.from_user is None:
        return
    if raw_state == SupportReply.waiting.state:
        await state.clear()
    replied = message.reply_to_message.message_id if message.reply_to_message else None
    relayed = await admin.tickets.relay_from_user(
        message.from_user.id, ticket_text(message), photo_of(message), replied
    )
    if not relayed:
        raise SkipHandler  # not about a ticket (any more): the message is what it seems
    await message.answer(_("✅ Sent to our support team. We will answer here."))


async def on_command_while_waiting(message: Message, state: FSMContext) -> None:
    """A command instead of a reply: the user moved on; the command's own handler runs."""
    await state.clear()
    raise SkipHandler


def create_router() -> Router:
    router = Router(name="support-replies")
    router.message.filter(may_be_a_reply)
    router.message.register(on_command_while_waiting, SupportReply.waiting, F.text.startswith("/"))
    replies = F.text | F.photo
    router.message.register(on_reply, SupportReply.waiting, replies)
    router.message.register(on_reply, F.reply_to_message, replies, ~F.text.startswith("/"))
    return router
