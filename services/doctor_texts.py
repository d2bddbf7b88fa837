"""What the eSIM doctor and the self-refund say, in an explicit language (pure functions).

Each builder returns a TextScreen: HTML text and buttons as actions (services.actions), which
the handlers render.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from babel.dates import format_datetime
from babel.numbers import format_decimal

from services.actions import Action, ActionButton, TextScreen
from services.countries import country_name, flag
from services.diagnosis import Diagnosis, Finding, PlanOffer, PlanView
from services.doctor import RefreshOutcome, RefreshResult, TicketOutcome
from services.i18n import N_, Translator
from services.install import android_install_url, ios_install_url
from services.phone_check import network_steps
from services.pricing import format_price
from services.self_refund import RefundOffer, RefundVerdict
from services.usage import plan_line

COUNTRIES_NAMED = 6
Row = tuple[ActionButton, ...]


class _Words:
    """The translator bound to one language."""

    def __init__(self, translator: Translator, lang: str) -> None:
        self.translator = translator
        self.lang = lang

    def gettext(self, message: str) -> str:
        return self.translator.gettext(message, self.lang)

    def button(self, text: str, action: Action, value: str = "", url: str = "") -> Row:
        return (ActionButton(action, self.gettext(text), value, url),)


def when(moment: datetime, lang: str) -> str:
    """`12 December, 14:05 UTC` (times are shown in UTC: we do not know the user's zone)."""
    return format_datetime(moment, "d MMMM, HH:mm", tzinfo=UTC, locale=lang) + " UTC"


def place(iso: str, lang: str) -> str:
    return html.escape(f"{flag(iso)} {country_name(iso, lang)}".strip())


def places(isos: Sequence[str], w: _Words) -> str:
    """`🇹🇭 Thailand, 🇱🇦 Laos` — the first few, then how many more."""
    named = ", ".join(place(iso, w.lang) for iso in isos[:COUNTRIES_NAMED])
    if len(isos) > COUNTRIES_NAMED:
        return w.gettext("{names} and {count} more").format(
            names=named, count=len(isos) - COUNTRIES_NAMED
        )
    return named or w.gettext("the plan's countries")


def plan_title(plan: PlanView, w: _Words) -> str:
    """`🇹🇭 Thailand · 5 GB · 30 days`, from what the eSIM and the catalogue say."""
    parts = [place(plan.countries[0], w.lang)] if len(plan.countries) == 1 else []
    if plan.unlimited:
        parts.append(w.gettext("Unlimited"))
    elif plan.initial_bytes:
        parts.append(_size(plan.initial_bytes, w))
    if plan.duration_days:
        parts.append(_days(plan.duration_days, w))
    return " · ".join(parts) or html.escape(plan.bundle_name)


def _stuck(w: _Words) -> tuple[Row, Row]:
    return (
        w.button(N_("🆘 Still not working"), Action.TICKET),
        w.button(N_("« Back"), Action.BACK),
    )


def _again(w: _Words) -> Row:
    return w.button(N_("🔁 Check again"), Action.DIAGNOSE)


def diagnosis_screen(diagnosis: Diagnosis, translator: Translator, lang: str) -> TextScreen:
    """The doctor's answer: what is wrong, what to do, how fresh the data is."""
    w = _Words(translator, lang)
    body, rows = _FINDINGS[diagnosis.finding](diagnosis, w)
    title = w.gettext("🩺 <b>eSIM check</b> · ICCID …{tail}").format(tail=diagnosis.iccid[-4:])
    if diagnosis.live is None:
        fresh = w.gettext("⚠️ No network data ({time}).")
    else:
        fresh = w.gettext("🕑 Network data as of {time}.")
    text = f"{title}\n\n{body}\n\n<i>{fresh.format(time=when(diagnosis.checked_at, lang))}</i>"
    return TextScreen(text, (*rows, *_stuck(w)))


def _unavailable(d: Diagnosis, w: _Words) -> tuple[str, list[Row]]:
    text = w.gettext(
        "⚠️ <b>We could not check your eSIM with the network right now.</b> Here is what "
        "usually helps:\n\n"
        "1. Install the eSIM before you travel, on Wi-Fi (see the instructions).\n"
        "2. On arrival, turn the eSIM on, turn on data roaming for it and choose it for "
        "mobile data:"
    )
    steps = network_steps(w.translator, w.lang)
    return f"{text}\n{steps}", [
        _again(w),
        w.button(N_("📖 Installation guide"), Action.INSTALL_HELP),
    ]


def _not_installed(d: Diagnosis, w: _Words) -> tuple[str, list[Row]]:
    if d.gift_pending:
        return _gift_waiting(w)
    text = w.gettext(
        "📲 <b>The eSIM is not installed on your phone yet.</b>\n\n"
        "Install it now, on Wi-Fi, before you fly: the plan does not start until your phone "
        "uses data in {countries}, so installing early costs nothing.\n\n"
        "Tap the button for your phone, or follow the instructions. The QR code can be "
        "installed only once: keep it until the eSIM is installed."
    ).format(countries=places(d.plan.countries if d.plan else (), w))
    rows: list[Row] = []
    if d.lpa:
        rows.append(
            w.button(N_("🍏 Install on iPhone"), Action.INSTALL_IPHONE, url=ios_install_url(d.lpa))
        )
        rows.append(
            w.button(
                N_("🤖 Install on Android"), Action.INSTALL_ANDROID, url=android_install_url(d.lpa)
            )
        )
        rows.append(w.button(N_("🔳 Show the QR code"), Action.SHOW_QR))
    rows.append(w.button(N_("📖 Installation guide"), Action.INSTALL_HELP))
    return text, rows


def _gift_waiting(w: _Words) -> tuple[str, list[Row]]:
    """A gift nobody has claimed: its buyer is not the one to install it."""
    text = w.gettext(
        "🎁 <b>This eSIM is a gift waiting to be claimed.</b>\n\n"
        "It is installed by whoever opens its link, on their own phone. Share the link again "
        "from the eSIM's card, or take the gift back there to install it yourself."
    )
    return text, []


def _removed(d: Diagnosis, w: _Words) -> tuple[str, list[Row]]:
    text = w.gettext(
        "🗑 <b>The eSIM was deleted from your phone.</b>\n\n"
        "The network reports that it was installed and later removed. An eSIM usually cannot "
        "be installed a second time, so please tap “Still not working”: our support team "
        "will sort it out."
    )
    return text, []


def _plan_ended(d: Diagnosis, w: _Words) -> tuple[str, list[Row]]:
    if d.plan is None:
        text = w.gettext("📭 <b>There is no plan on this eSIM.</b>")
    elif d.plan.state == "depleted":
        text = w.gettext("📉 <b>Your plan's data is used up.</b>")
    else:
        text = w.gettext("⌛ <b>Your plan has ended.</b>")
    if d.plan is not None:
        usage = plan_line(d.plan, w.lang, w.translator)
        text += f"\n{plan_title(d.plan, w)}: {html.escape(usage)}"
    text += "\n\n" + w.gettext(
        "Top up to keep using this eSIM — there is nothing to install again."
    )
    return text, [w.button(N_("➕ Top up"), Action.TOPUP)]


def _processing(d: Diagnosis, w: _Words) -> tuple[str, list[Row]]:
    text = w.gettext(
        "⏳ <b>Your plan is still being set up by the network.</b>\n\n"
        "This usually takes a minute, at most 10 minutes. Check again shortly."
    )
    return text, [_again(w)]


def _not_attached(d: Diagnosis, w: _Words) -> tuple[str, list[Row]]:
    text = w.gettext(
        "📵 <b>The eSIM is installed but has not connected to a network yet.</b>\n\n"
        "It connects only in {countries}: if you are not there yet, this is expected and "
        "there is nothing to do until you arrive. Once there, check these settings:"
    ).format(countries=places(d.plan.countries if d.plan else (), w))
    return f"{text}\n{network_steps(w.translator, w.lang)}", [_again(w)]


def _wrong_country(d: Diagnosis, w: _Words) -> tuple[str, list[Row]]:
    seen = d.location
    where = seen.country if seen and seen.country else ""
    covered = d.live.covered_countries if d.live else ()
    text = w.gettext(
        "🌍 <b>Your phone is in {country}, but your plan works in {countries}.</b>"
    ).format(country=place(where, w.lang), countries=places(covered, w))
    if seen is not None:
        text += "\n" + _seen_line(d, w)
    if d.plan is not None and d.plan.state != "active":
        text += "\n\n" + w.gettext("Your plan has not started: it starts when you use data there.")
    rows: list[Row] = []
    if d.offers:
        text += "\n\n" + w.gettext("These plans work in {country}:").format(
            country=place(where, w.lang)
        )
        for offer in d.offers:
            rows.append(
                (
                    ActionButton(
                        Action.PLAN, f"{flag(where)} {_offer_title(offer, w)}", offer.bundle_name
                    ),
                )
            )
        rows.append(w.button(N_("🔎 All plans for this country"), Action.COUNTRY, where))
    else:
        text += "\n\n" + w.gettext("We have no plan for {country} yet.").format(
            country=place(where, w.lang)
        )
    return text, rows


def _offer_title(offer: PlanOffer, w: _Words) -> str:
    """`1 GB · 7 days` on the button of a plan on sale."""
    size = w.gettext("Unlimited") if offer.unlimited else _size(offer.data_mb * 1_000_000, w)
    return f"{size} · {_days(offer.duration_days, w)}"


def _size(amount: int, w: _Words) -> str:
    """Decimal units as eSIM Go counts them: 1 GB = 1000 MB."""
    if amount >= 1_000_000_000:
        number = format_decimal(Decimal(amount) / 1_000_000_000, format="#,##0.#", locale=w.lang)
        return w.gettext("{amount} GB").format(amount=number)
    number = format_decimal(Decimal(amount) // 1_000_000, locale=w.lang)
    return w.gettext("{amount} MB").format(amount=number)


def _days(count: int, w: _Words) -> str:
    return w.translator.ngettext("{n} day", "{n} days", count, w.lang).format(n=count)


def _seen_line(d: Diagnosis, w: _Words) -> str:
    seen = d.location
    if seen is None:
        return ""
    line = w.gettext("Last seen on the {network} network").format(
        network=html.escape(seen.network)
    )
    if seen.last_seen is not None:
        line += " · " + when(seen.last_seen, w.lang)
    return line + "."


def _not_started(d: Diagnosis, w: _Words) -> tuple[str, list[Row]]:
    plan = d.plan
    countries = places(plan.countries if plan else (), w)
    text = w.gettext(
        "🕓 <b>Your plan has not started yet.</b>\n\n"
        "It starts the first time your phone uses data in {countries}."
    ).format(countries=countries)
    if plan is not None and plan.duration_days:
        text += " " + w.gettext("From then it runs for {days}.").format(
            days=_days(plan.duration_days, w)
        )
    if d.location is not None:
        text += (
            "\n\n"
            + _seen_line(d, w)
            + " "
            + w.gettext("Data should start as soon as your phone uses this eSIM for mobile data:")
        )
        text += "\n" + network_steps(w.translator, w.lang)
    return text, [_again(w)]


def _looks_fine(d: Diagnosis, w: _Words) -> tuple[str, list[Row]]:
    text = w.gettext("✅ <b>Everything looks right at the network.</b>")
    if d.plan is not None:
        usage = plan_line(d.plan, w.lang, w.translator)
        text += f"\n{plan_title(d.plan, w)}: {html.escape(usage)}"
    if d.location is not None:
        text += "\n" + _seen_line(d, w)
    text += "\n\n" + w.gettext(
        "If there is still no internet: turn Airplane mode on and off, check the settings "
        "below, then refresh the network connection."
    )
    text += "\n" + network_steps(w.translator, w.lang)
    return text, [w.button(N_("🔄 Refresh the network connection"), Action.ASK_REFRESH)]


_FINDINGS: dict[Finding, Callable[[Diagnosis, _Words], tuple[str, list[Row]]]] = {
    Finding.UNAVAILABLE: _unavailable,
    Finding.NOT_INSTALLED: _not_installed,
    Finding.REMOVED: _removed,
    Finding.PLAN_ENDED: _plan_ended,
    Finding.PROCESSING: _processing,
    Finding.NOT_ATTACHED: _not_attached,
    Finding.WRONG_COUNTRY: _wrong_country,
    Finding.NOT_STARTED: _not_started,
    Finding.LOOKS_FINE: _looks_fine,
}


# -- network refresh and support ticket -----------------------------------------------------


def refresh_confirm_screen(translator: Translator, lang: str) -> TextScreen:
    w = _Words(translator, lang)
    text = w.gettext(
        "🔄 <b>Refresh the network connection?</b>\n\n"
        "The network disconnects your eSIM for a moment, then your phone connects again. "
        "This clears most “connected but no internet” cases; your plan and data are not "
        "affected. It can be done once every 10 minutes."
    )
    return TextScreen(
        text,
        (w.button(N_("🔄 Refresh now"), Action.REFRESH), w.button(N_("✖️ Cancel"), Action.BACK)),
    )


def refresh_result_screen(result: RefreshResult, translator: Translator, lang: str) -> TextScreen:
    w = _Words(translator, lang)
    if result.outcome is RefreshOutcome.DONE:
        text = w.gettext(
            "✅ <b>Done.</b> Your eSIM was disconnected and will reconnect within a minute or "
            "two. If there is still no internet then, turn Airplane mode on and off."
        )
        return TextScreen(text, (_again(w), *_stuck(w)))
    if result.outcome is RefreshOutcome.TOO_SOON and result.next_at is not None:
        text = w.gettext(
            "⏱ The connection was refreshed less than 10 minutes ago. You can refresh it "
            "again after {time}."
        ).format(time=when(result.next_at, lang))
    else:
        text = w.gettext(
            "⚠️ We could not reach the network to refresh your eSIM. Please try again in a few "
            "minutes."
        )
    return TextScreen(text, _stuck(w))


def ticket_screen(outcome: TicketOutcome, translator: Translator, lang: str) -> TextScreen:
    w = _Words(translator, lang)
    if outcome is TicketOutcome.OPENED:
        text = w.gettext(
            "📨 <b>Your request is with our support team.</b>\n\n"
            "We sent them this check, so nobody will ask you the same questions again. We "
            "will reply in this chat."
        )
    else:
        text = w.gettext(
            "📨 Our support team already has your request about this eSIM and will reply in "
            "this chat."
        )
    return TextScreen(text, (w.button(N_("« Back"), Action.BACK),))


# -- self-refund ------------------------------------------------------------------------------


def refund_confirm_screen(offer: RefundOffer, translator: Translator, lang: str) -> TextScreen:
    """Asked before the refund: what goes back, what stops working, until when."""
    w = _Words(translator, lang)
    price = format_price(offer.price, lang)
    if offer.is_topup:
        text = w.gettext(
            "↩️ <b>Refund this top-up?</b>\n\n"
            "The plan has not started, so {price} can be refunded. The plan leaves your eSIM; "
            "the eSIM and its other plans stay."
        )
    else:
        text = w.gettext(
            "↩️ <b>Refund this eSIM?</b>\n\n"
            "It was never installed and its plan has not started, so {price} can be refunded. "
            "The QR code stops working and the eSIM leaves your list."
        )
    text = text.format(price=price)
    text += "\n\n" + w.gettext("Refund possible until {time}.").format(
        time=when(offer.until, lang)
    )
    confirm = w.gettext("↩️ Yes, refund {price}").format(price=price)
    return TextScreen(
        text,
        (
            (ActionButton(Action.REFUND, confirm, str(offer.order_id)),),
            w.button(N_("No, keep it"), Action.BACK),
        ),
    )


_REFUND_TEXTS: dict[RefundVerdict, str] = {
    RefundVerdict.REFUNDED: N_("✅ <b>Refunded.</b> {price} is back on your Telegram balance."),
    RefundVerdict.REFUND_PENDING: N_(
        "✅ <b>The plan is cancelled.</b> Our team will return {price} to you shortly; there "
        "is nothing else to do. Questions: /paysupport."
    ),
    RefundVerdict.ALREADY_REFUNDED: N_("This order has already been refunded."),
    RefundVerdict.IN_PROGRESS: N_(
        "This order is being processed right now. Please open My eSIMs again in a minute."
    ),
    RefundVerdict.INSTALLED: N_(
        "This eSIM has been installed on a phone, so it cannot be refunded automatically. If "
        "it does not work, tap “It doesn't work” and we will help."
    ),
    RefundVerdict.STARTED: N_(
        "This plan has already started, so it cannot be refunded. If it does not work, tap "
        "“It doesn't work” and we will help."
    ),
    RefundVerdict.PAST_WINDOW: N_(
        "An unused eSIM can be refunded until {time}; that time has passed. If something is "
        "wrong, write to us: /paysupport."
    ),
    RefundVerdict.NOT_REFUNDABLE: N_(
        "This order cannot be refunded automatically. Write to us: /paysupport."
    ),
    RefundVerdict.UNAVAILABLE: N_(
        "We could not check this eSIM with the network right now, so nothing was changed. "
        "Please try again in a few minutes."
    ),
}


def refund_result_screen(
    verdict: RefundVerdict, offer: RefundOffer | None, translator: Translator, lang: str
) -> TextScreen:
    w = _Words(translator, lang)
    price = format_price(offer.price, lang) if offer else ""
    until = when(offer.until, lang) if offer else ""
    text = w.gettext(_REFUND_TEXTS[verdict]).format(price=price, time=until)
    if verdict is RefundVerdict.REFUNDED and offer is not None:
        gone = (
            N_("The plan has left your eSIM.")
            if offer.is_topup
            else N_("The eSIM has left your list.")
        )
        text += " " + w.gettext(gone)
    rows: list[Row] = []
    if verdict in (RefundVerdict.INSTALLED, RefundVerdict.STARTED):
        rows.append(w.button(N_("🩺 It doesn't work"), Action.DIAGNOSE))
    if verdict in (RefundVerdict.REFUNDED, RefundVerdict.REFUND_PENDING):
        rows.append(w.button(N_("📱 My eSIMs"), Action.MY_ESIMS))
    else:
        rows.append(w.button(N_("« Back"), Action.BACK))
    return TextScreen(text, tuple(rows))


def esim_card_rows(
    offers: Sequence[RefundOffer], translator: Translator, lang: str
) -> tuple[Row, ...]:
    """The buttons an eSIM's card gains: the doctor, and Refund for each refundable order."""
    w = _Words(translator, lang)
    rows = [w.button(N_("🩺 It doesn't work"), Action.DIAGNOSE)]
    for offer in offers:
        label = N_("↩️ Refund top-up · {price}") if offer.is_topup else N_("↩️ Refund · {price}")
        text = w.gettext(label).format(price=format_price(offer.price, lang))
        rows.append((ActionButton(Action.ASK_REFUND, text, str(offer.order_id)),))
    return tuple(rows)
