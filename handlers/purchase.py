"""Buying: the bundle card's Buy → confirmation → validated invoice → pre-checkout → payment.

Top-ups (handlers/topup.py) create their order elsewhere and then share everything from the
confirmation on; the texts say where the plan goes and that nothing needs installing.
"""

from __future__ import annotations

import asyncio
import html
import logging
from datetime import UTC, datetime
from typing import Literal

from aiogram import Bot, F, Router
from aiogram.filters.callback_data import CallbackData
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
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.messenger import AiogramMessenger
from db.models import Esim, Order, OrderStatus
from handlers import render
from handlers.callbacks import BundleCallback, MenuCallback
from handlers.common import show
from handlers.myesims_render import TopUpCallback
from handlers.render import Screen, button
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.esimgo.models import Bundle
from services.orders import TOPUP, OrderService, PaymentOutcome, PreCheckoutRefusal, Prepared
from services.pricing import Price, format_price

log = logging.getLogger(__name__)

# Telegram's limits on invoice texts.
TITLE_LIMIT = 32
DESCRIPTION_LIMIT = 255


class OrderCallback(CallbackData, prefix="po"):
    """Pay for or cancel one order (public id); the owner is checked on every press."""

    action: Literal["pay", "cancel"]
    order: str


def _order_price(order: Order) -> Price:
    return Price(order.price, order.price_currency)


def _plan_title(catalogue: CatalogueService, bundle: Bundle, lang: str, iso: str) -> str:
    if bundle.is_multi_country:
        place = f"🌍 {render.bundle_area(bundle, lang)}"
    else:
        place = render.country_label(catalogue.catalogue, bundle.coverage[0].iso, lang)
    return " · ".join(
        [place, render.format_data(bundle, lang), render.format_days(bundle.duration_days)]
    )


def esim_tail(esim: Esim) -> str:
    """How the user tells eSIMs apart: the last digits of the ICCID ("…4826")."""
    return "…" + esim.iccid[-4:]


def confirmation_screen(
    catalogue: CatalogueService,
    lang: str,
    bundle: Bundle,
    order: Order,
    *,
    old_price: int | None = None,
    esim: Esim | None = None,
) -> Screen:
    """Plan, countries, price and the validity rule, with Pay / Back / Cancel.

    With `esim` (a top-up) it names the eSIM the plan goes onto, and Back leads to its plans.
    """
    iso = order.country_code or ""
    price = format_price(_order_price(order), lang)
    lines = [_("🧾 <b>Confirm your order</b>"), ""]
    if esim is not None:
        lines.append(
            _("➕ Top-up for your eSIM ending in {tail}").format(tail=html.escape(esim_tail(esim)))
        )
    lines += [
        _("📦 Plan: {plan}").format(plan=html.escape(_plan_title(catalogue, bundle, lang, iso))),
        _("🌍 Countries: {countries}").format(
            countries=render.coverage_text(catalogue.catalogue, bundle, lang, iso)
        ),
        ngettext(
            "🗓 Valid {n} day from first use",
            "🗓 Valid {n} days from first use",
            bundle.duration_days,
        ).format(n=bundle.duration_days),
        _("💰 Price: {price}").format(price=html.escape(price)),
    ]
    if old_price is not None:
        old = format_price(Price(old_price, order.price_currency), lang)
        lines += [
            "",
            _("⚠️ The price has changed from {old} to {new}. Please confirm the new price.").format(
                old=html.escape(old), new=html.escape(price)
            ),
        ]
    back: CallbackData
    if esim is not None:
        lines += [
            "",
            _(
                "You pay in Telegram; the plan goes onto this eSIM right after. Nothing needs "
                "installing: the eSIM stays as it is on your phone."
            ),
        ]
        back = TopUpCallback(esim_id=esim.id)
    else:
        lines += ["", _("You pay in Telegram; the eSIM arrives here as a QR code right after.")]
        back = BundleCallback(action="show", bundle=bundle.name, iso=iso)
    rows = [
        [
            button(
                _("💳 Pay {price}").format(price=price),
                OrderCallback(action="pay", order=order.public_id),
            )
        ],
        [
            render.back_button(back),
            button(_("✖️ Cancel"), OrderCallback(action="cancel", order=order.public_id)),
        ],
    ]
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def _single_screen(text: str) -> Screen:
    rows = [[button(_("🏠 Main menu"), MenuCallback(action="main"))]]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


