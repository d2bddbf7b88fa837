"""Find a country from what a traveller types: codes, English/Russian names, aliases, typos."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache

from babel import Locale
from babel.core import get_global
from rapidfuzz import fuzz, process

from services.countries import sort_key, territory_names

# Names people use that Babel does not give (short forms, old names, colloquial Russian,
# a few cities travellers type instead of the country).
ALIASES: dict[str, tuple[str, ...]] = {
    "GB": (
        "UK",
        "Britain",
        "Great Britain",
        "England",
        "Scotland",
        "Wales",
        "Northern Ireland",
        "London",
        "Англия",
        "Британия",
        "Великобритания",
        "Соединенное Королевство",
        "Шотландия",
        "Уэльс",
        "Лондон",
    ),
    "US": (
        "USA",
        "America",
        "United States of America",
        "The States",
        "New York",
        "США",
        "Штаты",
        "Америка",
        "Соединенные Штаты Америки",
        "Нью-Йорк",
    ),
    "AE": (
        "UAE",
        "Emirates",
        "Dubai",
        "Abu Dhabi",
        "ОАЭ",
        "Эмираты",
        "Арабские Эмираты",
        "Объединенные Арабские Эмираты",
        "Дубай",
        "Абу-Даби",
    ),
    "NL": ("Holland", "Голландия"),
    "KR": ("Korea", "Republic of Korea", "Корея", "Южная Корея", "Республика Корея", "Сеул"),
    "KP": ("DPRK", "North Korea", "Северная Корея"),
    "CZ": ("Czech Republic", "Czech", "Чешская Республика"),
    "TR": ("Turkey", "Turkiye", "Istanbul", "Antalya", "Турция", "Стамбул", "Анталья"),
    "VN": ("Viet Nam",),
    "TH": ("Тайланд", "Phuket", "Bangkok", "Пхукет", "Бангкок"),
    "ID": ("Bali", "Бали"),
    "EG": ("Hurghada", "Sharm el Sheikh", "Хургада", "Шарм-эль-Шейх"),
    "GE": ("Tbilisi", "Batumi", "Тбилиси", "Батуми"),
    "RU": ("Russian Federation", "Российская Федерация"),
    "CI": ("Ivory Coast", "Кот-д'Ивуар", "Берег Слоновой Кости"),
    "MM": ("Burma", "Бирма"),
    "TL": ("East Timor",),
    "SZ": ("Swaziland", "Свазиленд"),
    "CV": ("Cabo Verde", "Острова Зеленого Мыса"),
    "MK": ("Macedonia", "Македония"),
    "VA": ("Vatican", "Holy See"),
    "PS": ("Palestine", "Палестина"),
    "MO": ("Macao",),
    "HK": ("Hong Kong SAR China", "Гонконг (САР)"),
    "CD": ("DRC", "DR Congo", "Democratic Republic of the Congo", "ДР Конго"),
    "CG": ("Republic of the Congo",),
    "BA": ("Bosnia", "Босния"),
    "MD": ("Молдавия",),
    "BY": ("Belorussia", "Белоруссия"),
    "KG": ("Kirghizia", "Кыргызстан"),
    "DO": ("Dominicana", "Доминикана"),
    "TW": ("Тайвань (Китай)",),
    "ZA": ("ЮАР",),
    "CF": ("ЦАР",),
    "SA": ("Saudi", "Саудия"),
    "BQ": ("Bonaire",),
    "SX": ("Saint Martin (Dutch part)",),
    "MF": ("Saint Martin (French part)",),
    "FM": ("Микронезия",),
    "LK": ("Ceylon", "Цейлон"),
    "IR": ("Persia", "Персия"),
    "CN": ("Пекин", "Beijing"),
    "JP": ("Tokyo", "Токио"),
    "FR": ("Paris", "Париж"),
    "IT": ("Rome", "Рим"),
    "ES": ("Barcelona", "Барселона", "Madrid", "Мадрид"),
}

# Words too common across names to stand alone as fuzzy targets ("islands", "republic").
_STOP_WORDS = frozenset((
    "and", "of", "the", "islands", "island", "isles", "republic", "st", "saint", "sar", "china",
    "outlying", "minor", "south", "north", "east", "west", "new", "united", "states", "us", "u",
    "s", "equatorial", "french", "british", "american", "territory", "territories", "democratic",
    "central", "african", "federation", "federated", "о", "ва", "в", "острова", "остров",
    "республика", "и", "южная", "южные", "южный", "северная", "северные", "западная",
    "восточный", "внешние", "малые", "новая",
))  # fmt: skip

_NON_ALNUM = re.compile(r"[\W_]+")
_MAX_RAW_CHARS = 256
_MAX_QUERY_CHARS = 64
_MIN_PREFIX_CHARS = 3
_MIN_FUZZY_CHARS = 4
# A fuzzy result must be this close to the best one to be offered alongside it.
_FUZZY_SPREAD = 10.0
_REGIONAL_A = 0x1F1E6
_REGIONAL_Z = 0x1F1FF

SCORE_EXACT = 100.0
SCORE_WORDS = 95.0
SCORE_PREFIX = 90.0
SCORE_WORD_PREFIX = 85.0


@dataclass(frozen=True, slots=True)
class CountryMatch:
    iso: str
    score: float


def normalize(text: str) -> str:
    """Fold case, accents, ё→е and punctuation so "Côte d’Ivoire" == "cote d ivoire"."""
    folded = _NON_ALNUM.sub(" ", sort_key(text)).strip()
    return folded[4:] if folded.startswith("the ") else folded


@cache
def alpha3_codes() -> Mapping[str, str]:
    """Alpha-3 (and a few retired) codes → alpha-2, from CLDR's territory aliases in Babel."""
    aliases: Mapping[str, list[str]] = get_global("territory_aliases")
    return {
        code: targets[0]
        for code, targets in aliases.items()
        if len(code) == 3 and code.isalpha() and len(targets) == 1
    }


