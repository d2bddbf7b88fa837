"""/paysupport (Telegram's required command for paid bots) and /terms.

/paysupport explains refunds, lets the user pick a recent order, then waits for their typed
question (the one FSM state here) and forwards it to the admins.
"""

from __future__ import annotations

import html
import logging
from typing import Literal

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.messenger import AiogramMessenger
from db.models import Order
from db.repositories.esims import MyEsimsRepository
from handlers.callbacks import MenuCallback
from handlers.common import show
from handlers.filters import is_command_or_in_a_form
from handlers.myesims_render import format_day, order_price, order_status, plan_title
from handlers.render import Screen, back_button, button
from services.admin_alerts import AdminAlerts, AlertHtml, alert_html
from services.catalogue import CatalogueService

logger = logging.getLogger(__name__)

RECENT_ORDERS = 10
# Telegram messages hold 4096 characters; the admin's copy adds a header to the question.
QUESTION_LIMIT = 3000


class SupportCallback(CallbackData, prefix="sup"):
    """Pick an order to ask about (`id`), a general question, or cancel."""

    action: Literal["order", "other", "cancel"]
    id: int = 0


class SupportForm(StatesGroup):
    question = State()


def _cancel_markup() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(_("✖️ Cancel"), SupportCallback(action="cancel"))]]
    )


