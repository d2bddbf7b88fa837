"""What the doctor, the phone check and the self-refund say: every screen in English and in
Russian, as HTML Telegram accepts, with every placeholder filled and a way on or back."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.actions import Action, TextScreen
from services.diagnosis import Diagnosis, Finding, LiveState, PlanOffer, PlanView, Sighting
from services.doctor import RefreshOutcome, RefreshResult, TicketOutcome
from services.doctor_texts import (
    diagnosis_screen,
    esim_card_rows,
    refresh_confirm_screen,
    refresh_result_screen,
    refund_confirm_screen,
    refund_result_screen,
    ticket_screen,
)
from services.esimgo.models import Bundle, Country
from services.i18n import Translator
from services.phone_check import (
    PhoneCheckStep,
    confirmation_notes,
    phone_check,
    phone_check_button,
    self_refund_rule,
)
from services.pricing import Price
from services.self_refund import RefundOffer, RefundVerdict
from tests.fakes.telegram import parse_html

TRANSLATOR = Translator()
NOW = datetime(2026, 12, 12, 14, 5, tzinfo=UTC)
LEFTOVER = re.compile(r"\{[a-z_]+\}")
PLAN = PlanView(
    bundle_name="esim_5GB_30D_TH_V2",
    state="active",
    unlimited=False,
    initial_bytes=5_000_000_000,
    remaining_bytes=2_400_000_000,
    assigned_at=NOW - timedelta(days=3),
    start_at=NOW - timedelta(days=1),
    end_at=NOW + timedelta(days=29),
    countries=("TH",),
    duration_days=30,
)
THAILAND = Bundle(
    name="esim_5GB_30D_TH_V2",
    description="eSIM, 5GB, 30 Days, Thailand, V2",
    countries=(Country("TH", "Thailand", "Asia"),),
    roaming=(Country("LA", "Laos", "Asia"),),
    data_mb=5000,
    duration_days=30,
    unlimited=False,
    price=Decimal("9.50"),
)
OFFER = RefundOffer(1, "ABC123", "esim_5GB_30D_TH_V2", False, Price(450, "XTR"), NOW)


def diagnosis(finding: Finding, plan: PlanView | None = PLAN, **live: object) -> Diagnosis:
    state = LiveState(
        read_at=NOW,
        profile_status="Installed",
        first_installed_at=NOW - timedelta(days=2),
        plans=(plan,) if plan else (),
        events=(),
        location=Sighting("FR", "FR", "Orange France", NOW - timedelta(minutes=5)),
        location_read=True,
    )
    offers = (PlanOffer("esim_1GB_7D_FR_V2", 1000, 7, False),)
    return Diagnosis(
        esim_id=1,
        iccid="8944538532008160222",
        finding=finding,
        checked_at=NOW,
        live=None if finding is Finding.UNAVAILABLE else state,
        plan=plan,
        offers=offers if finding is Finding.WRONG_COUNTRY else (),
        lpa="LPA:1$rsp.example$ABC",
        error="HTTP 500" if finding is Finding.UNAVAILABLE else None,
    )


def all_screens(lang: str) -> dict[str, TextScreen]:
    """Every screen these services build, by name, in one language."""
    result: dict[str, TextScreen] = {}
    for finding in Finding:
        plan = replace(PLAN, state="depleted", remaining_bytes=0)
        if finding is not Finding.PLAN_ENDED:
            plan = PLAN
        result[finding.value] = diagnosis_screen(diagnosis(finding, plan), TRANSLATOR, lang)
    no_plan = diagnosis(Finding.PLAN_ENDED, None)
    result["no plan"] = diagnosis_screen(no_plan, TRANSLATOR, lang)
    for step in PhoneCheckStep:
        result[f"check {step}"] = phone_check(step, TRANSLATOR, lang, THAILAND)
    result["check from the menu"] = phone_check(PhoneCheckStep.COUNTRIES, TRANSLATOR, lang)
    result["refresh?"] = refresh_confirm_screen(TRANSLATOR, lang)
    for outcome in RefreshOutcome:
        refreshed = RefreshResult(outcome, NOW)
        result[f"refresh {outcome}"] = refresh_result_screen(refreshed, TRANSLATOR, lang)
    for ticket in TicketOutcome:
        result[f"ticket {ticket}"] = ticket_screen(ticket, TRANSLATOR, lang)
    topup = RefundOffer(2, "DEF456", "esim_1GB_7D_TH_V2", True, Price(699, "USD"), NOW)
    for offer in (OFFER, topup):
        result[f"refund? {offer.public_id}"] = refund_confirm_screen(offer, TRANSLATOR, lang)
    for verdict in RefundVerdict:
        result[f"refund {verdict}"] = refund_result_screen(verdict, OFFER, TRANSLATOR, lang)
    return result


@pytest.mark.parametrize("name", list(all_screens("en")))
def test_every_screen_is_valid_html_fully_filled_and_translated(name: str) -> None:
    english, russian = all_screens("en")[name], all_screens("ru")[name]
    for screen in (english, russian):
        plain = parse_html(screen.text)  # raises like Telegram on broken markup
        assert not LEFTOVER.search(plain), (name, plain)
        assert screen.buttons, f"{name}: a screen with no way on or back"
        for row in screen.buttons:
            for button in row:
                assert button.text and not LEFTOVER.search(button.text), (name, button)
                assert bool(button.url) is (button.action in _URL_ACTIONS), (name, button)
    assert english.text != russian.text, name
    assert [b.action for r in english.buttons for b in r] == [
        b.action for r in russian.buttons for b in r
    ], name
    assert len(parse_html(english.text)) <= 4096 and len(parse_html(russian.text)) <= 4096


_URL_ACTIONS = {Action.INSTALL_IPHONE, Action.INSTALL_ANDROID}


def test_the_phone_check_walks_three_steps_and_each_answer_leads_somewhere() -> None:
    start = phone_check_button(TRANSLATOR, "en")
    assert (start.action, start.value) == (Action.PHONE_CHECK, "esim")
    first = phone_check(PhoneCheckStep.ESIM, TRANSLATOR, "en")
    assert "*#06#" in first.text and "EID" in first.text
    assert [b.value for r in first.buttons for b in r if b.action is Action.PHONE_CHECK] == [
        "unlock",
        "no_eid",
    ]
    second = phone_check(PhoneCheckStep.UNLOCK, TRANSLATOR, "en")
    assert "No SIM restrictions" in second.text and "Network unlock status" in second.text
    third = phone_check(PhoneCheckStep.COUNTRIES, TRANSLATOR, "en", THAILAND)
    assert "🇹🇭 Thailand" in third.text and "🇱🇦 Laos" in third.text
    assert [b.value for r in third.buttons for b in r if b.action is Action.BUY] == [THAILAND.name]
    no_eid = phone_check(PhoneCheckStep.NO_EID, TRANSLATOR, "en")
    assert "will not sell you one" in no_eid.text and Action.BUY not in no_eid.actions()
    locked = phone_check(PhoneCheckStep.LOCKED, TRANSLATOR, "ru")
    assert "оператора разблокировать" in locked.text


def test_the_confirmation_lines_and_the_refund_rule_in_both_languages() -> None:
    starts, once = confirmation_notes(TRANSLATOR, "en")
    assert "first uses data in a covered country" in starts and "only once" in once
    assert all(
        note != en
        for note, en in zip(confirmation_notes(TRANSLATOR, "ru"), (starts, once), strict=True)
    )
    assert "within 7 days of purchase" in self_refund_rule(TRANSLATOR, "en", 7)
    assert "within 1 day of purchase" in self_refund_rule(TRANSLATOR, "en", 1)
    assert "в течение 7 дней" in self_refund_rule(TRANSLATOR, "ru", 7)
    assert "в течение 1 дня" in self_refund_rule(TRANSLATOR, "ru", 1)
    for lang in ("en", "ru"):
        parse_html(self_refund_rule(TRANSLATOR, lang, 7))


def test_the_esim_card_gains_the_doctor_and_a_refund_per_refundable_order() -> None:
    rows = esim_card_rows([OFFER], TRANSLATOR, "en")
    assert [(b.action, b.text, b.value) for r in rows for b in r] == [
        (Action.DIAGNOSE, "🩺 It doesn't work", ""),
        (Action.ASK_REFUND, "↩️ Refund · 450 ⭐", "1"),
    ]
    assert [b.action for r in esim_card_rows([], TRANSLATOR, "en") for b in r] == [Action.DIAGNOSE]