def _variants(name: str) -> Iterator[tuple[str, bool]]:
    """Spellings of one name, each with whether its words may match on their own.

    A bracketed qualifier is not a name of its own: "США" must not find "Виргинские о-ва (США)".
    """
    bare = re.sub(r"\(.*?\)", " ", name)
    yield name, bare == name
    if bare != name:
        yield bare, True
    if "&" in bare:
        yield bare.replace("&", " and "), True
    if "St." in bare:
        yield bare.replace("St.", "Saint"), True
    if ", " in bare:  # eSIM Go style "Korea, Republic of"
        head, tail = bare.split(", ", 1)
        yield f"{tail} {head}", True
    if "о-в" in name:
        yield name.replace("о-ва", "острова").replace("о-в", "остров"), bare == name
        yield bare.replace("о-ва", "острова").replace("о-в", "остров"), True


def _flag_codes(text: str) -> list[str]:
    """ISO codes spelled by flag emoji (pairs of regional-indicator letters) in the text."""
    letters = [
        chr(ord("A") + ord(ch) - _REGIONAL_A)
        for ch in text
        if _REGIONAL_A <= ord(ch) <= _REGIONAL_Z
    ]
    return ["".join(letters[i : i + 2]) for i in range(0, len(letters) - 1, 2)]


def _fold_names(seen: dict[str, bool], names: Iterable[str]) -> None:
    for name in names:
        for variant, scannable in _variants(name):
            if normalized := normalize(variant):
                seen[normalized] = seen.get(normalized, False) or scannable


@cache
def _static_names(iso: str) -> tuple[tuple[str, bool], ...]:
    """Normalized Babel names (en, ru) and aliases of one country: the same for every catalogue."""
    sources: list[Mapping[str, str]] = [
        territory_names("en"),
        territory_names("ru"),
        Locale.parse("en").territories,
        Locale.parse("ru").territories,
    ]
    seen: dict[str, bool] = {}
    _fold_names(seen, [name for source in sources if (name := source.get(iso))])
    _fold_names(seen, ALIASES.get(iso, ()))
    return tuple(seen.items())