def _support_screen(orders: list[Order], catalogue: CatalogueService, language: str) -> Screen:
    lines = [
        _("💬 <b>Help with a payment</b>"),
        _(
            "If we cannot deliver your eSIM, you get your money back automatically — Stars "
            "return to your Telegram balance, usually within minutes."
        ),
        _(
            "If an eSIM you received does not work, tell us: we will help you install it, and "
            "refund it if the fault is ours. An eSIM that has been installed and used cannot be "
            "returned."
        ),
    ]
    if orders:
        lines.append(_("Which order is your question about?"))
    else:
        lines.append(_("You have no orders yet. Ask us anything:"))
    rows = [
        [
            button(
                f"{plan_title(order, catalogue.catalogue, language)} · "
                f"{format_day(order.created_at, language)}",
                SupportCallback(action="order", id=order.id),
            )
        ]
        for order in orders
    ]
    rows.append([button(_("❓ Another question"), SupportCallback(action="other"))])
    rows.append([back_button(MenuCallback(action="main"))])
    return Screen("\n\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


async def on_paysupport(
    message: Message,
    session: AsyncSession,
    catalogue: CatalogueService,
    language: str,
    state: FSMContext,
) -> None:
    if message.from_user is None:
        return
    await state.clear()
    orders = await MyEsimsRepository(session).orders(message.from_user.id, RECENT_ORDERS)
    await show(message, _support_screen(list(orders), catalogue, language))


async def on_pick(
    query: CallbackQuery,
    callback_data: SupportCallback,
    session: AsyncSession,
    catalogue: CatalogueService,
    language: str,
    state: FSMContext,
    callback_answer: CallbackAnswer,
) -> None:
    order_id: int | None = None
    if callback_data.action == "order":
        order = await MyEsimsRepository(session).order(callback_data.id, query.from_user.id)
        if order is None:
            callback_answer.text = _("This order is not available. Send /paysupport again.")
            callback_answer.show_alert = True
            return
        order_id = order.id
        about = _("Your question about order <code>{order}</code> ({plan}, {status}).").format(
            order=html.escape(order.public_id),
            plan=html.escape(plan_title(order, catalogue.catalogue, language)),
            status=html.escape(order_status(order)),
        )
    else:
        about = _("Your question for our support team.")
    await state.set_state(SupportForm.question)
    await state.update_data(order_id=order_id)
    text = about + "\n\n" + _("✍️ Type your question in one message and send it.")
    await show(query, Screen(text, _cancel_markup()))


async def on_cancel(query: CallbackQuery, state: FSMContext) -> None:
    await state.clear()
    text = _("Cancelled. Send /paysupport whenever you need help.")
    markup = InlineKeyboardMarkup(inline_keyboard=[[back_button(MenuCallback(action="main"))]])
    await show(query, Screen(text, markup))


def _admin_text(message: Message, order: Order | None, language: str, question: str) -> AlertHtml:
    """The request as the admins see it (in English, the operators' language)."""
    sender = message.from_user
    who = sender.full_name if sender else "?"
    if sender is not None and sender.username:
        who += f" (@{sender.username})"
    lines = [
        "🆘 <b>Support request</b>",
        "From: {who}, id <code>{user_id}</code>, language {language}",
    ]
    values: dict[str, object] = {
        "who": who,
        "user_id": sender.id if sender else "?",
        "language": language,
        "question": question,
    }
    if order is not None:
        lines.append("Order: <code>{order}</code> · status {status} · {bundle} · {price}")
        values.update(
            order=order.public_id,
            status=order.status,
            bundle=order.bundle_name,
            price=order_price(order, "en"),
        )
        if order.iccid:
            lines.append("ICCID: <code>{iccid}</code>")
            values["iccid"] = order.iccid
        if order.failure_reason:
            lines.append("Last error: {error}")
            values["error"] = order.failure_reason[:300]
    else:
        lines.append("Order: none chosen")
    lines += ["", "{question}"]
    return alert_html("\n".join(lines), **values)


async def on_question(
    message: Message,
    bot: Bot,
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    language: str,
    state: FSMContext,
) -> None:
    if message.from_user is None or not message.text:
        return
    data = await state.get_data()
    order_id = data.get("order_id")
    order = None
    if isinstance(order_id, int):
        order = await MyEsimsRepository(session).order(order_id, message.from_user.id)
    question = message.text[:QUESTION_LIMIT]
    alerts = AdminAlerts(session_factory, settings.admin_ids)
    await alerts.alert(
        AiogramMessenger(bot), _admin_text(message, order, language, question), private=True
    )
    if not settings.admin_ids:
        logger.warning("Support request from %s but ADMIN_IDS is empty", message.from_user.id)
    await state.clear()
    text = _("✅ Thank you! Your question has been sent to our support team. We will reply here.")
    markup = InlineKeyboardMarkup(inline_keyboard=[[back_button(MenuCallback(action="main"))]])
    await show(message, Screen(text, markup))


async def on_command_while_asking(message: Message, state: FSMContext) -> None:
    """A command instead of the question: the user moved on. Drop the request and let the
    command's own handler (in a later router) run."""
    await state.clear()
    raise SkipHandler


async def on_terms(message: Message) -> None:
    sections = [
        _("📄 <b>Terms of sale</b>"),
        _(
            "<b>What we sell.</b> Prepaid mobile-data plans on an eSIM for the countries shown "
            "on each plan's card, delivered in this chat as a QR code with manual install codes. "
            "Data only: no phone number, calls or SMS."
        ),
        _(
            "<b>Validity.</b> A plan's days count from first use — when the eSIM first connects "
            "to a network in a covered country — not from the purchase. Install the eSIM before "
            "you travel."
        ),
        _(
            "<b>Your phone.</b> It must support eSIM and must not be locked to a carrier. Please "
            "check before buying."
        ),
        _(
            "<b>Payment and refunds.</b> You pay in Telegram. If we cannot deliver your eSIM, the "
            "payment is refunded in full automatically. A delivered eSIM cannot be returned, but "
            "if it does not work because of us, we refund it."
        ),
        _("<b>Support.</b> Questions about a payment or an order: /paysupport."),
    ]
    await message.answer("\n\n".join(sections))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    # Registered before the other routers: while a question is awaited, a command must first
    # clear that state (see on_command_while_asking).
    router = Router(name="support")
    router.message.filter(is_command_or_in_a_form)
    router.message.register(on_paysupport, Command("paysupport"))
    router.message.register(on_terms, Command("terms"))
    router.callback_query.register(on_cancel, SupportCallback.filter(F.action == "cancel"))
    router.callback_query.register(on_pick, SupportCallback.filter())
    router.message.register(on_command_while_asking, SupportForm.question, F.text.startswith("/"))
    router.message.register(
        on_question,
        SupportForm.question,
        F.chat.type == ChatType.PRIVATE,
        F.text,
        ~F.text.startswith("/"),
    )
    return router