async def on_buy(
    query: CallbackQuery,
    callback_data: BundleCallback,
    session: AsyncSession,
    language: str,
    catalogue: CatalogueService,
    orders: OrderService,
    callback_answer: CallbackAnswer,
) -> None:
    bundle = catalogue.catalogue.by_name(callback_data.bundle)
    if bundle is None:
        callback_answer.text = _("This plan is no longer available. Please choose another one.")
        callback_answer.show_alert = True
        return
    order = await start_order(
        query, session, orders, catalogue, bundle, callback_data.iso or None, language
    )
    await show(query, confirmation_screen(catalogue, language, bundle, order))


async def start_order(
    query: CallbackQuery,
    session: AsyncSession,
    orders: OrderService,
    catalogue: CatalogueService,
    bundle: Bundle,
    iso: str | None,
    language: str,
    topup_iccid: str | None = None,
) -> Order:
    """The order awaiting payment for whoever pressed; a one-country plan names its country."""
    if iso is None and not bundle.is_multi_country and bundle.coverage:
        iso = bundle.coverage[0].iso
    user = query.from_user
    return await orders.start(
        session,
        bundle=bundle,
        user_id=user.id,
        username=user.username,
        chat_id=query.message.chat.id if query.message is not None else user.id,
        language=language,
        country_code=iso,
        country_name=catalogue.catalogue.country_name(iso, "en") if iso else None,
        topup_iccid=topup_iccid,
    )


async def on_cancel(
    query: CallbackQuery,
    callback_data: OrderCallback,
    session: AsyncSession,
    orders: OrderService,
    callback_answer: CallbackAnswer,
) -> None:
    order = await orders.owned(session, callback_data.order, query.from_user.id)
    if order is None:
        callback_answer.text = _("This order is not available.")
        callback_answer.show_alert = True
        return
    if await orders.cancel(session, order) or order.status == OrderStatus.CANCELLED.value:
        await show(query, _single_screen(_("Order cancelled. You have not been charged.")))
        return
    callback_answer.text = _("This order is already paid and can no longer be cancelled.")
    callback_answer.show_alert = True


async def on_pay(
    query: CallbackQuery,
    callback_data: OrderCallback,
    bot: Bot,
    session: AsyncSession,
    language: str,
    settings: Settings,
    catalogue: CatalogueService,
    orders: OrderService,
    alerts: AdminAlerts,
    callback_answer: CallbackAnswer,
) -> None:
    order = await orders.owned(session, callback_data.order, query.from_user.id)
    if order is None:
        callback_answer.text = _("This order is not available.")
        callback_answer.show_alert = True
        return
    bundle = catalogue.catalogue.by_name(order.bundle_name)
    if bundle is None:
        await orders.cancel(session, order, reason="bundle withdrawn")
        callback_answer.text = _("This plan is no longer available. Please choose another one.")
        callback_answer.show_alert = True
        return
    prepared = await orders.prepare_invoice(session, order)
    order = prepared.order
    if prepared.outcome is Prepared.ESIM_GONE:
        callback_answer.text = _(
            "This eSIM is no longer in your account, so it cannot be topped up. "
            "Open /myesims for yours."
        )
        callback_answer.show_alert = True
        return
    if prepared.outcome is Prepared.NOT_PAYABLE:
        if order.status == OrderStatus.CANCELLED.value:
            text = _("This order has expired. Please start again from the plan.")
        else:
            text = _("This order is already paid.")
        callback_answer.text = text
        callback_answer.show_alert = True
        return
    if prepared.outcome in (Prepared.UNAVAILABLE, Prepared.LOW_BALANCE):
        if prepared.outcome is Prepared.LOW_BALANCE:
            today = datetime.now(UTC).date().isoformat()
            await alerts.alert_once(
                AiogramMessenger(bot),
                f"low-balance:{today}",
                f"⚠️ eSIM Go balance is {prepared.balance}: too low for {order.bundle_name} "
                f"(cost {order.cost}). Sales of it are paused until the account is topped up.",
            )
        callback_answer.text = _(
            "😔 This plan is temporarily unavailable. Please try again later or pick another one."
        )
        callback_answer.show_alert = True
        return
    if prepared.outcome is Prepared.PRICE_CHANGED:
        screen = confirmation_screen(
            catalogue, language, bundle, order, old_price=prepared.old_price, esim=prepared.esim
        )
        await show(query, screen)
        return
    await _send_invoice(bot, query, settings, catalogue, language, bundle, order, prepared.esim)


