"""Static help around buying and using an eSIM, in an explicit language (pure functions):
the three-step "Will it work on my phone?" check, the phone settings that make an installed
eSIM connect, the confirmation screen's two warnings and the self-refund rule for /terms and
/paysupport.
"""

from __future__ import annotations

import enum
import html

from services.actions import Action, ActionButton, TextScreen
from services.countries import country_name, flag
from services.esimgo.models import Bundle
from services.i18n import N_, Translator

COUNTRIES_SHOWN = 30


class PhoneCheckStep(enum.StrEnum):
    ESIM = "esim"  # 1: does the phone support eSIM (an EID)
    UNLOCK = "unlock"  # 2: is it carrier-unlocked
    COUNTRIES = "countries"  # 3: does the plan cover the trip
    NO_EID = "no_eid"  # answer: no eSIM, no sale
    LOCKED = "locked"  # answer: ask the carrier


def network_steps(translator: Translator, lang: str) -> str:
    """How to make an installed eSIM carry data, on iPhone and on Android (HTML)."""
    return translator.gettext(
        "<b>iPhone</b>: Settings → Mobile Service (or Cellular) → turn the travel eSIM line "
        "on → tap it and turn on <b>Data Roaming</b> → under Mobile Data choose the travel "
        "line.\n"
        "<b>Android</b>: Settings → Network &amp; internet → SIMs (Samsung: Settings → "
        "Connections → SIM manager) → turn the eSIM on → turn on <b>Roaming</b> for it → "
        "choose it for mobile data.",
        lang,
    )


def phone_check(
    step: PhoneCheckStep, translator: Translator, lang: str, bundle: Bundle | None = None
) -> TextScreen:
    """One screen of the check; `bundle` when it started from a plan's card."""
    if step is PhoneCheckStep.ESIM:
        return _esim_step(translator, lang)
    if step is PhoneCheckStep.UNLOCK:
        return _unlock_step(translator, lang)
    if step is PhoneCheckStep.COUNTRIES:
        return _countries_step(translator, lang, bundle)
    if step is PhoneCheckStep.NO_EID:
        return _no_eid(translator, lang)
    return _locked(translator, lang, bundle)


def _button(
    translator: Translator, lang: str, text: str, action: Action, value: str = ""
) -> ActionButton:
    return ActionButton(action, translator.gettext(text, lang), value)


def _back(translator: Translator, lang: str) -> tuple[ActionButton, ...]:
    return (_button(translator, lang, N_("« Back"), Action.BACK),)


def _esim_step(translator: Translator, lang: str) -> TextScreen:
    text = translator.gettext(
        "📱 <b>Will it work on my phone? Step 1 of 3: eSIM</b>\n\n"
        "Dial <code>*#06#</code> as if making a call. If the screen shows an <b>EID</b> (a "
        "32-digit number), your phone supports eSIM.\n\n"
        "Nothing shown? Look in the settings: on iPhone, Settings → General → About → EID; "
        "on Android, Settings → About phone → SIM status (or Status information) → EID.",
        lang,
    )
    step = PhoneCheckStep
    return TextScreen(
        text,
        (
            (_button(translator, lang, N_("✅ I see an EID"), Action.PHONE_CHECK, step.UNLOCK),),
            (
                _button(
                    translator, lang, N_("❌ There is no EID"), Action.PHONE_CHECK, step.NO_EID
                ),
            ),
            _back(translator, lang),
        ),
    )


def _unlock_step(translator: Translator, lang: str) -> TextScreen:
    text = translator.gettext(
        "🔓 <b>Step 2 of 3: is your phone unlocked?</b>\n\n"
        "A phone locked to one carrier refuses eSIMs from others.\n\n"
        "<b>iPhone</b>: Settings → General → About → Carrier Lock (or Network Provider "
        "Lock). “No SIM restrictions” means unlocked.\n"
        "<b>Android</b>: on many phones, Settings → Connections → More connection settings → "
        "Network unlock status. Or put in a SIM card from another carrier: if it gets "
        "signal, the phone is unlocked.",
        lang,
    )
    step = PhoneCheckStep
    return TextScreen(
        text,
        (
            (
                _button(
                    translator, lang, N_("✅ It is unlocked"), Action.PHONE_CHECK, step.COUNTRIES
                ),
            ),
            (
                _button(
                    translator, lang, N_("🔒 Locked or not sure"), Action.PHONE_CHECK, step.LOCKED
                ),
            ),
            _back(translator, lang),
        ),
    )


