"""Top-up: another bundle onto an eSIM the user already has (same ICCID, nothing to install).

eSIM → plans for its country (and regional ones covering it) → compatibility asked of eSIM Go →
the purchase confirmation, invoice and payment of handlers/purchase.py for a "topup" order.
"""

from __future__ import annotations

import html

from aiogram import Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers import render
from handlers.callbacks import (
    MenuCallback,
    MyEsimsCallback,
    TopUpCallback,
    TopUpPageCallback,
    TopUpPickCallback,
)
from handlers.common import show
from handlers.guards import PrivateChatOnly, alert, refuse
from handlers.purchase import TOO_MANY_UNPAID, buyer_of, confirmation_screen
from handlers.render import Screen, back_button, button
from services.catalogue import Catalogue, CatalogueService
from services.checkout import Checkout, PickOutcome, PickStep, TopUpEsim, TopUpPlans
from services.esimgo.models import Bundle
from services.formatting import WORLD, bundle_area
from services.i18n import N_, Translator
from services.orders import TopUpStatus
from services.pricing import PricingService


def _place(catalogue: Catalogue, plans: TopUpPlans, translator: Translator, lang: str) -> str:
    if plans.iso is not None:
        return render.country_label(catalogue, plans.iso, lang)
    if plans.area is not None:
        return f"{WORLD} {bundle_area(plans.area, lang, translator)}"
    return WORLD


PICK_REFUSALS = {
    PickOutcome.UNCHECKED: N_(
        "😔 We cannot check this plan against your eSIM right now. "
        "Please try again in a few minutes."
    ),
    PickOutcome.TOO_MANY: TOO_MANY_UNPAID,
}


def plans_screen(
    catalogue: Catalogue,
    pricing: PricingService,
    translator: Translator,
    lang: str,
    plans: TopUpPlans,
    esim: TopUpEsim,
    *,
    page: int,
    notice: str | None = None,
) -> Screen:
    """The plans that may go onto the eSIM, its country's own first; paged; Back to the eSIM."""

    def pick(bundle: Bundle, page: int) -> TopUpPickCallback:
        return TopUpPickCallback(esim_id=esim.id, bundle=bundle.name, page=page)

    def turn(page: int) -> TopUpPageCallback:
        return TopUpPageCallback(esim_id=esim.id, page=page)

    header = bool(plans.own and plans.shared)
    rows = render.bundle_rows(
        plans.own,
        plans.shared,
        pricing,
        translator,
        lang,
        page,
        header=header,
        pick=pick,
        turn=turn,
    )
    rows.append([back_button(MyEsimsCallback(action="esim", id=esim.id))])
    lines = []
    if notice:
        lines += [notice, ""]
    lines += [
        _("➕ <b>Top up your eSIM ending in {tail}</b>").format(tail=html.escape(esim.tail)),
        "",
        _("Plans for {place} that can go onto this eSIM.").format(
            place=html.escape(_place(catalogue, plans, translator, lang))
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


def _no_plans_screen(esim_id: int) -> Screen:
    text = _(
        "😔 We cannot offer plans for this eSIM right now: we do not know which country it was "
        "bought for, or nothing is sold there at the moment. Please try again later or buy a "
        "new eSIM."
    )
    rows = [
        [button(_("🛒 Buy eSIM"), MenuCallback(action="buy"))],
        [back_button(MyEsimsCallback(action="esim", id=esim_id))],
    ]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


async def _show_plans(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    plans: TopUpPlans,
    page: int,
    look: tuple[CatalogueService, PricingService, Translator, str],
    notice: str | None = None,
) -> None:
    """The eSIM's plans, or why there are none (refused if it is not the presser's)."""
    catalogue, pricing, translator, lang = look
    esim = plans.esim
    if plans.status is TopUpStatus.NOT_FOUND or esim is None:
        refuse(callback_answer)
    elif plans.status is TopUpStatus.DELETED:
        await show(query, _deleted_screen())
    elif plans.status is TopUpStatus.NO_PLANS:
        await show(query, _no_plans_screen(esim.id))
    else:
        screen = plans_screen(
            catalogue.catalogue, pricing, translator, lang, plans, esim, page=page, notice=notice
        )
        await show(query, screen)


async def on_topup(
    query: CallbackQuery,
    callback_data: TopUpCallback | TopUpPageCallback,
    checkout: Checkout,
    catalogue: CatalogueService,
    pricing: PricingService,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    """Top up pressed (first page of plans) or a page of them turned."""
    plans = await checkout.topup_plans(callback_data.esim_id, query.from_user.id)
    page = callback_data.page if isinstance(callback_data, TopUpPageCallback) else 0
    look = (catalogue, pricing, translator, language)
    await _show_plans(query, callback_answer, plans, page, look)


async def on_pick(
    query: CallbackQuery,
    callback_data: TopUpPickCallback,
    checkout: Checkout,
    catalogue: CatalogueService,
    pricing: PricingService,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    """A plan picked: checked against the eSIM with eSIM Go, then the confirmation."""
    buyer = buyer_of(query)
    step = await checkout.pick_topup(callback_data.esim_id, callback_data.bundle, buyer, language)
    if step.quote is not None:
        await show(
            query, confirmation_screen(catalogue.catalogue, translator, language, step.quote)
        )
    elif step.outcome in PICK_REFUSALS:
        alert(callback_answer, _(PICK_REFUSALS[step.outcome]))
    else:
        notice = _pick_notice(step, callback_answer, pricing, translator, language)
        look = (catalogue, pricing, translator, language)
        await _show_plans(query, callback_answer, step.plans, callback_data.page, look, notice)


def _pick_notice(
    step: PickStep,
    callback_answer: CallbackAnswer,
    pricing: PricingService,
    translator: Translator,
    lang: str,
) -> str | None:
    """Why the picked plan was not taken, above the plans shown again."""
    if step.outcome is PickOutcome.NOT_OFFERED:
        callback_answer.text = _("This plan is no longer available. Please choose another one.")
    if step.outcome is not PickOutcome.INCOMPATIBLE or step.bundle is None:
        return None
    label = render.bundle_label(
        step.bundle, pricing, translator, lang, shared=step.bundle.is_multi_country
    )
    return _(
        "⚠️ The plan {plan} cannot be added to this eSIM: it runs on a different network "
        "provider. Please choose another plan."
    ).format(plan=html.escape(label))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="topup")
    router.callback_query.middleware(PrivateChatOnly())
    router.callback_query.register(on_topup, TopUpCallback.filter())
    router.callback_query.register(on_topup, TopUpPageCallback.filter())
    router.callback_query.register(on_pick, TopUpPickCallback.filter())
    return router
