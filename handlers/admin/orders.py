"""/order <public id | ICCID | user id | @username>: the order(s) and their story; Retry,
Refund, Resend and Mark resolved, each confirmed first and refused with its reason when it
no longer fits the order."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from handlers.admin.order_screens import USAGE, confirm_screen, found_screen, story_screen
from handlers.callbacks import AdminOrderCallback
from handlers.common import show
from handlers.guards import alert as alert_box
from services.admin.order_rules import OrderAction
from services.admin.services import AdminServices

GONE = "No such order."
# Telegram shows at most 200 characters in a button's answer; the story shows the whole text.
ANSWER_LIMIT = 200


def alert(callback_answer: CallbackAnswer, text: str) -> None:
    alert_box(
        callback_answer, text if len(text) <= ANSWER_LIMIT else text[: ANSWER_LIMIT - 1] + "…"
    )


async def on_order(
    message: Message, command: CommandObject, admin: AdminServices, state: FSMContext
) -> None:
    await state.clear()
    query = (command.args or "").strip()
    if not query:
        await message.answer(USAGE)
        return
    found = await admin.lookup.find(query)
    story = await admin.lookup.story(found[0].public_id) if len(found) == 1 else None
    screen = story_screen(story) if story is not None else found_screen(query, found)
    await message.answer(screen.text, reply_markup=screen.markup)


async def on_show(
    query: CallbackQuery,
    callback_data: AdminOrderCallback,
    admin: AdminServices,
    callback_answer: CallbackAnswer,
) -> None:
    story = await admin.lookup.story(callback_data.order)
    if story is None:
        alert(callback_answer, GONE)
        return
    await show(query, story_screen(story))


async def on_ask(
    query: CallbackQuery,
    callback_data: AdminOrderCallback,
    admin: AdminServices,
    callback_answer: CallbackAnswer,
) -> None:
    """Confirm first; an action that stopped fitting says why, on the story as it is now."""
    story = await admin.lookup.story(callback_data.order)
    if story is None:
        alert(callback_answer, GONE)
        return
    action = OrderAction(callback_data.action)
    if (reason := story.refusals[action]) is not None:
        alert(callback_answer, reason)
        await show(query, story_screen(story))
        return
    await show(query, confirm_screen(story, action))


async def on_do(
    query: CallbackQuery,
    callback_data: AdminOrderCallback,
    admin: AdminServices,
    callback_answer: CallbackAnswer,
) -> None:
    action = OrderAction(callback_data.action)
    money_only = callback_data.step == "money"
    result = await admin.actions.perform(
        action, callback_data.order, query.from_user.id, money_only=money_only
    )
    if not result.done:
        alert(callback_answer, result.message)
    story = await admin.lookup.story(callback_data.order)
    if story is not None:
        verdict = result.message if result.done else f"Not done: {result.message}"
        await show(query, story_screen(story, verdict, money_only=result.money_only))


def create_router() -> Router:
    router = Router(name="admin-orders")
    router.message.register(on_order, Command("order"))
    router.callback_query.register(on_show, AdminOrderCallback.filter(F.step == "show"))
    acting = AdminOrderCallback.filter(F.action != "")
    router.callback_query.register(on_ask, acting, AdminOrderCallback.filter(F.step == "ask"))
    doing = AdminOrderCallback.filter(F.step.in_({"do", "money"}))
    router.callback_query.register(on_do, acting, doing)
    return router