def country_lines(bundle: Bundle, lang: str) -> list[str]:
    """`🇹🇭 Thailand` for each country the plan works in, in catalogue order."""
    return [
        html.escape(f"{flag(c.iso)} {country_name(c.iso, lang, c.name)}".strip())
        for c in bundle.coverage
    ]


def _countries_step(translator: Translator, lang: str, bundle: Bundle | None) -> TextScreen:
    title = translator.gettext("🌍 <b>Step 3 of 3: the right country</b>", lang)
    if bundle is None:
        text = translator.gettext(
            "Choose the country you are travelling to: each plan lists every country it "
            "works in. Data works only in those countries.",
            lang,
        )
        browse = _button(translator, lang, N_("🌍 Choose a country"), Action.BROWSE)
        return TextScreen(f"{title}\n\n{text}", ((browse,), _back(translator, lang)))
    lines = country_lines(bundle, lang)
    shown = lines[:COUNTRIES_SHOWN]
    if len(lines) > len(shown):
        more = len(lines) - len(shown)
        shown.append(translator.gettext("…and {count} more", lang).format(count=more))
    intro = translator.gettext(
        "This plan works in the countries below. Make sure every country where you will "
        "need data is on the list.",
        lang,
    )
    buy = _button(translator, lang, N_("✅ Buy this plan"), Action.BUY, bundle.name)
    other = _button(translator, lang, N_("🌍 Another country"), Action.BROWSE)
    body = "\n".join(shown)
    return TextScreen(f"{title}\n\n{intro}\n\n{body}", ((buy,), (other,), _back(translator, lang)))


def _no_eid(translator: Translator, lang: str) -> TextScreen:
    text = translator.gettext(
        "🚫 <b>This phone cannot use an eSIM</b>\n\n"
        "Without an EID the phone has no eSIM chip, so our QR code could not be installed on "
        "it — that is why we will not sell you one. If you have another phone that shows an "
        "EID, check that one.",
        lang,
    )
    menu = _button(translator, lang, N_("🏠 Main menu"), Action.MENU)
    return TextScreen(text, ((menu,),))


def _locked(translator: Translator, lang: str, bundle: Bundle | None) -> TextScreen:
    text = translator.gettext(
        "🔒 <b>Ask your carrier to unlock the phone first</b>\n\n"
        "A locked phone refuses eSIMs from other carriers, so ours would not connect. "
        "Carriers usually unlock a phone that is paid off, often for free: call them or use "
        "their app. Once it is unlocked, come back and continue.",
        lang,
    )
    again = _button(
        translator, lang, N_("🔓 It is unlocked now"), Action.PHONE_CHECK, PhoneCheckStep.COUNTRIES
    )
    menu = _button(translator, lang, N_("🏠 Main menu"), Action.MENU)
    return TextScreen(text, ((again,), (menu,)))


def confirmation_notes(translator: Translator, lang: str) -> tuple[str, ...]:
    """The two lines the confirmation screen states before payment."""
    return (
        translator.gettext(
            "🕓 The plan starts when your phone first uses data in a covered country — not "
            "when you pay.",
            lang,
        ),
        translator.gettext(
            "🔐 The QR code can be installed only once: keep it until the eSIM is installed.",
            lang,
        ),
    )


def self_refund_rule(translator: Translator, lang: str, days: int) -> str:
    """The /terms and /paysupport paragraph on refunding an unused eSIM (HTML)."""
    return translator.ngettext(
        "<b>Refund of an unused eSIM.</b> An eSIM that was never installed and whose plan "
        "never started can be refunded by you within {days} day of purchase: open it in My "
        "eSIMs and tap “Refund”. Stars return to your Telegram balance at once. A top-up plan "
        "can be refunded the same way while it has not started. Once the eSIM is installed or "
        "its plan has started, it cannot be refunded.",
        "<b>Refund of an unused eSIM.</b> An eSIM that was never installed and whose plan "
        "never started can be refunded by you within {days} days of purchase: open it in My "
        "eSIMs and tap “Refund”. Stars return to your Telegram balance at once. A top-up plan "
        "can be refunded the same way while it has not started. Once the eSIM is installed or "
        "its plan has started, it cannot be refunded.",
        days,
        lang,
    ).format(days=days)


def phone_check_button(translator: Translator, lang: str) -> ActionButton:
    """The entry to the check, for the main menu and every plan's card."""
    text = translator.gettext("📱 Will it work on my phone?", lang)
    return ActionButton(Action.PHONE_CHECK, text, PhoneCheckStep.ESIM)
