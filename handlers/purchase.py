"""Buying: the bundle card's Buy → confirmation → validated invoice → pre-checkout → payment.

Top-ups (handlers/topup.py) create their order elsewhere and then share everything from the
confirmation on; the texts say where the plan goes and that nothing needs installing.
"""

from __future__ import annotations

import html
import logging

from aiogram import Bot, F, Router
from aiogram.filters.callback_data import CallbackData
from aiogram.methods import SendInvoice
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from handlers import render
from handlers.callbacks import (
    BundleCallback,
    GiftCallback,
    MenuCallback,
    OrderCallback,
    TopUpCallback,
)
from handlers.common import show
from handlers.guards import PrivateChatOnly, alert
from handlers.render import Screen, button
from services.catalogue import Catalogue, CatalogueService
from services.checkout import Buyer, CancelOutcome, Checkout, PayOutcome, Quote, TopUpEsim
from services.formatting import bundle_size, bundle_title
from services.i18n import N_, Translator
from services.orders import PaymentOutcome, PreCheckoutRefusal, ReceivedPayment
from services.phone_check import confirmation_notes
from services.pricing import Price, format_price

log = logging.getLogger(__name__)

# Telegram's limits on invoice texts.
TITLE_LIMIT = 32
DESCRIPTION_LIMIT = 255

PAY_REFUSALS = {
    PayOutcome.NOT_FOUND: N_("This order is not available."),
    PayOutcome.WITHDRAWN: N_("This plan is no longer available. Please choose another one."),
    PayOutcome.ESIM_GONE: N_(
        "This eSIM is no longer in your account, so it cannot be topped up. "
        "Open /myesims for yours."
    ),
    PayOutcome.EXPIRED: N_("This order has expired. Please start again from the plan."),
    PayOutcome.ALREADY_PAID: N_("This order is already paid."),
    PayOutcome.UNAVAILABLE: N_(
        "😔 This plan is temporarily unavailable. Please try again later or pick another one."
    ),
    PayOutcome.TRY_AGAIN: N_(
        "⏳ Our supplier did not answer in time. Please try again in a moment."
    ),
}
CHECKING = N_("⏳ Checking this order with our supplier, one moment…")
TOO_MANY_UNPAID = N_(
    "You have too many unpaid orders. Please pay for one or cancel it first: they are in /myesims."
)


def buyer_of(query: CallbackQuery) -> Buyer:
    """Whoever pressed (buying happens in their private chat only: see PrivateChatOnly)."""
    return Buyer(query.from_user.id, query.from_user.username)


def confirmation_screen(
    catalogue: Catalogue,
    translator: Translator,
    lang: str,
    quote: Quote,
    *,
    old_price: int | None = None,
) -> Screen:
    """Plan, countries, price and the validity rule, with Pay / Back / Cancel.

    For a top-up it names the eSIM the plan goes onto, and Back leads to its plans.
    """
    bundle, esim = quote.bundle, quote.esim
    iso = quote.country_code or ""
    price = format_price(quote.price, lang)
    lines = [_("🧾 <b>Confirm your order</b>"), ""]
    if esim is not None:
        lines.append(
            _("➕ Top-up for your eSIM ending in {tail}").format(tail=html.escape(esim.tail))
        )
    lines += [
        _("📦 Plan: {plan}").format(plan=html.escape(bundle_title(bundle, lang, translator))),
        _("🌍 Countries: {countries}").format(
            countries=render.coverage_text(catalogue, bundle, lang, iso)
        ),
        ngettext(
            "🗓 Valid {n} day from first use",
            "🗓 Valid {n} days from first use",
            bundle.duration_days,
        ).format(n=bundle.duration_days),
        _("💰 Price: {price}").format(price=html.escape(price)),
    ]
    if old_price is not None:
        old = format_price(Price(old_price, quote.price.currency), lang)
        lines += [
            "",
            _("⚠️ The price has changed from {old} to {new}. Please confirm the new price.").format(
                old=html.escape(old), new=html.escape(price)
            ),
        ]
    starts, keep_qr = confirmation_notes(translator, lang)
    lines += ["", starts] if esim is not None else ["", starts, keep_qr]
    lines += ["", _next_step(esim)]
    return Screen("\n".join(lines), _confirmation_keyboard(quote, price))


