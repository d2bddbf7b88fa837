"""Screens of the browsing flow as text + inline keyboard; no I/O, only the catalogue in memory.

Texts go through aiogram's gettext (the i18n middleware sets the language); numbers and names
are formatted for `lang`, the same language, passed explicitly for Babel.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from handlers.callbacks import (
    ORIGIN_BUY,
    ORIGIN_SEARCH,
    BundleCallback,
    CountryCallback,
    CountryListCallback,
    LanguageCallback,
    MenuCallback,
    NoopCallback,
    Origin,
    az_origin,
    parse_origin,
    phone_check_data,
    region_origin,
)
from handlers.plan_details import network_lines, price_per_gb_line
from services.catalogue import Catalogue
from services.countries import region_name, sorted_by_name
from services.esimgo.models import Bundle
from services.formatting import WORLD, bundle_area, bundle_place, data_size, days, flagged
from services.i18n import Translator
from services.networks import NetworkDirectory
from services.phone_check import PhoneCheckStep
from services.pricing import PricingService, format_price

logger = logging.getLogger(__name__)

COUNTRIES_PER_PAGE = 20
COUNTRY_COLUMNS = 2
POPULAR_COLUMNS = 3
POPULAR_LIMIT = 12
BUNDLES_PER_PAGE = 10
COVERAGE_NAMES = 3
QUERY_ECHO_CHARS = 40
LANGUAGE_NAMES = {"en": "🇬🇧 English", "ru": "🇷🇺 Русский"}
_REGION_ICONS = {
    "Europe": "🇪🇺",
    "Asia": "🌏",
    "Oceania": "🌏",
    "Middle East": "🕌",
    "Africa": "🌍",
    "Global": "🌐",
}


@dataclass(frozen=True, slots=True)
class Screen:
    """What one step of the flow shows: HTML text and its inline keyboard."""

    text: str
    markup: InlineKeyboardMarkup


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def _rows(
    buttons: Sequence[InlineKeyboardButton], columns: int
) -> list[list[InlineKeyboardButton]]:
    return [list(buttons[i : i + columns]) for i in range(0, len(buttons), columns)]


def back_button(data: CallbackData) -> InlineKeyboardButton:
    return button(_("« Back"), data)


def clamp_page(page: int, total_items: int, per_page: int) -> tuple[int, int]:
    """A valid page index and the page count (at least one page)."""
    pages = max(1, math.ceil(total_items / per_page))
    return min(max(page, 0), pages - 1), pages


def _pager(
    page: int, pages: int, make: Callable[[int], CallbackData]
) -> list[InlineKeyboardButton]:
    """‹ 2/5 › navigation; nothing when everything fits on one page."""
    if pages <= 1:
        return []
    row = []
    if page > 0:
        row.append(button("‹", make(page - 1)))
    row.append(button(f"{page + 1}/{pages}", NoopCallback(what="page")))
    if page < pages - 1:
        row.append(button("›", make(page + 1)))
    return row


# -- formatting -----------------------------------------------------------------------------


def country_label(catalogue: Catalogue, iso: str, lang: str) -> str:
    return flagged(iso, catalogue.country_name(iso, lang))


def region_label(region: str, lang: str) -> str:
    icon = _REGION_ICONS.get(region, "🌎")
    return f"{icon} {region_name(region, lang)}"


def coverage_text(catalogue: Catalogue, bundle: Bundle, lang: str, first: str = "") -> str:
    """ "Thailand, Malaysia, Laos +28 more": the browsed country first, then A–Z."""
    isos = [c.iso for c in bundle.coverage if len(c.iso) == 2 and c.iso.isalpha()]
    ordered = sorted_by_name([iso for iso in isos if iso != first], lang)
    if first in isos:
        ordered.insert(0, first)
    names = [catalogue.country_name(iso, lang) for iso in ordered[:COVERAGE_NAMES]]
    shown = ", ".join(html.escape(name) for name in names)
    rest = len(ordered) - len(names)
    if rest <= 0:
        return shown
    return _("{names} +{count} more").format(names=shown, count=rest)


def price_text(pricing: PricingService, bundle: Bundle, lang: str) -> str:
    return format_price(pricing.retail_price(bundle.price), lang)


def bundle_label(
    bundle: Bundle, pricing: PricingService, translator: Translator, lang: str, *, shared: bool
) -> str:
    """The button text: `1 GB · 7 days · 50 ⭐`, with the region first for shared bundles."""
    parts = [data_size(bundle, lang, translator), days(bundle.duration_days, lang, translator)]
    parts.append(price_text(pricing, bundle, lang))
    label = " · ".join(parts)
    if bundle.unlimited:
        label = "♾ " + label
    if shared:
        label = f"{WORLD} {bundle_area(bundle, lang, translator)} · {label}"
    return label


# -- screens --------------------------------------------------------------------------------


def main_menu() -> Screen:
    text = "\n\n".join(
        [
            _("👋 <b>Travel eSIMs</b> — mobile data abroad without roaming bills."),
            _(
                "Pick a country and a plan, pay with Telegram Stars and install the eSIM by "
                "scanning a QR code."
            ),
            _("Tip: type a country name at any time to find its plans."),
        ]
    )
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("🛒 Buy eSIM"), MenuCallback(action="buy"))],
            [button(_("📱 My eSIMs"), MenuCallback(action="myesims"))],
            [button(_("📱 Will it work on my phone?"), phone_check_data(PhoneCheckStep.ESIM))],
            [
                button(_("❓ Help"), MenuCallback(action="help")),
                button(_("🌐 Language"), MenuCallback(action="language")),
            ],
        ]
    )
    return Screen(text, markup)


def help_screen() -> Screen:
    text = "\n\n".join(
        [
            _("<b>How it works</b>"),
            _(
                "1. Choose where you are going and a plan (data and days).\n"
                "2. Pay in Telegram.\n"
                "3. Get a QR code: scan it in your phone's settings to install the eSIM.\n"
                "4. The plan starts when the eSIM first connects in a covered country."
            ),
            _("Your phone must support eSIM and must not be carrier-locked."),
            _(
                "Commands:\n/start — main menu\n/myesims — your eSIMs and data left\n"
                "/language — change language\n/paysupport — help with a payment\n"
                "/terms — terms of sale"
            ),
        ]
    )
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=[[_menu_back()]]))


def _menu_back() -> InlineKeyboardButton:
    return back_button(MenuCallback(action="main"))


def language_screen(current: str) -> Screen:
    rows = [
        [button(("✅ " if code == current else "") + name, LanguageCallback(code=code))]
        for code, name in LANGUAGE_NAMES.items()
    ]
    rows.append([_menu_back()])
    return Screen(_("Choose your language:"), InlineKeyboardMarkup(inline_keyboard=rows))


def catalogue_unavailable() -> Screen:
    text = _("😔 The catalogue is temporarily unavailable. Please try again in a few minutes.")
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=[[_menu_back()]]))


def buy_screen(catalogue: Catalogue, lang: str) -> Screen:
    text = "\n\n".join(
        [
            _("🌍 <b>Where are you travelling?</b>"),
            _(
                "Pick a popular country, open a region or the full list — or simply type a "
                "country's name."
            ),
        ]
    )
    popular = [
        button(country_label(catalogue, iso, lang), CountryCallback(iso=iso, origin=ORIGIN_BUY))
        for iso in catalogue.popular_countries(POPULAR_LIMIT)
    ]
    rows = _rows(popular, POPULAR_COLUMNS)
    rows.append(
        [
            button(_("🗺 Regions"), CountryListCallback(view="regions")),
            button(_("🔤 All countries A–Z"), CountryListCallback(view="az")),
        ]
    )
    rows.append([_menu_back()])
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


def _country_buttons(
    catalogue: Catalogue, isos: Sequence[str], lang: str, origin: str
) -> list[InlineKeyboardButton]:
    return [
        button(country_label(catalogue, iso, lang), CountryCallback(iso=iso, origin=origin))
        for iso in isos
    ]


def az_screen(catalogue: Catalogue, lang: str, page: int) -> Screen:
    isos = catalogue.sorted_countries(lang)
    page, pages = clamp_page(page, len(isos), COUNTRIES_PER_PAGE)
    chunk = isos[page * COUNTRIES_PER_PAGE : (page + 1) * COUNTRIES_PER_PAGE]
    text = "\n\n".join(
        [
            _("🔤 <b>All countries</b> — page {page} of {pages}").format(
                page=page + 1, pages=pages
            ),
            _("Or type a country's name to jump straight to it."),
        ]
    )
    rows = _rows(_country_buttons(catalogue, chunk, lang, az_origin(page)), COUNTRY_COLUMNS)
    if pager := _pager(page, pages, lambda p: CountryListCallback(view="az", page=p)):
        rows.append(pager)
    rows.append([back_button(MenuCallback(action="buy"))])
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


def regions_screen(catalogue: Catalogue, lang: str) -> Screen:
    buttons = []
    for region in catalogue.regions():
        try:
            buttons.append(
                button(
                    region_label(region, lang), CountryListCallback(view="region", region=region)
                )
            )
        except ValueError:  # a name that cannot travel in callback data (":" or too long)
            logger.warning("region %r cannot be shown as a button", region)
    rows = _rows(buttons, COUNTRY_COLUMNS)
    rows.append([back_button(MenuCallback(action="buy"))])
    return Screen(
        _("🗺 <b>Regions</b>\n\nChoose a region to see its countries."),
        InlineKeyboardMarkup(inline_keyboard=rows),
    )


def region_screen(catalogue: Catalogue, lang: str, region: str, page: int) -> Screen | None:
    """A region's countries (paged); None when the region is unknown."""
    isos = sorted_by_name(catalogue.countries_in_region(region), lang)
    if not isos:
        return None
    page, pages = clamp_page(page, len(isos), COUNTRIES_PER_PAGE)
    chunk = isos[page * COUNTRIES_PER_PAGE : (page + 1) * COUNTRIES_PER_PAGE]
    title = html.escape(region_label(region, lang))
    text = f"<b>{title}</b>\n\n" + _("Choose a country.")
    origin = region_origin(region, page)
    rows = _rows(_country_buttons(catalogue, chunk, lang, origin), COUNTRY_COLUMNS)

    def make(page: int) -> CountryListCallback:
        return CountryListCallback(view="region", region=region, page=page)

    if pager := _pager(page, pages, make):
        rows.append(pager)
    rows.append([back_button(CountryListCallback(view="regions"))])
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))


