"""Country and region names for display: Babel's localized names, flags, locale-aware ordering."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from functools import cache

from babel import Locale

from services.i18n import normalize_language

# Babel's full names are formal or clumsy for a few places travellers buy eSIMs for.
_DISPLAY_OVERRIDES: dict[str, dict[str, str]] = {
    "en": {"HK": "Hong Kong", "MO": "Macau"},
    "ru": {"HK": "Гонконг", "MO": "Макао", "US": "США", "KR": "Южная Корея"},
}

# eSIM Go's region names (catalogue `region` field); Babel has no names for these groupings.
_REGION_NAMES: dict[str, dict[str, str]] = {
    "africa": {"en": "Africa", "ru": "Африка"},
    "antarctica": {"en": "Antarctica", "ru": "Антарктида"},
    "asia": {"en": "Asia", "ru": "Азия"},
    "europe": {"en": "Europe", "ru": "Европа"},
    "global": {"en": "Global", "ru": "Весь мир"},
    "middle east": {"en": "Middle East", "ru": "Ближний Восток"},
    "north america": {"en": "North America", "ru": "Северная Америка"},
    "south america": {"en": "South America", "ru": "Южная Америка"},
    "central america": {"en": "Central America", "ru": "Центральная Америка"},
    "latam": {"en": "Latin America", "ru": "Латинская Америка"},
    "latin america": {"en": "Latin America", "ru": "Латинская Америка"},
    "caribbean": {"en": "Caribbean", "ru": "Карибские острова"},
    "oceania": {"en": "Oceania", "ru": "Океания"},
    "americas": {"en": "Americas", "ru": "Америка"},
    "balkans": {"en": "Balkans", "ru": "Балканы"},
    "scandinavia": {"en": "Scandinavia", "ru": "Скандинавия"},
    "central asia": {"en": "Central Asia", "ru": "Центральная Азия"},
    "cis": {"en": "CIS", "ru": "СНГ"},
}

_REGIONAL_INDICATOR_A = 0x1F1E6


def _lang(lang: str | None) -> str:
    return normalize_language(lang, "en")


@cache
def territory_names(lang: str) -> Mapping[str, str]:
    """Babel's names of two-letter territories in a supported language, with our overrides."""
    names = {
        code: name
        for code, name in Locale.parse(_lang(lang)).territories.items()
        if len(code) == 2 and code.isalpha()
    }
    names.update(_DISPLAY_OVERRIDES.get(_lang(lang), {}))
    return names


def country_name(iso: str, lang: str | None, default: str | None = None) -> str:
    """The localized name of a country, else `default` (eSIM Go's English name), else the code."""
    code = iso.strip().upper()
    name = territory_names(_lang(lang)).get(code)
    if name:
        return name
    return default or code


def flag(iso: str) -> str:
    """The flag emoji built from regional-indicator letters; empty for anything but two letters."""
    code = iso.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        return ""
    return "".join(chr(_REGIONAL_INDICATOR_A + ord(ch) - ord("A")) for ch in code)


def region_name(region: str, lang: str | None) -> str:
    """A localized name for eSIM Go's region (e.g. "Middle East" → "Ближний Восток")."""
    names = _REGION_NAMES.get(region.strip().casefold())
    if names is None:
        return region
    return names[_lang(lang)]


def sort_key(name: str) -> str:
    """A key that orders names as a reader expects: case and accents ignored, ё sorted as е."""
    folded = unicodedata.normalize("NFC", name).casefold().replace("ё", "е")
    # Keep й apart from и: in Russian they are different letters, not an accent.
    folded = folded.replace("й", "\ue000")
    stripped = "".join(
        ch for ch in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(ch)
    )
    return stripped.replace("\ue000", "й")


def sorted_by_name(
    isos: Iterable[str], lang: str | None, defaults: Mapping[str, str] | None = None
) -> list[str]:
    """ISO codes ordered A–Z (or А–Я) by their name in `lang`, for paged country lists."""
    defaults = defaults or {}
    return sorted(
        isos, key=lambda iso: (sort_key(country_name(iso, lang, defaults.get(iso))), iso)
    )
