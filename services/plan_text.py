"""A plan in words for code without aiogram's locale: "1 GB · 7 days · 50 ⭐", its price per GB."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import format_currency, format_decimal

from services.catalogue import Catalogue
from services.countries import flag, region_name
from services.esimgo.models import Bundle
from services.i18n import N_, Translator
from services.pricing import STARS, PricingService, format_price

# The browsing screens' words (translated in browse.po).
UNLIMITED = N_("Unlimited")
GIGABYTES = N_("{amount} GB")
MEGABYTES = N_("{amount} MB")
DAY, DAYS = "{n} day", "{n} days"
COUNTRY, COUNTRIES = "{count} country", "{count} countries"
PER_GB = N_("≈ {price} per GB")

_UNLIMITED_TIER = re.compile(r"Unlimited\s+(Lite|Essential|Plus|Max)\b", re.IGNORECASE)
_MB_PER_GB = Decimal(1000)
# Below this many Stars per GB one decimal says more than a rounded whole number.
_STARS_WHOLE_FROM = Decimal(10)


def format_data(bundle: Bundle, lang: str, translator: Translator) -> str:
    """ "1 GB", "1,5 ГБ", "500 MB" or "Unlimited Lite"; 1 GB = 1000 MB as eSIM Go counts."""
    if bundle.unlimited:
        label = translator.gettext(UNLIMITED, lang)
        tier = _UNLIMITED_TIER.search(bundle.description)
        return f"{label} {tier.group(1).title()}" if tier else label
    if bundle.data_mb >= _MB_PER_GB:
        amount = format_decimal(Decimal(bundle.data_mb) / _MB_PER_GB, "#,##0.#", locale=lang)
        return translator.gettext(GIGABYTES, lang).format(amount=amount)
    amount = format_decimal(bundle.data_mb, locale=lang)
    return translator.gettext(MEGABYTES, lang).format(amount=amount)


def format_days(days: int, lang: str, translator: Translator) -> str:
    return translator.ngettext(DAY, DAYS, days, lang).format(n=days)


def plan_summary(
    bundle: Bundle, pricing: PricingService, lang: str, translator: Translator
) -> str:
    """ "1 GB · 7 days · 50 ⭐"."""
    price = format_price(pricing.retail_price(bundle.price), lang)
    days = format_days(bundle.duration_days, lang, translator)
    return " · ".join((format_data(bundle, lang, translator), days, price))


def plan_place(catalogue: Catalogue, bundle: Bundle, lang: str, translator: Translator) -> str:
    """Where a plan works: "🇹🇭 Thailand", or "🌍 Asia" / "🌍 39 countries" for a shared one."""
    if not bundle.is_multi_country:
        iso = bundle.coverage[0].iso
        return f"{flag(iso)} {catalogue.country_name(iso, lang)}".strip()
    for country in bundle.countries:
        if not (len(country.iso) == 2 and country.iso.isalpha()):
            return f"🌍 {region_name(country.name, lang)}"
    count = len(bundle.coverage)
    return "🌍 " + translator.ngettext(COUNTRY, COUNTRIES, count, lang).format(count=count)


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """A price per GB: Stars or major units of fiat, rounded for reading, not for charging."""

    amount: Decimal
    currency: str


def price_per_gb(pricing: PricingService, bundle: Bundle) -> UnitPrice | None:
    """What a GB of this plan costs the user; None for unlimited or dataless plans."""
    if bundle.unlimited or bundle.data_mb <= 0:
        return None
    price = pricing.retail_price(bundle.price)
    per_gb = price.major * _MB_PER_GB / Decimal(bundle.data_mb)
    if price.is_stars:
        step = Decimal(1) if per_gb >= _STARS_WHOLE_FROM else Decimal("0.1")
    else:
        step = Decimal(1).scaleb(-price.exponent)
    return UnitPrice(per_gb.quantize(step, rounding=ROUND_HALF_UP), price.currency)


def format_price_per_gb(unit: UnitPrice, lang: str, translator: Translator) -> str:
    """ "≈ 17 ⭐ per GB", "≈ 1,50 $ за ГБ"."""
    if unit.currency == STARS:
        amount = f"{format_decimal(unit.amount, locale=lang)} ⭐"
    else:
        amount = format_currency(unit.amount, unit.currency, locale=lang)
    return translator.gettext(PER_GB, lang).format(price=amount)
