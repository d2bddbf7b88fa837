"""Gifts: "Buy as a gift" on the confirmation; from /myesims a pending gift's link sent again or
the gift taken back. (Opening a claim link, `/start g<token>`, is in handlers/start_links.py.)

Every gift id in a button is looked up among the presser's own pending gifts by GiftService.
"""

from __future__ import annotations

import html

from aiogram import F, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import GiftCallback, MenuCallback, MyEsimsCallback, OrderCallback
from handlers.common import show
from handlers.guards import alert, refuse
from handlers.render import Screen, back_button, button
from services.catalogue import CatalogueService
from services.formatting import order_title
from services.gift_delivery import GiftDelivery
from services.gifts import ClaimOutcome, GiftService, GiftView, TakeBackOutcome
from services.i18n import N_, Translator
from services.pricing import format_price

CLAIM_TEXTS = {
    ClaimOutcome.CLAIMED: N_(
        "🎁 <b>This eSIM is yours now!</b> Someone sent it to you as a gift.\n\n"
        "Its QR code and install help follow. You will also find it in /myesims, with the data "
        "left and top-ups."
    ),
    ClaimOutcome.ALREADY_YOURS: N_(
        "🎁 This gift is already yours: open /myesims to see it and show its QR code again."
    ),
    ClaimOutcome.TAKEN: N_(
        "😔 Someone else has already claimed this gift: each gift link works only once."
    ),
    ClaimOutcome.TAKEN_BACK: N_("😔 This gift is no longer available: its sender kept it."),
    ClaimOutcome.OWN_GIFT: N_(
        "🎁 This is the link to your own gift. Send it to the person it is for; the gift "
        "waits in /myesims until they open it."
    ),
    ClaimOutcome.NOT_READY: N_(
        "😔 This gift cannot be claimed right now. Please ask the person who sent it."
    ),
    ClaimOutcome.REFUNDED: N_(
        "😔 This gift is no longer available: it was refunded to the person who sent it."
    ),
    ClaimOutcome.UNKNOWN: N_(
        "😔 This gift link does not work. It may be mistyped, or a newer link replaced it: "
        "please ask the person who sent it."
    ),
}
GIFT_QR_HIDDEN = N_(
    "This eSIM is a gift nobody has claimed yet: share its link, or take it back to install "
    "it yourself."
)
NOT_PENDING = N_("This gift has been claimed or taken back already. Open /myesims.")


def claim_screen(outcome: ClaimOutcome) -> Screen:
    rows = [[button(_("🏠 Main menu"), MenuCallback(action="main"))]]
    return Screen(_(CLAIM_TEXTS[outcome]), InlineKeyboardMarkup(inline_keyboard=rows))


def gift_screen(
    gift: GiftView, catalogue: CatalogueService, translator: Translator, lang: str
) -> Screen:
    """The order about to be paid as a gift: what the buyer gets instead of the QR."""
    bundle = catalogue.catalogue.by_name(gift.bundle_name)
    plan = order_title(gift, bundle, lang, translator)
    price = format_price(gift.price, lang)
    lines = [
        _("🎁 <b>Buy as a gift</b>"),
        "",
        _("📦 Plan: {plan}").format(plan=html.escape(plan)),
        _("💰 Price: {price}").format(price=html.escape(price)),
        "",
        _(
            "After payment you get a link instead of the QR code. Send it to the person the "
            "eSIM is for: whoever opens it first gets the eSIM in their own Telegram. Until "
            "then you can take it back in /myesims."
        ),
    ]
    pay = OrderCallback(action="pay", order=gift.order_public_id)
    cancel = OrderCallback(action="cancel", order=gift.order_public_id)
    rows = [
        [button(_("💳 Pay {price}").format(price=price), pay)],
        [button(_("✖️ Cancel"), cancel)],
    ]
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def take_back_screen(gift_id: int) -> Screen:
    text = _(
        "↩️ <b>Take the gift back?</b>\n\nIts link stops working and the eSIM is yours to "
        "install: its QR code comes next."
    )
    rows = [
        [button(_("↩️ Yes, take it back"), GiftCallback(action="keep", id=gift_id))],
        [back_button(MyEsimsCallback(action="list"))],
    ]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


def kept_screen() -> Screen:
    text = _("↩️ The gift is yours again and its link no longer works. Its QR code is below.")
    rows = [[back_button(MyEsimsCallback(action="list"))]]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


async def on_buy_as_gift(
    query: CallbackQuery,
    callback_data: GiftCallback,
    gifts: GiftService,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    gift = await gifts.register_order(callback_data.order, query.from_user.id)
    if gift is None:
        alert(callback_answer, _("This order is not available."))
        return
    await show(query, gift_screen(gift, catalogue, translator, language))


async def on_share_again(
    query: CallbackQuery,
    callback_data: GiftCallback,
    gift_delivery: GiftDelivery,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    """A new link (the old one stops working), sent below."""
    if await gift_delivery.share_again(callback_data.id, query.from_user.id, language):
        callback_answer.text = _("A new link is below; the old one no longer works.")
    else:
        alert(callback_answer, _(NOT_PENDING))


async def on_ask_take_back(query: CallbackQuery, callback_data: GiftCallback) -> None:
    await show(query, take_back_screen(callback_data.id))


async def on_take_back(
    query: CallbackQuery,
    callback_data: GiftCallback,
    gifts: GiftService,
    gift_delivery: GiftDelivery,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    result = await gifts.take_back(callback_data.id, query.from_user.id)
    if result.outcome is TakeBackOutcome.NOT_FOUND or result.gift is None:
        refuse(callback_answer)
    elif result.outcome is TakeBackOutcome.ALREADY_CLAIMED:
        alert(callback_answer, _("Too late: someone has already claimed this gift."))
    else:
        await show(query, kept_screen())
        await gift_delivery.hand_over(result.gift, query.from_user.id, language)


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="gifts")
    router.callback_query.register(on_buy_as_gift, GiftCallback.filter(F.action == "buy"))
    router.callback_query.register(on_share_again, GiftCallback.filter(F.action == "share"))
    router.callback_query.register(on_ask_take_back, GiftCallback.filter(F.action == "ask"))
    router.callback_query.register(on_take_back, GiftCallback.filter(F.action == "keep"))
    return router
