"""Top-up: another bundle onto an eSIM the user already has (same ICCID, nothing to install).

eSIM → plans for its country (and regional ones covering it) → compatibility asked of eSIM Go →
the purchase confirmation, invoice and payment of handlers/purchase.py for a "topup" order.
"""

from __future__ import annotations

import html

from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Esim
from handlers import render
from handlers.callbacks import MenuCallback
from handlers.common import show
from handlers.myesims_render import MyEsimsCallback, TopUpCallback
from handlers.purchase import confirmation_screen, esim_tail, start_order
from handlers.render import Screen, back_button, button
from services.catalogue import CatalogueService
from services.esimgo.models import Bundle
from services.orders import Compatibility, OrderService, TopUpStatus, TopUpTarget
from services.pricing import PricingService


class TopUpPageCallback(CallbackData, prefix="tupp"):
    """One page of the plans offered for an eSIM (the first page is `TopUpCallback`)."""

    esim_id: int
    page: int = 0


class TopUpPickCallback(CallbackData, prefix="tup"):
    """A bundle chosen for an eSIM: compatibility check, then the confirm card."""

    esim_id: int
    bundle: str
    page: int = 0


def topup_callback_data(esim: Esim) -> str:
    """The "Top up" button's data for an eSIM (notifications; /myesims uses the same factory)."""
    return TopUpCallback(esim_id=esim.id).pack()


def open_esim_callback_data(esim_id: int) -> str:
    """The button under a delivered top-up that opens the eSIM in /myesims."""
    return MyEsimsCallback(action="esim", id=esim_id).pack()


def _place(catalogue: CatalogueService, target: TopUpTarget, lang: str) -> str:
    if target.iso is not None:
        return render.country_label(catalogue.catalogue, target.iso, lang)
    if target.area is not None:
        return f"🌍 {render.bundle_area(target.area, lang)}"
    return "🌍"


def plans_screen(
    catalogue: CatalogueService,
    pricing: PricingService,
    lang: str,
    target: TopUpTarget,
    esim: Esim,
    page: int,
    notice: str | None = None,
) -> Screen:
    """The plans that may go onto the eSIM, its country's own first; paged; Back to the eSIM."""

    def pick(bundle: Bundle, page: int) -> TopUpPickCallback:
        return TopUpPickCallback(esim_id=esim.id, bundle=bundle.name, page=page)

    def turn(page: int) -> TopUpPageCallback:
        return TopUpPageCallback(esim_id=esim.id, page=page)

    header = bool(target.own and target.shared)
    rows = render.bundle_rows(
        target.own, target.shared, pricing, lang, page, header=header, pick=pick, turn=turn
    )
    rows.append([back_button(MyEsimsCallback(action="esim", id=esim.id))])
    lines = []
    if notice:
        lines += [notice, ""]
    lines += [
        _("➕ <b>Top up your eSIM ending in {tail}</b>").format(tail=html.escape(esim_tail(esim))),
        "",
        _("Plans for {place} that can go onto this eSIM.").format(
            place=html.escape(_place(catalogue, target, lang))
        ),
        _("Nothing to install: the new plan is added to the eSIM you already have."),
        "",
        _("Choose a plan:"),
    ]
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def _deleted_screen() -> Screen:
    text = _(
        "🗑 This eSIM was deleted by the network after a long time without a plan, so nothing "
        "can be added to it any more. Please buy a new eSIM."
    )
    rows = [
        [button(_("🛒 Buy eSIM"), MenuCallback(action="buy"))],
        [back_button(MyEsimsCallback(action="list"))],
    ]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


def _no_plans_screen(esim: Esim) -> Screen:
    text = _(
        "😔 We cannot offer plans for this eSIM right now: we do not know which country it was "
        "bought for, or nothing is sold there at the moment. Please try again later or buy a "
        "new eSIM."
    )
    rows = [
        [button(_("🛒 Buy eSIM"), MenuCallback(action="buy"))],
        [back_button(MyEsimsCallback(action="esim", id=esim.id))],
    ]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


def _refuse(callback_answer: CallbackAnswer) -> None:
    callback_answer.text = _("This eSIM or order is not available. Open /myesims for yours.")
    callback_answer.show_alert = True


async def _target(
    query: CallbackQuery,
    esim_id: int,
    session: AsyncSession,
    orders: OrderService,
    callback_answer: CallbackAnswer,
) -> tuple[TopUpTarget, Esim] | None:
    """The eSIM and its plans; None when something else was shown instead (or refused)."""
    target = await orders.topup_target(session, esim_id, query.from_user.id)
    esim = target.esim
    if target.status is TopUpStatus.NOT_FOUND or esim is None:
        _refuse(callback_answer)
        return None
    if target.status is TopUpStatus.DELETED:
        await show(query, _deleted_screen())
        return None
    if target.status is TopUpStatus.NO_PLANS:
        await show(query, _no_plans_screen(esim))
        return None
    return target, esim


async def on_topup(
    query: CallbackQuery,
    callback_data: TopUpCallback | TopUpPageCallback,
    session: AsyncSession,
    language: str,
    catalogue: CatalogueService,
    pricing: PricingService,
    orders: OrderService,
    callback_answer: CallbackAnswer,
) -> None:
    """Top up pressed (first page of plans) or a page of them turned."""
    found = await _target(query, callback_data.esim_id, session, orders, callback_answer)
    if found is not None:
        target, esim = found
        page = callback_data.page if isinstance(callback_data, TopUpPageCallback) else 0
        await show(query, plans_screen(catalogue, pricing, language, target, esim, page))


async def on_pick(
    query: CallbackQuery,
    callback_data: TopUpPickCallback,
    session: AsyncSession,
    language: str,
    catalogue: CatalogueService,
    pricing: PricingService,
    orders: OrderService,
    callback_answer: CallbackAnswer,
) -> None:
    """Ask eSIM Go whether the plan fits this eSIM before any order or invoice exists."""
    found = await _target(query, callback_data.esim_id, session, orders, callback_answer)
    if found is None:
        return
    target, esim = found
    page = callback_data.page
    bundle = catalogue.catalogue.by_name(callback_data.bundle)
    if bundle is None or not target.offers(bundle.name):
        callback_answer.text = _("This plan is no longer available. Please choose another one.")
        await show(query, plans_screen(catalogue, pricing, language, target, esim, page))
        return
    compatibility = await orders.check_compatible(esim.iccid, bundle.name)
    if compatibility is Compatibility.UNAVAILABLE:
        callback_answer.text = _(
            "😔 We cannot check this plan against your eSIM right now. "
            "Please try again in a few minutes."
        )
        callback_answer.show_alert = True
        return
    if compatibility is Compatibility.INCOMPATIBLE:
        label = render.bundle_label(bundle, pricing, language, shared=bundle.is_multi_country)
        notice = _(
            "⚠️ The plan {plan} cannot be added to this eSIM: it runs on a different network "
            "provider. Please choose another plan."
        ).format(plan=html.escape(label))
        await show(query, plans_screen(catalogue, pricing, language, target, esim, page, notice))
        return
    order = await start_order(
        query, session, orders, catalogue, bundle, target.iso, language, topup_iccid=esim.iccid
    )
    await show(query, confirmation_screen(catalogue, language, bundle, order, esim=esim))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="topup")
    router.callback_query.register(on_topup, TopUpCallback.filter())
    router.callback_query.register(on_topup, TopUpPageCallback.filter())
    router.callback_query.register(on_pick, TopUpPickCallback.filter())
    return router
