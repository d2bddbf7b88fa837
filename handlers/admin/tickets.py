"""Support tickets, the admins' side: /tickets lists the open ones, a button closes one, and an
admin's Telegram reply to a ticket's message goes to the user as the support team's answer."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from handlers.callbacks import TicketCallback
from handlers.common import show
from handlers.render import Screen, button
from handlers.support_replies import SupportReply, photo_of
from services.admin.services import AdminServices
from services.admin.tickets import Answered, TicketAnswer, TicketLine
from services.messenger import Button, Keyboard

ANSWERED_TEXTS = {
    Answered.ANSWERED: "✅ Sent to the user (ticket #{ticket}).",
    Answered.CLOSED: "✖️ Ticket #{ticket} is closed: nothing was sent.",
    Answered.TOO_LONG: "✖️ Too long for one message (at most 3800 characters, 850 with a "
    "photo): nothing was sent.",
    Answered.UNREACHABLE: "✖️ The user blocked the bot: ticket #{ticket}'s answer cannot reach "
    "them.",
    Answered.FAILED: "✖️ Telegram did not take it: send your reply again.",
}


def close_ticket_keyboard(ticket_id: int) -> Keyboard:
    """The button under every copy of a ticket's messages in an admin's chat."""
    return [[Button("✅ Close ticket", callback_data=TicketCallback(ticket=ticket_id).pack())]]


def tickets_screen(tickets: Sequence[TicketLine]) -> Screen:
    if not tickets:
        return Screen("🎫 No open tickets.", InlineKeyboardMarkup(inline_keyboard=[]))
    lines = [f"🎫 <b>Open tickets: {len(tickets)}</b>, the longest waiting first"]
    for t in tickets:
        order = f" · order <code>{t.order_public_id}</code>" if t.order_public_id else ""
        turn = "waits for us" if t.awaiting == "admin" else "answered"
        lines.append(
            f"#{t.ticket_id} · user <code>{t.user_id}</code> · {t.language}{order} · {turn} · "
            f"{t.messages} messages · last {t.updated_at:%Y-%m-%d %H:%M} UTC"
        )
    lines.append("\nReply to a ticket's message in this chat to answer it.")
    rows = [
        [button(f"✅ Close #{t.ticket_id}", TicketCallback(ticket=t.ticket_id, where="list"))]
        for t in tickets
    ]
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


async def on_tickets(message: Message, admin: AdminServices, state: FSMContext) -> None:
    await state.clear()
    screen = tickets_screen(await admin.tickets.open_tickets())
    await message.answer(screen.text, reply_markup=screen.markup)


async def on_close(
    query: CallbackQuery,
    callback_data: TicketCallback,
    admin: AdminServices,
    callback_answer: CallbackAnswer,
) -> None:
    ticket = callback_data.ticket
    closed = await admin.tickets.close(ticket, query.from_user.id)
    callback_answer.text = (
        f"Ticket #{ticket} closed; the user was told." if closed else f"#{ticket} was closed."
    )
    if callback_data.where == "list":
        await show(query, tickets_screen(await admin.tickets.open_tickets()))
    elif isinstance(query.message, Message):
        with contextlib.suppress(TelegramBadRequest):  # the button was removed already
            await query.message.edit_reply_markup(reply_markup=None)


async def on_answer(
    message: Message, admin: AdminServices, bot: Bot, fsm_storage: BaseStorage
) -> None:
    """An admin's Telegram reply: to a ticket's message it is the answer; else it is not ours."""
    if message.from_user is None or message.reply_to_message is None:
        return
    replied = message.reply_to_message.message_id
    answer = await admin.tickets.answer(
        message.from_user.id, replied, message.html_text, photo_of(message)
    )
    if answer.outcome is Answered.NOT_A_TICKET:
        raise SkipHandler
    if answer.outcome is Answered.ANSWERED:
        await _await_reply(fsm_storage, bot, answer)
    await message.reply(ANSWERED_TEXTS[answer.outcome].format(ticket=answer.ticket_id))


async def _await_reply(storage: BaseStorage, bot: Bot, answer: TicketAnswer) -> None:
    """The user's next message is their reply (unless they are filling in another form)."""
    if answer.user_id is None or answer.chat_id is None:
        return
    key = StorageKey(bot_id=bot.id, chat_id=answer.chat_id, user_id=answer.user_id)
    user = FSMContext(storage, key)
    if await user.get_state() is None:
        await user.set_state(SupportReply.waiting)


def create_router() -> Router:
    router = Router(name="admin-tickets")
    router.message.register(on_tickets, Command("tickets"))
    router.callback_query.register(on_close, TicketCallback.filter())
    replies = F.reply_to_message & (F.text | F.photo) & ~F.text.startswith("/")
    router.message.register(on_answer, replies)
    return router