def _provider_token(settings: Settings) -> str | None:
    return settings.payment_provider_token.get_secret_value() or None


async def _send_invoice(
    bot: Bot,
    query: CallbackQuery,
    settings: Settings,
    catalogue: CatalogueService,
    lang: str,
    bundle: Bundle,
    order: Order,
    esim: Esim | None,
) -> None:
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    plan = _plan_title(catalogue, bundle, lang, order.country_code or "")
    short = f"{render.format_data(bundle, lang)} · {render.format_days(bundle.duration_days)}"
    if esim is not None:
        title = _("Top-up {plan}").format(plan=short)
        description = _(
            "Travel data plan: {plan}, onto your eSIM ending in {tail}. Valid from first use. "
            "Order {order}. Added right after payment; nothing to install."
        ).format(plan=plan, tail=esim_tail(esim), order=order.public_id)
    else:
        title = _("eSIM {plan}").format(plan=short)
        description = _(
            "Travel data eSIM: {plan}. Valid from first use. Order {order}. "
            "Delivered here as a QR code right after payment."
        ).format(plan=plan, order=order.public_id)
    stars = order.price_currency == "XTR"
    await bot.send_invoice(
        chat_id=chat_id,
        title=title[:TITLE_LIMIT],
        description=description[:DESCRIPTION_LIMIT],
        payload=order.public_id,
        currency=order.price_currency,
        prices=[LabeledPrice(label=plan[:TITLE_LIMIT], amount=order.price)],
        provider_token=None if stars else _provider_token(settings),
    )
    log.info("order %s: invoice sent (%s %s)", order.public_id, order.price, order.price_currency)
    waiting = "\n".join(
        [
            _("🧾 Order <code>{order}</code>: the invoice is below ⬇️").format(
                order=order.public_id
            ),
            _("It can be paid within 24 hours."),
        ]
    )
    cancel = button(_("✖️ Cancel"), OrderCallback(action="cancel", order=order.public_id))
    await show(query, Screen(waiting, InlineKeyboardMarkup(inline_keyboard=[[cancel]])))


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


async def on_pre_checkout(
    query: PreCheckoutQuery, session: AsyncSession, orders: OrderService
) -> None:
    refusal = await orders.check_pre_checkout(
        session,
        public_id=query.invoice_payload,
        user_id=query.from_user.id,
        amount=query.total_amount,
        currency=query.currency,
    )
    if refusal is None:
        await query.answer(ok=True)
        return
    log.info("pre-checkout for order %s refused: %s", query.invoice_payload, refusal.value)
    await query.answer(ok=False, error_message=refusal_text(refusal))


async def on_successful_payment(
    message: Message,
    session: AsyncSession,
    orders: OrderService,
    fulfilment_wake: asyncio.Event,
) -> None:
    payment = message.successful_payment
    if payment is None or message.from_user is None:
        return
    result = await orders.record_payment(
        session,
        public_id=payment.invoice_payload,
        user_id=message.from_user.id,
        amount=payment.total_amount,
        currency=payment.currency,
        charge_id=payment.telegram_payment_charge_id,
        provider_charge_id=payment.provider_payment_charge_id,
    )
    if result.outcome is PaymentOutcome.DUPLICATE:
        return
    # The worker starts at once, while the user reads the answer; it also refunds (and
    # announces) payments we cannot serve.
    fulfilment_wake.set()
    if result.outcome is PaymentOutcome.RECORDED:
        if result.order is not None and result.order.kind == TOPUP:
            await message.answer(_("✅ Payment received! ⏳ Adding the plan to your eSIM…"))
        else:
            await message.answer(_("✅ Payment received! ⏳ Preparing your eSIM…"))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="purchase")
    router.callback_query.register(on_buy, BundleCallback.filter(F.action == "buy"))
    router.callback_query.register(on_pay, OrderCallback.filter(F.action == "pay"))
    router.callback_query.register(on_cancel, OrderCallback.filter(F.action == "cancel"))
    router.pre_checkout_query.register(on_pre_checkout)
    router.message.register(on_successful_payment, F.successful_payment)
    return router
