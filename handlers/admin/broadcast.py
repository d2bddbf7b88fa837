"""/broadcast: the admin sends the message (text, or a photo with a caption; formatting kept),
sees it as users will with the count of recipients and a choice of audience, then Send (a
background job, progress edited into one message) or Cancel."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from handlers.callbacks import BroadcastCallback
from handlers.common import show
from handlers.guards import alert
from handlers.render import Screen, button
from handlers.support_replies import photo_of
from services.admin.broadcast import BroadcastDraft
from services.admin.services import AdminServices
from services.i18n import SUPPORTED_LANGUAGES

# Button code → the audience as services.admin.broadcast names it (":" cannot be in callbacks).
AUDIENCES = {
    "all": ("all", "Everyone"),
    "buyers": ("buyers", "Buyers"),
    **{code: (f"lang:{code}", code.upper()) for code in SUPPORTED_LANGUAGES},
}
NAMES = dict(AUDIENCES.values())
PROMPT = (
    "📣 Send the message to broadcast: a text, or a photo with a caption. Bold, italics and "
    "links are kept. You will see it and the number of recipients before anything is sent."
)
NOT_A_DRAFT = "This broadcast was sent or cancelled already."


class BroadcastForm(StatesGroup):
    message = State()


def _cancel(broadcast_id: int = 0) -> BroadcastCallback:
    return BroadcastCallback(action="cancel", id=broadcast_id)


def draft_screen(draft: BroadcastDraft) -> Screen:
    """The choice of audience and Send / Cancel, under the preview."""
    text = (
        f"📣 <b>Broadcast #{draft.broadcast_id}</b>: the message above goes to "
        f"<b>{draft.recipients}</b> users ({NAMES[draft.audience]}; users who blocked the bot "
        "are left out)."
    )
    choices = [
        button(
            ("• " if audience == draft.audience else "") + name,
            BroadcastCallback(action="audience", id=draft.broadcast_id, audience=code),
        )
        for code, (audience, name) in AUDIENCES.items()
    ]
    send = BroadcastCallback(action="send", id=draft.broadcast_id)
    controls = [
        button(f"📤 Send to {draft.recipients}", send),
        button("✖️ Cancel", _cancel(draft.broadcast_id)),
    ]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=[choices, controls]))


async def on_broadcast(message: Message, state: FSMContext) -> None:
    await state.set_state(BroadcastForm.message)
    markup = InlineKeyboardMarkup(inline_keyboard=[[button("✖️ Cancel", _cancel())]])
    await message.answer(PROMPT, reply_markup=markup)


async def on_message(message: Message, admin: AdminServices, state: FSMContext) -> None:
    """The message to send: shown back as users will get it, with the controls under it."""
    text, photo = message.html_text, photo_of(message)
    if message.from_user is None or not (text or photo):
        await message.answer("Only a text or a photo can be broadcast. " + PROMPT)
        return
    await state.clear()
    draft = await admin.broadcasts.draft(
        message.from_user.id, message.chat.id, text, photo, AUDIENCES["all"][0]
    )
    if photo is not None:
        await message.answer_photo(photo, caption=text or None)
    else:
        await message.answer(text)
    screen = draft_screen(draft)
    await message.answer(screen.text, reply_markup=screen.markup)


async def on_command_while_composing(message: Message, state: FSMContext) -> None:
    """Another command instead of the message: the broadcast is dropped, the command runs."""
    await state.clear()
    raise SkipHandler


async def on_audience(
    query: CallbackQuery,
    callback_data: BroadcastCallback,
    admin: AdminServices,
    callback_answer: CallbackAnswer,
) -> None:
    audience = AUDIENCES.get(callback_data.audience)
    draft = None
    if audience is not None:
        draft = await admin.broadcasts.choose_audience(callback_data.id, audience[0])
    if draft is None:
        alert(callback_answer, NOT_A_DRAFT)
        return
    await show(query, draft_screen(draft))


async def on_send(
    query: CallbackQuery,
    callback_data: BroadcastCallback,
    admin: AdminServices,
    callback_answer: CallbackAnswer,
) -> None:
    """Recipients are fixed now; a job sends in the background (a second press does nothing)."""
    count = await admin.broadcasts.start(callback_data.id)
    if count is None:
        alert(callback_answer, NOT_A_DRAFT)
        return
    admin.sender.launch(callback_data.id)
    text = f"📤 Broadcast #{callback_data.id}: sending to {count} users; progress below."
    stop = InlineKeyboardMarkup(inline_keyboard=[[button("⏹ Stop", _cancel(callback_data.id))]])
    await show(query, Screen(text, stop))


async def on_cancel(
    query: CallbackQuery,
    callback_data: BroadcastCallback,
    admin: AdminServices,
    state: FSMContext,
) -> None:
    """Drop the form or the draft, or stop a broadcast being sent (after its current batch)."""
    await state.clear()
    text = "Cancelled: nothing was sent."
    if callback_data.id:
        progress = await admin.broadcasts.progress(callback_data.id)
        stopped = await admin.broadcasts.cancel(callback_data.id)
        if progress is None or not stopped:
            text = f"Broadcast #{callback_data.id} had finished already."
        elif progress.status == "sending":
            text = f"⏹ Broadcast #{callback_data.id} stopped; the summary follows."
    await show(query, Screen(text, InlineKeyboardMarkup(inline_keyboard=[])))


def create_router() -> Router:
    router = Router(name="admin-broadcast")
    router.message.register(on_broadcast, Command("broadcast"))
    composing = BroadcastForm.message
    router.message.register(on_command_while_composing, composing, F.text.startswith("/"))
    router.message.register(on_message, composing)
    router.callback_query.register(on_audience, BroadcastCallback.filter(F.action == "audience"))
    router.callback_query.register(on_send, BroadcastCallback.filter(F.action == "send"))
    router.callback_query.register(on_cancel, BroadcastCallback.filter(F.action == "cancel"))
    return router
