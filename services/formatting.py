"""How a plan, its data, its days and dates read, in an explicit language.

One path for the screens, the fulfilment worker and the notifications, so a plan is called the
same everywhere: `🇹🇭 Thailand · 1 GB · 7 days`, `🌍 Europe · Unlimited Lite · 30 days`.
Words come from the Translator (browse.po holds them); numbers and dates from Babel.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from babel.dates import format_date
from babel.numbers import format_decimal

from services.countries import country_name, flag, region_name
from services.esimgo.models import Bundle
from services.i18n import N_, Translator

UNLIMITED = N_("Unlimited")
GIGABYTES = N_("{amount} GB")
MEGABYTES = N_("{amount} MB")
DAY, DAYS = "{n} day", "{n} days"
COUNTRY, COUNTRIES = "{count} country", "{count} countries"
WORLD = "🌍"
_UNLIMITED_TIER = re.compile(r"Unlimited\s+(Lite|Essential|Plus|Max)\b", re.IGNORECASE)
# eSIM Go counts data in decimal units: 1 GB = 1000 MB = 10^9 bytes.
_GB = 1_000_000_000
_MB = 1_000_000


class OrderedPlan(Protocol):
    """What a plan title needs from an order (db Order and the screens' order views fit)."""

    @property
    def bundle_name(self) -> str: ...
    @property
    def country_code(self) -> str | None: ...
    @property
    def country_name(self) -> str | None: ...


def data_size(bundle: Bundle, lang: str, translator: Translator) -> str:
    """ "1 GB", "1,5 ГБ", "500 MB" or "Unlimited Lite"."""
    if bundle.unlimited:
        tier = _UNLIMITED_TIER.search(bundle.description)
        label = translator.gettext(UNLIMITED, lang)
        return f"{label} {tier.group(1).title()}" if tier else label
    if bundle.data_mb >= 1000:
        amount = format_decimal(Decimal(bundle.data_mb) / 1000, format="#,##0.#", locale=lang)
        return translator.gettext(GIGABYTES, lang).format(amount=amount)
    amount = format_decimal(bundle.data_mb, locale=lang)
    return translator.gettext(MEGABYTES, lang).format(amount=amount)


def data_amount(amount: int, lang: str, translator: Translator) -> str:
    """A measured amount of bytes: 2.4 GB / 2,4 ГБ; below 1 GB in whole MB."""
    amount = max(amount, 0)
    if amount >= _GB:
        value = (Decimal(amount) / _GB).quantize(Decimal("0.1"), ROUND_HALF_UP)
        number = format_decimal(value, format="#,##0.#", locale=lang)
        return translator.gettext(GIGABYTES, lang).format(amount=number)
    value = (Decimal(amount) / _MB).to_integral_value(ROUND_HALF_UP)
    number = format_decimal(value, format="#,##0", locale=lang)
    return translator.gettext(MEGABYTES, lang).format(amount=number)


def days(count: int, lang: str, translator: Translator) -> str:
    return translator.ngettext(DAY, DAYS, count, lang).format(n=count)


def flagged(iso: str, name: str) -> str:
    """`🇹🇭 Thailand`; the name alone for a code that makes no flag."""
    emoji = flag(iso)
    return f"{emoji} {name}" if emoji else name


def bundle_area(bundle: Bundle, lang: str, translator: Translator) -> str:
    """What a multi-country bundle is called: its region ("Asia") or "39 countries"."""
    for country in bundle.countries:
        if not (len(country.iso) == 2 and country.iso.isalpha()):
            return region_name(country.name, lang)
    count = len(bundle.coverage)
    return translator.ngettext(COUNTRY, COUNTRIES, count, lang).format(count=count)


def bundle_place(bundle: Bundle, lang: str, translator: Translator) -> str:
    """Where a bundle works: `🇹🇭 Thailand`, or `🌍 Asia` for a multi-country one."""
    if bundle.is_multi_country or not bundle.coverage:
        return f"{WORLD} {bundle_area(bundle, lang, translator)}"
    first = bundle.coverage[0]
    return flagged(first.iso, country_name(first.iso, lang, first.name))


def order_place(order: OrderedPlan, lang: str) -> str:
    """Where an order was bought for: its country, else its region, else the globe."""
    code = (order.country_code or "").strip()
    if len(code) == 2 and code.isalpha():
        return flagged(code, country_name(code, lang, order.country_name))
    if order.country_name:
        return f"{WORLD} {region_name(order.country_name, lang)}"
    return WORLD


def bundle_size(bundle: Bundle, lang: str, translator: Translator) -> str:
    """`1 GB · 7 days`."""
    return (
        f"{data_size(bundle, lang, translator)} · {days(bundle.duration_days, lang, translator)}"
    )


def bundle_title(bundle: Bundle, lang: str, translator: Translator) -> str:
    """`🇹🇭 Thailand · 1 GB · 7 days` for a bundle of the catalogue (plain text)."""
    return f"{bundle_place(bundle, lang, translator)} · {bundle_size(bundle, lang, translator)}"


def order_title(
    order: OrderedPlan, bundle: Bundle | None, lang: str, translator: Translator
) -> str:
    """`🇹🇭 Thailand · 1 GB · 7 days` for an order; its bundle's name when the catalogue no
    longer has the bundle (plain text: escape it for HTML)."""
    size = bundle_size(bundle, lang, translator) if bundle is not None else order.bundle_name
    return f"{order_place(order, lang)} · {size}"


def date_medium(moment: datetime, lang: str) -> str:
    """Mar 12, 2025 / 12 мар. 2025 г."""
    return format_date(moment.date(), format="medium", locale=lang)


def date_short(moment: datetime, lang: str) -> str:
    """Mar 12 / 12 мар. (button labels)."""
    return format_date(moment.date(), format="MMM d" if lang == "en" else "d MMM", locale=lang)


def day_and_month(moment: datetime, lang: str) -> str:
    """12 Dec / 12 дек. (usage lines)."""
    return format_date(moment.date(), format="d MMM", locale=lang)


def day_and_full_month(moment: datetime, lang: str) -> str:
    """12 December / 12 декабря: for sentences, where "дек." would end in a double stop."""
    return format_date(moment.date(), format="d MMMM", locale=lang)
