"""Inline mode (`@bot thailand` in any chat): plans as cards with a link into the bot.

The same search as typing in the bot, from the catalogue in memory (never eSIM Go). Answers are
kept for a minute per query and language, and started over when the catalogue is refreshed.
"""

from __future__ import annotations

import html
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.catalogue import Catalogue, CatalogueService
from services.countries import flag
from services.deeplinks import country_parameter, plan_parameter
from services.esimgo.models import Bundle
from services.i18n import N_, Translator, normalize_language
from services.plan_text import (
    format_data,
    format_days,
    format_price_per_gb,
    plan_place,
    plan_summary,
    price_per_gb,
)
from services.pricing import PricingService, format_price
from services.trip import TripPlanner, parse_trip

CACHE_SECONDS = 60
MAX_ANSWERS = 1024
MAX_RESULTS = 50  # Telegram's limit per answer
_MAX_QUERY_CHARS = 256
_SEARCH_CHOICES = 6
_COVERAGE_NAMES = 4

BUY_IN_BOT = N_("🛒 Buy in the bot")
SEE_PLANS = N_("📱 See plans in the bot")
PRICE_LINE = N_("💰 Price: {price}")
STARTS_ON_FIRST_USE = N_(
    "The plan starts when the eSIM first connects to a network in a covered country, "
    "so you can install it before you travel."
)
COVERS = N_("Covers {countries}")
UNLIMITED_DATA = N_("Unlimited data")


@dataclass(frozen=True, slots=True)
class InlineResult:
    """One article: what the list shows, the card it posts, and its button into the bot."""

    id: str
    title: str
    description: str
    text: str  # HTML
    button: str
    start_parameter: str


@dataclass(frozen=True, slots=True)
class InlineAnswer:
    results: tuple[InlineResult, ...]
    cache_seconds: int = CACHE_SECONDS


class InlineCatalogue:
    """Builds and briefly keeps inline answers."""

    def __init__(
        self,
        catalogue: CatalogueService,
        pricing: PricingService,
        translator: Translator,
        *,
        ttl_seconds: float = CACHE_SECONDS,
        max_answers: int = MAX_ANSWERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalogue = catalogue
        self._pricing = pricing
        self._translator = translator
        self._trips = TripPlanner(catalogue, pricing)
        self._ttl = ttl_seconds
        self._max = max_answers
        self._clock = clock
        self._built_for: Catalogue | None = None
        self._answers: OrderedDict[tuple[str, str], tuple[float, InlineAnswer]] = OrderedDict()

    def answer(self, query: str, language: str | None) -> InlineAnswer:
        lang = normalize_language(language)
        text = " ".join(query.split())[:_MAX_QUERY_CHARS]
        current = self._catalogue.catalogue
        if current is not self._built_for:
            self._answers.clear()
            self._built_for = current
        key, now = (text, lang), self._clock()
        cached = self._answers.get(key)
        if cached is not None and cached[0] > now:
            self._answers.move_to_end(key)
            return cached[1]
        answer = InlineAnswer(tuple(self._results(current, text, lang)[:MAX_RESULTS]))
        self._answers[key] = (now + self._ttl, answer)
        self._answers.move_to_end(key)
        if len(self._answers) > self._max:
            self._answers.popitem(last=False)
        return answer

    def _results(self, catalogue: Catalogue, text: str, lang: str) -> list[InlineResult]:
        if not text:
            return [self._country(catalogue, iso, lang) for iso in catalogue.popular_countries()]
        trip = parse_trip(catalogue.search, text)
        if trip is not None:
            covering = self._trips.plan(trip).covering
            if covering:
                return [
                    self._plan(catalogue, p.bundle, "", lang, trip.countries) for p in covering
                ]
            return [self._country(catalogue, iso, lang) for iso in trip.countries]
        matches = catalogue.search.search(text, limit=_SEARCH_CHOICES)
        if len(matches) == 1:
            iso = matches[0].iso
            return [
                self._plan(catalogue, b, iso, lang) for b in catalogue.bundles_for_country(iso)
            ]
        return [self._country(catalogue, m.iso, lang) for m in matches]

    def _(self, message: str, lang: str) -> str:
        return self._translator.gettext(message, lang)

    def _plan(
        self,
        catalogue: Catalogue,
        bundle: Bundle,
        iso: str,
        lang: str,
        trip: Sequence[str] = (),
    ) -> InlineResult:
        place = plan_place(catalogue, bundle, lang, self._translator)
        summary = plan_summary(bundle, self._pricing, lang, self._translator)
        price = format_price(self._pricing.retail_price(bundle.price), lang)
        unit = price_per_gb(self._pricing, bundle)
        value = (
            format_price_per_gb(unit, lang, self._translator)
            if unit is not None
            else self._(UNLIMITED_DATA, lang)
        )
        title = f"{format_data(bundle, lang, self._translator)} · "
        title += format_days(bundle.duration_days, lang, self._translator)
        lines = [
            f"<b>{html.escape(place)} · {html.escape(title)}</b>",
            html.escape(self._(PRICE_LINE, lang).format(price=price)) + f" · {html.escape(value)}",
        ]
        description = value
        if trip:
            names = ", ".join(catalogue.country_name(c, lang) for c in trip[:_COVERAGE_NAMES])
            covers = self._(COVERS, lang).format(countries=names)
            lines.append(html.escape(covers))
            description = f"{covers} · {value}"
        lines += ["", html.escape(self._(STARTS_ON_FIRST_USE, lang))]
        parameter = plan_parameter(bundle.name, iso)
        return InlineResult(
            id=parameter,
            title=f"{place} · {summary}",
            description=description,
            text="\n".join(lines),
            button=self._(BUY_IN_BOT, lang),
            start_parameter=parameter,
        )

    def _country(self, catalogue: Catalogue, iso: str, lang: str) -> InlineResult:
        bundles = catalogue.bundles_for_country(iso)
        cheapest = min(
            (self._pricing.retail_price(b.price) for b in bundles), key=lambda p: p.amount
        )
        count = len(bundles)
        offer = self._translator.ngettext(
            "{count} plan from {price}", "{count} plans from {price}", count, lang
        ).format(count=count, price=format_price(cheapest, lang))
        name = f"{flag(iso)} {catalogue.country_name(iso, lang)}".strip()
        parameter = country_parameter(iso)
        return InlineResult(
            id=parameter,
            title=name,
            description=offer,
            text=f"<b>{html.escape(name)}</b>\n{html.escape(offer)}",
            button=self._(SEE_PLANS, lang),
            start_parameter=parameter,
        )