class CountrySearch:
    """An index over the catalogue's countries; build once per catalogue, query many times."""

    def __init__(self, isos: Iterable[str], extra_names: Mapping[str, str] | None = None) -> None:
        extra = {iso.strip().upper(): name for iso, name in (extra_names or {}).items()}
        known = territory_names("en")
        codes = (code.strip().upper() for code in isos)
        # A code nobody can name (not in CLDR, no eSIM Go name) is not a country to offer.
        self._isos = frozenset(
            c
            for c in codes
            if len(c) == 2 and c.isascii() and c.isalpha() and (c in known or extra.get(c))
        )
        self._exact: dict[str, list[str]] = {}
        self._codes: dict[str, str] = {}
        suffixes: list[tuple[str, str, bool, int]] = []
        fuzzy: dict[str, list[str]] = {}

        names = self._names(extra)
        for iso in sorted(self._isos):
            self._codes[iso.lower()] = iso
            for name, scannable in names.get(iso, ()):
                words = name.split()
                self._add(self._exact, name, iso)
                self._add(fuzzy, name, iso)
                for i in range(len(words) if scannable else 1):
                    suffix = " ".join(words[i:])
                    suffixes.append((suffix, iso, i == 0, len(name)))
                    if i and words[i] not in _STOP_WORDS and len(suffix) >= _MIN_FUZZY_CHARS:
                        self._add(fuzzy, suffix, iso)
        for code, iso in alpha3_codes().items():
            if iso in self._isos:
                self._codes.setdefault(code.lower(), iso)

        suffixes.sort()
        self._suffixes = [entry[0] for entry in suffixes]
        self._suffix_info = [(iso, at_start, length) for _, iso, at_start, length in suffixes]
        self._choices = list(fuzzy)
        self._choice_isos = [fuzzy[choice] for choice in self._choices]

    @staticmethod
    def _add(index: dict[str, list[str]], key: str, iso: str) -> None:
        isos = index.setdefault(key, [])
        if iso not in isos:
            isos.append(iso)

    def _names(self, extra_names: Mapping[str, str]) -> dict[str, list[tuple[str, bool]]]:
        """Every normalized name of every indexed country (with its scannable flag), once."""
        result: dict[str, list[tuple[str, bool]]] = {}
        for iso in self._isos:
            seen = dict(_static_names(iso))
            if extra := extra_names.get(iso):
                _fold_names(seen, [extra])
            result[iso] = list(seen.items())
        return result

    @property
    def isos(self) -> frozenset[str]:
        return self._isos

    def search(self, text: str, limit: int = 6) -> list[CountryMatch]:
        """Best matches first; an exact match comes alone unless other names share its words."""
        if not isinstance(text, str) or limit <= 0 or len(text) > _MAX_RAW_CHARS:
            return []
        flags = [iso for iso in _flag_codes(text) if iso in self._isos]
        if flags:
            return [CountryMatch(iso, SCORE_EXACT) for iso in dict.fromkeys(flags)][:limit]
        query = normalize(text)
        if not query or len(query) > _MAX_QUERY_CHARS or not any(ch.isalpha() for ch in query):
            return []

        found: dict[str, float] = {}
        code = self._codes.get(query) if len(query) <= 3 else None
        if code:
            found[code] = SCORE_EXACT
        for iso in self._exact.get(query, ()):
            found.setdefault(iso, SCORE_EXACT)
        if found:
            # "guinea" → Guinea, then Guinea-Bissau, Equatorial Guinea…; a code adds prefixes.
            self._scan(query, found, with_prefixes=code is not None and len(query) == 3)
            return self._ranked(found, limit)
        self._scan(query, found, with_prefixes=True)
        if found:
            return self._ranked(found, limit)
        if len(query) >= _MIN_FUZZY_CHARS:
            return self._fuzzy(query, limit)
        return []

    def exact(self, text: str, *, codes: bool = True) -> str | None:
        """The ISO code when the text is one country's full name or alias (or, if `codes`, its
        ISO code), else None: no prefixes, no typos, nothing ambiguous."""
        if not isinstance(text, str) or len(text) > _MAX_RAW_CHARS:
            return None
        query = normalize(text)
        found = set(self._exact.get(query, ()))
        if codes and len(query) <= 3 and (code := self._codes.get(query)):
            found.add(code)
        return found.pop() if len(found) == 1 else None

    def best(self, text: str) -> str | None:
        """The ISO code when the text names exactly one country, else None."""
        matches = self.search(text, limit=2)
        return matches[0].iso if len(matches) == 1 else None

    def _scan(self, query: str, found: dict[str, float], *, with_prefixes: bool) -> None:
        """Names containing the query as whole words, and (optionally) names it begins."""
        if len(query) < _MIN_PREFIX_CHARS:
            return
        size = len(query)
        start = bisect_left(self._suffixes, query)
        for index in range(start, len(self._suffixes)):
            suffix = self._suffixes[index]
            if not suffix.startswith(query):
                break
            iso, at_start, _length = self._suffix_info[index]
            if len(suffix) == size or suffix[size] == " ":
                score = SCORE_WORDS
            elif not with_prefixes:
                continue
            else:
                score = SCORE_PREFIX if at_start else SCORE_WORD_PREFIX
            if found.get(iso, 0.0) < score:
                found[iso] = score

    def _fuzzy(self, query: str, limit: int) -> list[CountryMatch]:
        cutoff = 75.0 if len(query) <= 5 else 80.0
        hits = process.extract(
            query,
            self._choices,
            scorer=fuzz.ratio,
            processor=None,
            score_cutoff=cutoff,
            limit=limit * 4,
        )
        found: dict[str, float] = {}
        for _choice, score, index in hits:
            for iso in self._choice_isos[index]:
                if found.get(iso, 0.0) < score:
                    found[iso] = float(score)
        if not found:
            return []
        best = max(found.values())
        close = {iso: score for iso, score in found.items() if score >= best - _FUZZY_SPREAD}
        return self._ranked(close, limit)

    def _ranked(self, found: dict[str, float], limit: int) -> list[CountryMatch]:
        english = territory_names("en")
        order = sorted(
            found.items(), key=lambda item: (-item[1], len(english.get(item[0], "")), item[0])
        )
        return [CountryMatch(iso, score) for iso, score in order[:limit]]