def _next_step(esim: TopUpEsim | None) -> str:
    if esim is None:
        return _("You pay in Telegram; the eSIM arrives here as a QR code right after.")
    return _(
        "You pay in Telegram; the plan goes onto this eSIM right after. Nothing needs "
        "installing: the eSIM stays as it is on your phone."
    )


def _confirmation_keyboard(quote: Quote, price: str) -> InlineKeyboardMarkup:
    """Pay, then Back (to the eSIM's plans for a top-up, else to the plan's card) and Cancel."""
    back: CallbackData
    if quote.esim is not None:
        back = TopUpCallback(esim_id=quote.esim.id)
    else:
        back = BundleCallback(
            action="show", bundle=quote.bundle.name, iso=quote.country_code or ""
        )
    pay = OrderCallback(action="pay", order=quote.public_id)
    cancel = OrderCallback(action="cancel", order=quote.public_id)
    rows = [[button(_("💳 Pay {price}").format(price=price), pay)]]
    if quote.esim is None:  # a new eSIM can go to someone else; a top-up is for one's own
        gift = GiftCallback(action="buy", order=quote.public_id)
        rows.append([button(_("🎁 Buy as a gift"), gift)])
    rows.append([render.back_button(back), button(_("✖️ Cancel"), cancel)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _single_screen(text: str) -> Screen:
    rows = [[button(_("🏠 Main menu"), MenuCallback(action="main"))]]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


async def on_buy(
    query: CallbackQuery,
    callback_data: BundleCallback,
    checkout: Checkout,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    bundle = catalogue.catalogue.by_name(callback_data.bundle)
    if bundle is None:
        alert(callback_answer, _("This plan is no longer available. Please choose another one."))
        return
    quote = await checkout.start(bundle, buyer_of(query), callback_data.iso or None, language)
    if quote is None:
        alert(callback_answer, _(TOO_MANY_UNPAID))
        return
    await show(query, confirmation_screen(catalogue.catalogue, translator, language, quote))


async def on_cancel(
    query: CallbackQuery,
    callback_data: OrderCallback,
    checkout: Checkout,
    callback_answer: CallbackAnswer,
) -> None:
    outcome = await checkout.cancel(callback_data.order, query.from_user.id)
    if outcome is CancelOutcome.CANCELLED:
        await show(query, _single_screen(_("Order cancelled. You have not been charged.")))
    elif outcome is CancelOutcome.NOT_FOUND:
        alert(callback_answer, _("This order is not available."))
    else:
        alert(callback_answer, _("This order is already paid and can no longer be cancelled."))


async def on_pay(
    query: CallbackQuery,
    callback_data: OrderCallback,
    bot: Bot,
    checkout: Checkout,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    provider_token: str | None,
    callback_answer: CallbackAnswer,
) -> None:
    """Price and stock confirmed with eSIM Go, then the invoice (or why there is none)."""
    step = await checkout.pay(callback_data.order, query.from_user.id)
    if step.quote is None:
        _refuse_invoice(callback_answer, step.outcome)
    elif step.outcome is PayOutcome.PRICE_CHANGED:
        screen = confirmation_screen(
            catalogue.catalogue, translator, language, step.quote, old_price=step.old_price
        )
        await show(query, screen)
    else:
        chat_id = query.from_user.id  # the buyer's private chat
        await bot(_invoice(chat_id, step.quote, translator, language, provider_token))
        await checkout.invoice_sent(step.quote.public_id, query.from_user.id)
        await show(query, _waiting_screen(step.quote))


def _refuse_invoice(callback_answer: CallbackAnswer, outcome: PayOutcome) -> None:
    """Why no invoice: a note for a press while the order is being checked, else an alert."""
    if outcome is PayOutcome.CHECKING:
        callback_answer.text = _(CHECKING)
    else:
        alert(callback_answer, _(PAY_REFUSALS[outcome]))


def _invoice(
    chat_id: int, quote: Quote, translator: Translator, lang: str, provider_token: str | None
) -> SendInvoice:
    """sendInvoice's fields for the quoted order; the payload is its public id."""
    plan = bundle_title(quote.bundle, lang, translator)
    short = bundle_size(quote.bundle, lang, translator)
    if quote.esim is not None:
        title = _("Top-up {plan}").format(plan=short)
        description = _(
            "Travel data plan: {plan}, onto your eSIM ending in {tail}. Valid from first use. "
            "Order {order}. Added right after payment; nothing to install."
        ).format(plan=plan, tail=quote.esim.tail, order=quote.public_id)
    else:
        title = _("eSIM {plan}").format(plan=short)
        description = _(
            "Travel data eSIM: {plan}. Valid from first use. Order {order}. "
            "Delivered here as a QR code right after payment."
        ).format(plan=plan, order=quote.public_id)
    return SendInvoice(
        chat_id=chat_id,
        title=title[:TITLE_LIMIT],
        description=description[:DESCRIPTION_LIMIT],
        payload=quote.public_id,
        currency=quote.price.currency,
        prices=[LabeledPrice(label=plan[:TITLE_LIMIT], amount=quote.price.amount)],
        provider_token=None if quote.price.is_stars else provider_token,
    )


def _waiting_screen(quote: Quote) -> Screen:
    waiting = "\n".join(
        [
            _("🧾 Order <code>{order}</code>: the invoice is below ⬇️").format(
                order=quote.public_id
            ),
            _("It can be paid within 24 hours."),
        ]
    )
    cancel = button(_("✖️ Cancel"), OrderCallback(action="cancel", order=quote.public_id))
    return Screen(waiting, InlineKeyboardMarkup(inline_keyboard=[[cancel]]))


def refusal_text(refusal: PreCheckoutRefusal) -> str:
    """Why Telegram must not take the money, in the user's language (answered within 10 s)."""
    if refusal is PreCheckoutRefusal.WRONG_AMOUNT:
        return _("The price of this order has changed. Please open the plan again.")
    if refusal is PreCheckoutRefusal.ALREADY_PAID:
        return _("This order is already paid.")
    if refusal is PreCheckoutRefusal.EXPIRED:
        return _("This invoice has expired or was cancelled. Please start a new order.")
    if refusal is PreCheckoutRefusal.NO_LONGER_SOLD:
        return _("This plan is no longer available. Please choose another one.")
    if refusal is PreCheckoutRefusal.ESIM_GONE:
        return _("This eSIM is no longer in your account, so it cannot be topped up.")
    return _("This invoice is not valid for your account. Please start a new order.")


async def on_pre_checkout(query: PreCheckoutQuery, checkout: Checkout) -> None:
    refusal = await checkout.pre_checkout(
        query.invoice_payload, query.from_user.id, query.total_amount, query.currency
    )
    if refusal is None:
        await query.answer(ok=True)
        return
    log.info("pre-checkout for order %s refused: %s", query.invoice_payload, refusal.value)
    await query.answer(ok=False, error_message=refusal_text(refusal))


def received_payment(message: Message) -> ReceivedPayment | None:
    """The payment a successful_payment message reports, paid by whoever sent it."""
    payment = message.successful_payment
    if payment is None or message.from_user is None:
        return None
    return ReceivedPayment(
        public_id=payment.invoice_payload,
        user_id=message.from_user.id,
        amount=payment.total_amount,
        currency=payment.currency,
        charge_id=payment.telegram_payment_charge_id,
        provider_charge_id=payment.provider_payment_charge_id,
    )


async def on_successful_payment(message: Message, checkout: Checkout) -> None:
    payment = received_payment(message)
    if payment is None:
        return
    receipt = await checkout.record_payment(payment)
    if receipt.outcome is not PaymentOutcome.RECORDED:
        return  # a charge seen before, or one the worker refunds and announces
    if receipt.topup:
        await message.answer(_("✅ Payment received! ⏳ Adding the plan to your eSIM…"))
    else:
        await message.answer(_("✅ Payment received! ⏳ Preparing your eSIM…"))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="purchase")
    # Buttons only: pre-checkouts and payments are never stopped here.
    router.callback_query.middleware(PrivateChatOnly())
    router.callback_query.register(on_buy, BundleCallback.filter(F.action == "buy"))
    router.callback_query.register(on_pay, OrderCallback.filter(F.action == "pay"))
    router.callback_query.register(on_cancel, OrderCallback.filter(F.action == "cancel"))
    router.pre_checkout_query.register(on_pre_checkout)
    router.message.register(on_successful_payment, F.successful_payment)
    return router