def origin_back(origin: Origin) -> CallbackData:
    """Where Back leads from a country's plans."""
    if origin.kind == "az":
        return CountryListCallback(view="az", page=origin.page)
    if origin.kind == "region":
        return CountryListCallback(view="region", region=origin.region, page=origin.page)
    return MenuCallback(action="buy")


def bundle_rows(
    own: Sequence[Bundle],
    shared: Sequence[Bundle],
    pricing: PricingService,
    translator: Translator,
    lang: str,
    page: int,
    *,
    header: bool,
    pick: Callable[[Bundle, int], CallbackData],
    turn: Callable[[int], CallbackData],
) -> list[list[InlineKeyboardButton]]:
    """One page of plan buttons, own first, shared ones after a header if `header`; ‹ n/N ›."""
    items: list[tuple[Bundle, bool] | None] = [(b, False) for b in own]
    if header:
        items.append(None)  # the header between own and shared plans
    items.extend((b, True) for b in shared)
    page, pages = clamp_page(page, len(items), BUNDLES_PER_PAGE)
    rows: list[list[InlineKeyboardButton]] = []
    for item in items[page * BUNDLES_PER_PAGE : (page + 1) * BUNDLES_PER_PAGE]:
        if item is None:
            title = _("🌍 Regional and global plans")
            rows.append([button(f"— {title} —", NoopCallback(what="header"))])
            continue
        bundle, is_shared = item
        try:
            label = bundle_label(bundle, pricing, translator, lang, shared=is_shared)
            rows.append([button(label, pick(bundle, page))])
        except ValueError:  # a bundle name too long for callback data; skip, never crash
            logger.warning("bundle %r cannot be shown as a button", bundle.name)
    if pager := _pager(page, pages, turn):
        rows.append(pager)
    return rows


