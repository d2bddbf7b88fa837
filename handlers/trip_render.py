"""The trip screen: several countries typed at once and the plans that cover them all (or the
fewest plans that do), as text + keyboard; no I/O, the TripPlan of services.trip comes in.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import ORIGIN_SEARCH, BundleCallback, MenuCallback
from handlers.render import Screen, back_button, button, country_label
from services.catalogue import Catalogue
from services.esimgo.models import Bundle
from services.formatting import bundle_title
from services.i18n import Translator
from services.pricing import Price, format_price
from services.trip import MAX_TRIP_COUNTRIES, PlanSet, TripPlan

logger = logging.getLogger(__name__)

PLANS_SHOWN = 8
SETS_SHOWN = 3


def _plan_label(bundle: Bundle, price: Price, translator: Translator, lang: str) -> str:
    """`🌍 Europe+ · 1 GB · 7 days · 50 ⭐`."""
    return f"{bundle_title(bundle, lang, translator)} · {format_price(price, lang)}"


def _plan_button(label: str, bundle: Bundle, iso: str = "") -> list[InlineKeyboardButton] | None:
    """The plan's card; None for a name too long for callback data (left out, never a crash)."""
    try:
        card = BundleCallback(action="show", bundle=bundle.name, iso=iso, origin=ORIGIN_SEARCH)
        return [button(label, card)]
    except ValueError:
        logger.warning("bundle %r cannot be shown as a button", bundle.name)
        return None


def _names(catalogue: Catalogue, isos: Sequence[str], lang: str) -> str:
    return ", ".join(country_label(catalogue, iso, lang) for iso in isos)


def _covering(
    trip: TripPlan, translator: Translator, lang: str
) -> tuple[list[str], list[list[InlineKeyboardButton]]]:
    lines = [_("Plans that cover all of them, cheapest first:")]
    rows = []
    for plan in trip.covering[:PLANS_SHOWN]:
        label = _plan_label(plan.bundle, plan.price, translator, lang)
        line = "• " + html.escape(label)
        if plan.separately is not None:
            alone = format_price(plan.separately, lang)
            line += " — " + _("one country at a time: {price}").format(price=html.escape(alone))
        lines.append(line)
        if row := _plan_button(label, plan.bundle):
            rows.append(row)
    return lines, rows


def _set_line(catalogue: Catalogue, plan_set: PlanSet, translator: Translator, lang: str) -> str:
    parts = [
        f"{_plan_label(p.bundle, p.price, translator, lang)} "
        f"({_names(catalogue, p.countries, lang)})"
        for p in plan_set.plans
    ]
    total = format_price(plan_set.total, lang)
    return (
        html.escape(" + ".join(parts))
        + " — "
        + _("{price} in all").format(price=html.escape(total))
    )


def _sets(
    catalogue: Catalogue, trip: TripPlan, translator: Translator, lang: str
) -> tuple[list[str], list[list[InlineKeyboardButton]]]:
    """No plan covers every country: the fewest plans that do, cheapest sets first."""
    if not trip.sets:
        return [_("😔 No plans cover these countries right now.")], []
    lines = [_("😔 No single plan covers them all. The fewest plans that do:")]
    for number, plan_set in enumerate(trip.sets[:SETS_SHOWN], 1):
        lines.append(f"{number}. {_set_line(catalogue, plan_set, translator, lang)}")
    rows = []
    for plan in trip.sets[0].plans:
        label = _plan_label(plan.bundle, plan.price, translator, lang)
        if row := _plan_button(label, plan.bundle, plan.countries[0] if plan.countries else ""):
            rows.append(row)
    return lines, rows


def _notes(trip: TripPlan) -> list[str]:
    """What was left out of the trip: parts that name no country we sell, countries past ten."""
    notes = []
    if trip.query.unknown:
        parts = ", ".join(f"“{html.escape(part)}”" for part in trip.query.unknown)
        notes.append(_("🤔 Not found, so left out: {parts}").format(parts=parts))
    if trip.query.too_many:
        notes.append(
            _("Only the first {count} countries are counted.").format(count=MAX_TRIP_COUNTRIES)
        )
    return notes


def trip_screen(catalogue: Catalogue, translator: Translator, lang: str, trip: TripPlan) -> Screen:
    """The trip's countries, the plans for all of them (or the fewest plans that do), notes."""
    names = _names(catalogue, trip.query.countries, lang)
    lines = [_("🧳 <b>Your trip:</b> {countries}").format(countries=html.escape(names)), ""]
    if trip.covering:
        found, rows = _covering(trip, translator, lang)
    else:
        found, rows = _sets(catalogue, trip, translator, lang)
    lines += found
    if notes := _notes(trip):
        lines += ["", *notes]
    if rows:
        lines += ["", _("Choose a plan:")]
    rows.append([back_button(MenuCallback(action="buy"))])
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))
