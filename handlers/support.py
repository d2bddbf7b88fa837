"""/paysupport (Telegram's required command for paid bots) and /terms.

/paysupport explains refunds, lets the user pick a recent order, then waits for their typed
question (the one FSM state here) and forwards it to the admins.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Collection, Sequence

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import MenuCallback, SupportCallback
from handlers.common import show
from handlers.filters import is_command_or_in_a_form
from handlers.guards import OwnedOnly
from handlers.myesims_render import Wording, order_status
from handlers.render import Screen, back_button, button
from services.admin_alerts import AdminAlerts, AlertHtml, alert_html
from services.catalogue import CatalogueService
from services.formatting import date_medium
from services.i18n import N_, Translator
from services.messenger import Messenger
from services.myesims import MyEsimsService, OrderView
from services.phone_check import self_refund_rule
from services.pricing import format_price
from services.self_refund import SelfRefunds

logger = logging.getLogger(__name__)

RECENT_ORDERS = 10
# Telegram messages hold 4096 characters; the admin's copy adds a header to the question.
QUESTION_LIMIT = 3000
NOT_YOURS = N_("This order is not available. Send /paysupport again.")


class SupportForm(StatesGroup):
    question = State()


def _cancel_markup() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(_("✖️ Cancel"), SupportCallback(action="cancel"))]]
    )


def _support_screen(orders: Sequence[OrderView], words: Wording, refund_rule: str) -> Screen:
    """What we refund and how (`refund_rule`: the self-refund paragraph, empty when off)."""
    lines = [
        _("💬 <b>Help with a payment</b>"),
        _(
            "If we cannot deliver your eSIM, you get your money back automatically — Stars "
            "return to your Telegram balance, usually within minutes."
        ),
    ]
    if refund_rule:
        lines += [
            refund_rule,
            _(
                "If an eSIM you received does not work, tap “It doesn't work” on it in My "
                "eSIMs, or tell us: we will help you install it, and refund it if the fault is "
                "ours. An eSIM that has been installed, or whose plan has started, cannot be "
                "returned."
            ),
        ]
    else:
        lines.append(
            _(
                "If an eSIM you received does not work, tell us: we will help you install it, "
                "and refund it if the fault is ours. An eSIM that has been installed and used "
                "cannot be returned."
            )
        )
    if orders:
        lines.append(_("Which order is your question about?"))
    else:
        lines.append(_("You have no orders yet. Ask us anything:"))
    rows = [
        [
            button(
                f"{words.order_title(order)} · {date_medium(order.created_at, words.lang)}",
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
    myesims: MyEsimsService,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    state: FSMContext,
    refunds: SelfRefunds,
) -> None:
    if message.from_user is None:
        return
    await state.clear()
    orders = await myesims.recent_orders(message.from_user.id, RECENT_ORDERS)
    words = Wording(catalogue.catalogue, translator, language)
    await show(message, _support_screen(orders, words, refund_rule(refunds, translator, language)))


async def on_pick(
    query: CallbackQuery,
    state: FSMContext,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    owned: OrderView | None = None,
) -> None:
    """An order (the presser's own: OwnedOnly) or a general question: now type it."""
    about = _("Your question for our support team.")
    if owned is not None:
        plan = Wording(catalogue.catalogue, translator, language).order_title(owned)
        about = _("Your question about order <code>{order}</code> ({plan}, {status}).").format(
            order=html.escape(owned.public_id),
            plan=html.escape(plan),
            status=html.escape(order_status(owned)),
        )
    await state.set_state(SupportForm.question)
    await state.update_data(order_id=owned.id if owned is not None else None)
    text = about + "\n\n" + _("✍️ Type your question in one message and send it.")
    await show(query, Screen(text, _cancel_markup()))


async def on_cancel(query: CallbackQuery, state: FSMContext) -> None:
    await state.clear()
    text = _("Cancelled. Send /paysupport whenever you need help.")
    markup = InlineKeyboardMarkup(inline_keyboard=[[back_button(MenuCallback(action="main"))]])
    await show(query, Screen(text, markup))


def _admin_text(
    message: Message, order: OrderView | None, language: str, question: str
) -> AlertHtml:
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
            price=format_price(order.price, "en"),
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
    myesims: MyEsimsService,
    alerts: AdminAlerts,
    messenger: Messenger,
    admin_ids: Collection[int],
    language: str,
    state: FSMContext,
) -> None:
    if message.from_user is None or not message.text:
        return
    order_id = (await state.get_data()).get("order_id")
    order = None
    if isinstance(order_id, int):
        order = await myesims.order(order_id, message.from_user.id)
    question = message.text[:QUESTION_LIMIT]
    await alerts.alert(messenger, _admin_text(message, order, language, question), private=True)
    if not admin_ids:
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


def refund_rule(refunds: SelfRefunds, translator: Translator, lang: str) -> str:
    """The self-refund paragraph of /terms and /paysupport; empty when SELF_REFUND_DAYS is 0."""
    return self_refund_rule(translator, lang, refunds.days) if refunds.days > 0 else ""


def _payment_terms(rule: str) -> list[str]:
    """The refund sentences of /terms, as they hold with or without the self-refund."""
    if not rule:
        return [
            _(
                "<b>Payment and refunds.</b> You pay in Telegram. If we cannot deliver your "
                "eSIM, the payment is refunded in full automatically. A delivered eSIM cannot "
                "be returned, but if it does not work because of us, we refund it."
            )
        ]
    paid = _(
        "<b>Payment and refunds.</b> You pay in Telegram. If we cannot deliver your eSIM, the "
        "payment is refunded in full automatically. An eSIM that has been installed, or whose "
        "plan has started, cannot be returned, but if it does not work because of us, we "
        "refund it."
    )
    return [paid, rule]


async def on_terms(
    message: Message, refunds: SelfRefunds, translator: Translator, language: str
) -> None:
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
        *_payment_terms(refund_rule(refunds, translator, language)),
        _("<b>Support.</b> Questions about a payment or an order: /paysupport."),
    ]
    await message.answer("\n\n".join(sections))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    # Registered before the other routers: while a question is awaited, a command must first
    # clear that state (see on_command_while_asking).
    router = Router(name="support")
    router.message.filter(is_command_or_in_a_form)
    router.callback_query.middleware(OwnedOnly(NOT_YOURS))
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
