"""A trip, not a country: several countries typed at once and the plans that cover them all.

"Thailand, Vietnam, Cambodia", "Франция и Италия", "FR IT ES", "Japan + USA / Mexico": the text
is split at separators (commas, "and"/"и", "&", "+", "/", …) and spaces between names or codes.
A text that names one country ("Bosnia and Herzegovina", "United States") is not a trip: `parse`
returns None and the single-country search runs exactly as before.

When no plan covers every country, the smallest set of plans that does is found exactly: a
search over subsets of the (at most ten) countries, fewest plans first, then the cheapest total.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.catalogue import Catalogue, CatalogueService
from services.country_search import CountrySearch
from services.esimgo.models import Bundle
from services.pricing import Price, PricingService

MAX_TRIP_COUNTRIES = 10
MAX_COVERING_PLANS = 30
MAX_PLAN_SETS = 5
# Buying country by country is shown beside a plan when it costs at most this much more.
CLOSE_ENOUGH = Decimal("0.10")
# How many neighbouring parts ("Bosnia" "and" "Herzegovina") may form one country's name.
_MAX_JOINED_PARTS = 4
_MAX_CODE_CHARS = 3
_SEPARATOR = re.compile(
    r"\s*(?:[,;/+&|\n]|->|→|—|–|\s-\s|\b(?:and|plus|then|to|и|плюс|потом|затем)\b)\s*",
    re.IGNORECASE,
)
_REGIONAL_A, _REGIONAL_Z = 0x1F1E6, 0x1F1FF


@dataclass(frozen=True, slots=True)
class TripQuery:
    countries: tuple[str, ...]  # ISO codes in the order typed, each once
    unknown: tuple[str, ...] = ()  # parts of the text that name no country we sell
    too_many: bool = False  # more than MAX_TRIP_COUNTRIES were named; the first ones are kept


@dataclass(frozen=True, slots=True)
class CoveringPlan:
    """One plan for the whole trip, with buying each country's own plan beside it when that
    is cheaper or close (None otherwise, or when a country has no comparable plan)."""

    bundle: Bundle
    price: Price
    separately: Price | None


@dataclass(frozen=True, slots=True)
class SetPlan:
    bundle: Bundle
    price: Price
    countries: tuple[str, ...]  # the trip's countries this plan is bought for


@dataclass(frozen=True, slots=True)
class PlanSet:
    plans: tuple[SetPlan, ...]
    total: Price


@dataclass(frozen=True, slots=True)
class TripPlan:
    query: TripQuery
    covering: tuple[CoveringPlan, ...]  # cheapest first
    sets: tuple[PlanSet, ...] = ()  # only when no single plan covers every country


def _has_flags(text: str) -> bool:
    return any(_REGIONAL_A <= ord(ch) <= _REGIONAL_Z for ch in text)


def _segments(text: str) -> list[tuple[int, int]]:
    """(start, end) of the parts between separators, empty ones left out."""
    spans, start = [], 0
    for separator in _SEPARATOR.finditer(text):
        spans.append((start, separator.start()))
        start = separator.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _split_words(search: CountrySearch, text: str) -> list[str] | None:
    """Countries one after another with spaces ("FR IT ES", "South Korea Japan"): the fewest
    exact names or codes that make up every word; None if the words do not split so."""
    # A short word is a code only in capitals or among codes alone: "to" is not Tonga here.
    words = text.split()
    if len(words) < 2:
        return None
    all_codes = all(len(w) <= _MAX_CODE_CHARS and w.isalpha() for w in words)
    best: list[list[str] | None] = [[]] + [None] * len(words)
    for end in range(1, len(words) + 1):
        for start in range(end):
            before, current = best[start], best[end]
            if before is None or (current is not None and len(current) <= len(before) + 1):
                continue
            piece = words[start:end]
            codes = len(piece) == 1 and (all_codes or piece[0].isupper())
            if iso := search.exact(" ".join(piece), codes=codes):
                best[end] = [*before, iso]
    return best[-1] if best[-1] and len(best[-1]) > 1 else None


def _resolve(search: CountrySearch, part: str) -> list[str]:
    """The countries one part names: exactly, as words in a row, or forgiving a typo."""
    if iso := search.exact(part):
        return [iso]
    if words := _split_words(search, part):
        return words
    iso = search.best(part)
    return [iso] if iso else []


def parse_trip(search: CountrySearch, text: str) -> TripQuery | None:
    """The countries of a trip, or None when the text names fewer than two (a one-country
    search, unchanged)."""
    if not isinstance(text, str) or not text.strip() or len(text) > 256:
        return None
    if _has_flags(text):
        flags = [m.iso for m in search.search(text, limit=MAX_TRIP_COUNTRIES + 1)]
        return _query(flags, []) if len(flags) > 1 else None
    if search.exact(text):
        return None
    spans = _segments(text)
    isos: list[str] = []
    unknown: list[str] = []
    index = 0
    while index < len(spans):
        step, found = 1, _resolve(search, text[spans[index][0] : spans[index][1]])
        # The longest run of parts that is one name: "Trinidad and Tobago", "Босния и Герцеговина".
        for last in range(min(index + _MAX_JOINED_PARTS, len(spans)) - 1, index, -1):
            if iso := search.exact(text[spans[index][0] : spans[last][1]], codes=False):
                step, found = last - index + 1, [iso]
                break
        if not found:
            unknown.append(text[spans[index][0] : spans[index][1]].strip())
        isos.extend(found)
        index += step
    return _query(isos, unknown) if len(set(isos)) > 1 else None


def _query(isos: Iterable[str], unknown: Sequence[str]) -> TripQuery:
    distinct = tuple(dict.fromkeys(isos))
    return TripQuery(
        distinct[:MAX_TRIP_COUNTRIES], tuple(unknown), len(distinct) > MAX_TRIP_COUNTRIES
    )


def _at_least(bundle: Bundle, unlimited: bool, data_mb: int, days: int) -> bool:
    """Whether the bundle gives at least this much data for at least this long."""
    if bundle.duration_days < days:
        return False
    if unlimited:
        return bundle.unlimited
    return bundle.unlimited or bundle.data_mb >= data_mb


def _cheapest_cover(
    full: int, options: dict[int, tuple[int, Bundle]]
) -> tuple[int, int, tuple[Bundle, ...]] | None:
    """(plans, total, bundles) of the fewest plans, then the cheapest, whose masks cover `full`:
    exact, over at most 2^countries states."""
    # A union only grows, so taking states in increasing mask order settles each one before
    # it is extended.
    best: dict[int, tuple[int, int, tuple[Bundle, ...]]] = {0: (0, 0, ())}
    pending = [0]
    seen: set[int] = set()
    while pending:
        mask = heapq.heappop(pending)
        if mask in seen:
            continue
        seen.add(mask)
        count, total, chosen = best[mask]
        for bits, (amount, bundle) in options.items():
            grown = mask | bits
            if grown == mask:
                continue
            known = best.get(grown)
            if known is None or (count + 1, total + amount) < known[:2]:
                best[grown] = (count + 1, total + amount, (*chosen, bundle))
                heapq.heappush(pending, grown)
    return best.get(full)


class TripPlanner:
    """Plans for a trip from the catalogue in memory, priced as the user pays (never eSIM Go)."""

    def __init__(self, catalogue: CatalogueService, pricing: PricingService) -> None:
        self._catalogue = catalogue
        self._pricing = pricing

    def parse(self, text: str) -> TripQuery | None:
        return parse_trip(self._catalogue.catalogue.search, text)

    def find(self, text: str) -> TripPlan | None:
        """The trip a text names, planned; None when it names one country or none."""
        query = self.parse(text)
        return self.plan(query) if query is not None else None

    def plan(self, query: TripQuery) -> TripPlan:
        catalogue = self._catalogue.catalogue
        wanted = frozenset(query.countries)
        whole = [
            b
            for b in catalogue.shared_bundles(query.countries[0])
            if wanted <= {c.iso for c in b.coverage}
        ]
        covering = sorted(
            (self._covering(catalogue, b, query.countries) for b in whole),
            key=lambda p: (p.price.amount, -p.bundle.unlimited, -p.bundle.data_mb, p.bundle.name),
        )
        if covering:
            return TripPlan(query, tuple(covering[:MAX_COVERING_PLANS]))
        return TripPlan(query, (), self._plan_sets(catalogue, query.countries))

    def _price(self, bundle: Bundle) -> Price:
        return self._pricing.retail_price(bundle.price)

    def _covering(self, catalogue: Catalogue, bundle: Bundle, isos: Sequence[str]) -> CoveringPlan:
        price = self._price(bundle)
        amounts = []
        for iso in isos:
            own = [
                self._price(b).amount
                for b in catalogue.own_bundles(iso)
                if _at_least(b, bundle.unlimited, bundle.data_mb, bundle.duration_days)
            ]
            if not own:
                return CoveringPlan(bundle, price, None)
            amounts.append(min(own))
        separately = Price(sum(amounts), price.currency)
        close = separately.amount <= price.amount * (1 + CLOSE_ENOUGH)
        return CoveringPlan(bundle, price, separately if close else None)

    def _plan_sets(self, catalogue: Catalogue, isos: Sequence[str]) -> tuple[PlanSet, ...]:
        """The cheapest sets of the fewest plans, one per size of plan, cheapest first."""
        bit = {iso: 1 << i for i, iso in enumerate(isos)}
        masks: dict[str, int] = {}
        for iso in isos:
            for bundle in catalogue.bundles_for_country(iso):
                masks[bundle.name] = masks.get(bundle.name, 0) | bit[iso]
        candidates = [b for name in masks if (b := catalogue.by_name(name)) is not None]
        # (False, 0, 0) takes any plan: a cover exists even when no one size fits every country.
        shapes = {(False, 0, 0), *((b.unlimited, b.data_mb, b.duration_days) for b in candidates)}
        found: dict[tuple[str, ...], PlanSet] = {}
        for shape in shapes:
            options: dict[int, tuple[int, Bundle]] = {}
            for bundle in candidates:
                if _at_least(bundle, *shape):
                    amount = self._price(bundle).amount
                    mask = masks[bundle.name]
                    if mask not in options or amount < options[mask][0]:
                        options[mask] = (amount, bundle)
            cover = _cheapest_cover((1 << len(isos)) - 1, options)
            if cover is not None:
                plan_set = self._plan_set(cover[2], isos, masks)
                found.setdefault(tuple(p.bundle.name for p in plan_set.plans), plan_set)
        if not found:
            return ()
        fewest = min(len(s.plans) for s in found.values())
        best = sorted(
            (s for s in found.values() if len(s.plans) == fewest), key=lambda s: s.total.amount
        )
        return tuple(best[:MAX_PLAN_SETS])

    def _plan_set(
        self, bundles: Sequence[Bundle], isos: Sequence[str], masks: dict[str, int]
    ) -> PlanSet:
        """Each country is bought for once, on the first plan (cheapest first) that covers it."""
        ordered = sorted(bundles, key=lambda b: (self._price(b).amount, b.name))
        left = list(isos)
        plans = []
        for bundle in ordered:
            mine = tuple(iso for i, iso in enumerate(isos) if masks[bundle.name] >> i & 1)
            served = tuple(iso for iso in mine if iso in left)
            left = [iso for iso in left if iso not in served]
            plans.append(SetPlan(bundle, self._price(bundle), served))
        currency = plans[0].price.currency
        return PlanSet(tuple(plans), Price(sum(p.price.amount for p in plans), currency))
