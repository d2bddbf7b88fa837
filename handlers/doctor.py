"""The buttons "It doesn't work" and "Refund" on an eSIM of /myesims: the eSIM doctor's
diagnosis, the network refresh, the support ticket, and the self-refund of an unused eSIM.

OwnedOnly lets each button work only for the eSIM's (the order's) owner; the services check
again. Checks that ask eSIM Go answer the button first: the user sees at once that it works.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.action_render import Place, esim_place, keyboard_rows, render_screen
from handlers.callbacks import DoctorCallback, MyEsimsCallback, RefundCallback
from handlers.common import show
from handlers.guards import NOT_YOURS, OwnedOnly
from handlers.render import Screen, back_button
from services.diagnosis import Diagnosis
from services.doctor import EsimDoctor
from services.doctor_texts import (
    diagnosis_screen,
    esim_card_rows,
    refresh_confirm_screen,
    refresh_result_screen,
    refund_confirm_screen,
    refund_result_screen,
    ticket_screen,
)
from services.i18n import Translator
from services.myesims import EsimView
from services.self_refund import RefundOffer, RefundVerdict, SelfRefunds


async def answer_now(query: CallbackQuery, callback_answer: CallbackAnswer, text: str) -> None:
    """Answer the button before a call that may take seconds (Telegram spins until then)."""
    callback_answer.disable()
    await query.answer(text)


async def card_rows(
    refunds: SelfRefunds, esim: EsimView, translator: Translator, lang: str
) -> list[list[InlineKeyboardButton]]:
    """What the eSIM's card gains: "It doesn't work", and "Refund" while it may be refunded."""
    offers = await refunds.offers(esim.telegram_user_id, esim.id)
    return keyboard_rows(esim_card_rows(offers, translator, lang), esim_place(esim.id))


def gone_screen() -> Screen:
    """The eSIM left the user's list while they looked at it."""
    back = back_button(MyEsimsCallback(action="list"))
    return Screen(_(NOT_YOURS), InlineKeyboardMarkup(inline_keyboard=[[back]]))


def diagnosis_place(diagnosis: Diagnosis) -> Place:
    """Back to the eSIM's card; plans offered for the country the phone is in keep that
    country for their card's Back."""
    seen = diagnosis.location
    return esim_place(diagnosis.esim_id, iso=seen.country if seen and seen.country else "")


async def on_check(
    query: CallbackQuery,
    owned: EsimView,
    doctor: EsimDoctor,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    await answer_now(query, callback_answer, _("🩺 Checking your eSIM with the network…"))
    diagnosis = await doctor.diagnose(query.from_user.id, owned.id)
    if diagnosis is None:
        await show(query, gone_screen())
        return
    screen = diagnosis_screen(diagnosis, translator, language)
    await show(query, render_screen(screen, diagnosis_place(diagnosis)))


async def on_ask_refresh(
    query: CallbackQuery, owned: EsimView, translator: Translator, language: str
) -> None:
    screen = refresh_confirm_screen(translator, language)
    await show(query, render_screen(screen, esim_place(owned.id)))


async def on_refresh(
    query: CallbackQuery,
    owned: EsimView,
    doctor: EsimDoctor,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    await answer_now(query, callback_answer, _("🔄 Refreshing the network connection…"))
    result = await doctor.refresh(query.from_user.id, owned.id)
    if result is None:
        await show(query, gone_screen())
        return
    screen = refresh_result_screen(result, translator, language)
    await show(query, render_screen(screen, esim_place(owned.id)))


async def on_ticket(
    query: CallbackQuery,
    owned: EsimView,
    doctor: EsimDoctor,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    await answer_now(query, callback_answer, _("📨 Sending your request to our support team…"))
    user = query.from_user
    result = await doctor.open_ticket(
        user.id, owned.id, user_name=user.full_name, username=user.username, language=language
    )
    if result is None:
        await show(query, gone_screen())
        return
    screen = ticket_screen(result.outcome, translator, language)
    await show(query, render_screen(screen, esim_place(owned.id)))


def refund_place(verdict: RefundVerdict | None, esim_id: int) -> Place:
    """Back to the eSIM's card; to the list once the order is refunded (the eSIM may be gone)."""
    if verdict is RefundVerdict.ALREADY_REFUNDED:
        return Place(MyEsimsCallback(action="list"), esim_id=esim_id)
    return esim_place(esim_id)


async def on_ask_refund(
    query: CallbackQuery,
    callback_data: RefundCallback,
    refunds: SelfRefunds,
    translator: Translator,
    language: str,
) -> None:
    """The confirmation (what goes back, until when), or why this order cannot be refunded."""
    found = await refunds.offer(query.from_user.id, callback_data.order_id)
    if isinstance(found, RefundOffer):
        screen, verdict = refund_confirm_screen(found, translator, language), None
    else:
        screen = refund_result_screen(found.verdict, found.offer, translator, language)
        verdict = found.verdict
    await show(query, render_screen(screen, refund_place(verdict, callback_data.esim_id)))


async def on_refund(
    query: CallbackQuery,
    callback_data: RefundCallback,
    refunds: SelfRefunds,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    await answer_now(query, callback_answer, _("↩️ Refunding…"))
    result = await refunds.refund(query.from_user.id, callback_data.order_id)
    screen = refund_result_screen(result.verdict, result.offer, translator, language)
    await show(query, render_screen(screen, refund_place(result.verdict, callback_data.esim_id)))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="doctor")
    router.callback_query.middleware(OwnedOnly())
    router.callback_query.register(on_check, DoctorCallback.filter(F.action == "check"))
    router.callback_query.register(
        on_ask_refresh, DoctorCallback.filter(F.action == "ask_refresh")
    )
    router.callback_query.register(on_refresh, DoctorCallback.filter(F.action == "refresh"))
    router.callback_query.register(on_ticket, DoctorCallback.filter(F.action == "ticket"))
    router.callback_query.register(on_ask_refund, RefundCallback.filter(F.action == "ask"))
    router.callback_query.register(on_refund, RefundCallback.filter(F.action == "do"))
    return router