def country_screen(
    catalogue: Catalogue,
    pricing: PricingService,
    translator: Translator,
    lang: str,
    iso: str,
    origin: str,
    page: int,
) -> Screen | None:
    """A country's plans: its own first, then regional/global ones under a header; paged."""
    own = catalogue.own_bundles(iso)
    shared = catalogue.shared_bundles(iso)
    if not own and not shared:
        return None
    back = origin_back(parse_origin(origin))
    try:
        back.pack()
    except ValueError:
        back, origin = MenuCallback(action="buy"), ORIGIN_BUY

    def pick(bundle: Bundle, page: int) -> BundleCallback:
        return BundleCallback(action="show", bundle=bundle.name, iso=iso, origin=origin, page=page)

    def make(page: int) -> CountryCallback:
        return CountryCallback(iso=iso, origin=origin, page=page)

    buttons = bundle_rows(
        own, shared, pricing, translator, lang, page, header=bool(shared), pick=pick, turn=make
    )
    buttons.append([back_button(back)])
    name = html.escape(country_label(catalogue, iso, lang))
    lines = [f"<b>{name}</b>"]
    if not own:
        lines.append(_("There are no plans for this country alone, but these cover it too."))
    elif shared:
        lines.append(_("Regional and global plans that also work here follow the country's own."))
    lines.append(_("Choose a plan:"))
    return Screen("\n\n".join(lines), InlineKeyboardMarkup(inline_keyboard=buttons))


