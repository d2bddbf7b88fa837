"""/paysupport (Telegram's required command for paid bots) and /terms.

/paysupport explains refunds, lets the user pick a recent order, then waits for their typed
question (the one FSM state here), which becomes a support ticket: the admins answer it in the
chat (handlers/admin/tickets.py), and the user's replies go back (handlers/support_replies.py).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

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
from handlers.support_replies import ticket_text
from services.admin.services import AdminServices
from services.admin.tickets import Asker, Opened
from services.catalogue import CatalogueService
from services.formatting import date_medium
from services.i18n import N_, Translator
from services.myesims import MyEsimsService, OrderView
from services.phone_check import self_refund_rule
from services.self_refund import SelfRefunds

RECENT_ORDERS = 10
NOT_YOURS = N_("This order is not available. Send /paysupport again.")
WAIT_FOR_ANSWER = N_(
    "⏳ You have sent us several questions in the last hour. Please wait for our answer: we "
    "reply here, in this chat."
)


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


async def on_question(
    message: Message, admin: AdminServices, language: str, state: FSMContext
) -> None:
    """The question becomes a support ticket (about the chosen order, if any), copied to the
    admins; a user who opened several this hour is asked to wait for the answer."""
    sender = message.from_user
    if sender is None or not message.text:
        return
    order_id = (await state.get_data()).get("order_id")
    asker = Asker(sender.id, message.chat.id, sender.full_name, sender.username, language)
    opened = await admin.tickets.open(
        asker, ticket_text(message), order_id if isinstance(order_id, int) else None
    )
    await state.clear()
    text = _("✅ Thank you! Your question has been sent to our support team. We will reply here.")
    if opened.outcome is Opened.RATE_LIMITED:
        text = _(WAIT_FOR_ANSWER)
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
