"""Sandbox mode: the banner on every screen, the simulated invoice and its "Simulate payment"
button (a Stars invoice is real money), and /sandbox for admins. Its router is included only in
sandbox mode (ESIMGO_API_KEY=sandbox)."""

from __future__ import annotations

import html
from collections.abc import Collection

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import SendInvoice, SendMessage
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import MenuCallback, SandboxCallback
from handlers.common import show
from handlers.guards import alert
from handlers.purchase import refusal_text
from handlers.render import Screen, button
from services.i18n import N_, Translator
from services.orders import PaymentOutcome
from services.pricing import Price, format_price
from services.sandbox import Sandbox

BANNER = N_("🧪 Sandbox: a test shop. No real money moves, and no eSIM from here works.")


def banner(translator: Translator, lang: str) -> str:
    return translator.gettext(BANNER, lang)


def simulated_invoice(invoice: SendInvoice, translator: Translator, lang: str) -> SendMessage:
    """The invoice as a message whose button pays it in the sandbox; its payload (the order's
    public id) goes in the button."""

    def gettext(message: str) -> str:
        return translator.gettext(message, lang)

    price = format_price(Price(sum(p.amount for p in invoice.prices), invoice.currency), lang)
    text = "\n".join(
        [
            f"🧾 <b>{html.escape(invoice.title)}</b>",
            html.escape(invoice.description),
            gettext("💰 Price: {price}").format(price=html.escape(price)),
            "",
            gettext(
                "This is not a real invoice: in the sandbox no money moves. Press the button "
                "to go on as if you had paid."
            ),
        ]
    )
    pay = button(
        gettext("🧪 Simulate payment ({price})").format(price=price),
        SandboxCallback(action="pay", order=invoice.payload),
    )
    markup = InlineKeyboardMarkup(inline_keyboard=[[pay]])
    return SendMessage(chat_id=invoice.chat_id, text=text, reply_markup=markup)


def _paid_screen(topup: bool) -> Screen:
    if topup:
        text = _("✅ Payment received! ⏳ Adding the plan to your eSIM…")
    else:
        text = _("✅ Payment received! ⏳ Preparing your eSIM…")
    menu = button(_("🏠 Main menu"), MenuCallback(action="main"))
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=[[menu]]))


async def on_simulated_payment(
    query: CallbackQuery,
    callback_data: SandboxCallback,
    sandbox: Sandbox,
    callback_answer: CallbackAnswer,
) -> None:
    """What Telegram's pre-checkout and successful payment would bring, then fulfilment."""
    paid = await sandbox.payments.pay(callback_data.order, query.from_user.id)
    if paid.refusal is not None:
        alert(callback_answer, refusal_text(paid.refusal))
    elif paid.outcome is PaymentOutcome.RECORDED:
        await show(query, _paid_screen(paid.topup))


async def from_an_admin(message: Message, admin_ids: Collection[int]) -> bool:
    """Anyone else's /sandbox is an unknown command: the menu, and nothing about the sandbox."""
    return message.from_user is not None and message.from_user.id in admin_ids


async def on_sandbox_command(message: Message, command: CommandObject, sandbox: Sandbox) -> None:
    if message.from_user is not None:
        report = await sandbox.operator.run(message.from_user.id, command.args or "")
        await message.answer(report)


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="sandbox")
    router.callback_query.register(on_simulated_payment, SandboxCallback.filter(F.action == "pay"))
    router.message.register(on_sandbox_command, Command("sandbox"), from_an_admin)
    return router