def bundle_screen(
    catalogue: Catalogue,
    pricing: PricingService,
    translator: Translator,
    lang: str,
    bundle: Bundle,
    *,
    iso: str,
    origin: str,
    page: int,
    networks: NetworkDirectory | None = None,
) -> Screen:
    """The card of one plan: what, where, how fast (and on which networks), for how long, for
    how much (and per GB); Buy and Back."""
    title = bundle_place(bundle, lang, translator)
    data = data_size(bundle, lang, translator)
    validity = days(bundle.duration_days, lang, translator)
    price = price_text(pricing, bundle, lang)
    lines = [
        f"<b>{html.escape(title)} · {html.escape(data)} · {html.escape(validity)}</b>",
        "",
        _("📶 Data: {data}").format(data=html.escape(data)),
        ngettext(
            "🗓 Valid for {n} day from first use",
            "🗓 Valid for {n} days from first use",
            bundle.duration_days,
        ).format(n=bundle.duration_days),
        _("🌍 Coverage: {countries}").format(
            countries=coverage_text(catalogue, bundle, lang, iso)
        ),
    ]
    if bundle.speed:
        lines.append(_("⚡ Speed: {speed}").format(speed=html.escape(", ".join(bundle.speed))))
    lines += network_lines(catalogue, networks, bundle, iso, lang)
    lines.append(_("💰 Price: {price}").format(price=html.escape(price)))
    lines += price_per_gb_line(pricing, translator, lang, bundle)
    lines += [
        "",
        _(
            "The plan starts when the eSIM first connects to a network in a covered country, "
            "so you can install it before you travel."
        ),
    ]
    keyboard = _bundle_keyboard(catalogue, bundle, price, iso=iso, origin=origin, page=page)
    return Screen("\n".join(lines), keyboard)


def _bundle_keyboard(
    catalogue: Catalogue, bundle: Bundle, price: str, *, iso: str, origin: str, page: int
) -> InlineKeyboardMarkup:
    """Buy, "Will it work on my phone?" (about this plan), and Back to where it was found."""
    buy = BundleCallback(action="buy", bundle=bundle.name, iso=iso, origin=origin, page=page)
    if iso and catalogue.has_country(iso):
        back: CallbackData = CountryCallback(iso=iso, origin=origin, page=page)
    else:
        back = MenuCallback(action="buy")
    check = phone_check_data(PhoneCheckStep.ESIM, bundle.name, iso)
    rows = [
        [button(_("🛒 Buy · {price}").format(price=price), buy)],
        [button(_("📱 Will it work on my phone?"), check)],
        [back_button(back)],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def search_choices_screen(catalogue: Catalogue, lang: str, isos: Sequence[str]) -> Screen:
    buttons = _country_buttons(catalogue, isos, lang, ORIGIN_SEARCH)
    rows = _rows(buttons, COUNTRY_COLUMNS)
    rows.append([back_button(MenuCallback(action="buy"))])
    return Screen(_("Which one do you mean?"), InlineKeyboardMarkup(inline_keyboard=rows))


def not_found_screen(query: str, known_country: str | None = None) -> Screen:
    """Nothing matched: say what was understood, offer the lists and the menu."""
    shown = query.strip()
    if len(shown) > QUERY_ECHO_CHARS:
        shown = shown[: QUERY_ECHO_CHARS - 1] + "…"
    if known_country:
        text = _("😔 Sorry, there are no plans for {country} yet.").format(
            country=html.escape(known_country)
        )
    elif shown:
        text = _("🤔 I couldn't find a country called “{query}”.").format(query=html.escape(shown))
    else:
        text = _("🤔 I couldn't find that country.")
    text += "\n\n" + _("Check the spelling, or choose from the lists below.")
    rows = [
        [
            button(_("🗺 Regions"), CountryListCallback(view="regions")),
            button(_("🔤 All countries A–Z"), CountryListCallback(view="az")),
        ],
        [button(_("🛒 Buy eSIM"), MenuCallback(action="buy"))],
        [button(_("🏠 Main menu"), MenuCallback(action="main"))],
    ]
    return Screen(text, InlineKeyboardMarkup(inline_keyboard=rows))
