"""Browsing the catalogue: Buy → popular / regions / A–Z / typed search → country → plan card."""

from __future__ import annotations

from functools import cache

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import StateFilter
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers import render
from handlers.callbacks import (
    ORIGIN_SEARCH,
    BundleCallback,
    CountryCallback,
    CountryListCallback,
    MenuCallback,
)
from handlers.common import show
from handlers.guards import RequireCatalogue
from handlers.screen_cache import ScreenCache
from handlers.trip_render import trip_screen
from services.catalogue import Catalogue
from services.countries import country_name, territory_names
from services.country_search import CountrySearch
from services.esimgo.models import Bundle
from services.i18n import Translator
from services.networks import NetworkDirectory, NetworkService
from services.pricing import PricingService
from services.trip import TripPlanner

SEARCH_CHOICES = 6
# CLDR territory codes that are groupings or test locales, not places one travels to.
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})


@cache
def _world_search() -> CountrySearch:
    """Every country Babel knows, to tell "not sold" apart from "not a country" (built once)."""
    return CountrySearch(iso for iso in territory_names("en") if iso not in _NOT_COUNTRIES)


async def on_buy(
    query: CallbackQuery, current: Catalogue, language: str, screens: ScreenCache
) -> None:
    await show(query, screens.render(render.buy_screen, current, language))


async def on_regions(
    query: CallbackQuery, current: Catalogue, language: str, screens: ScreenCache
) -> None:
    await show(query, screens.render(render.regions_screen, current, language))


async def on_az(
    query: CallbackQuery,
    callback_data: CountryListCallback,
    current: Catalogue,
    language: str,
    screens: ScreenCache,
) -> None:
    await show(query, screens.render(render.az_screen, current, language, callback_data.page))


async def on_region(
    query: CallbackQuery,
    callback_data: CountryListCallback,
    current: Catalogue,
    language: str,
    callback_answer: CallbackAnswer,
    screens: ScreenCache,
) -> None:
    screen = screens.render(
        render.region_screen, current, language, callback_data.region, callback_data.page
    )
    if screen is None:
        callback_answer.text = _("This region is no longer available.")
        screen = screens.render(render.regions_screen, current, language)
    await show(query, screen)


def _plans(
    screens: ScreenCache,
    current: Catalogue,
    pricing: PricingService,
    translator: Translator,
    language: str,
    pressed: CountryCallback | BundleCallback,
) -> render.Screen | None:
    """The plan list of the country a button names, where that button came from."""
    return screens.render(
        render.country_screen,
        current,
        pricing,
        translator,
        language,
        pressed.iso.upper(),
        pressed.origin,
        pressed.page,
    )


async def on_country(
    query: CallbackQuery,
    callback_data: CountryCallback,
    current: Catalogue,
    pricing: PricingService,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
    screens: ScreenCache,
) -> None:
    screen = _plans(screens, current, pricing, translator, language, callback_data)
    if screen is None:
        callback_answer.text = _("Sorry, there are no plans for this country right now.")
        screen = screens.render(render.buy_screen, current, language)
    await show(query, screen)


async def on_bundle(
    query: CallbackQuery,
    callback_data: BundleCallback,
    current: Catalogue,
    pricing: PricingService,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
    screens: ScreenCache,
    networks: NetworkService,
) -> None:
    bundle = current.by_name(callback_data.bundle)
    if bundle is None:
        callback_answer.text = _("This plan is no longer available. Here are the current ones.")
        screen = _plans(screens, current, pricing, translator, language, callback_data)
        await show(query, screen or screens.render(render.buy_screen, current, language))
        return
    look = (current, pricing, translator, language)
    await show(query, _bundle_card(screens, look, bundle, callback_data, networks.directory))


def _bundle_card(
    screens: ScreenCache,
    look: tuple[Catalogue, PricingService, Translator, str],
    bundle: Bundle,
    pressed: BundleCallback,
    networks: NetworkDirectory,
) -> render.Screen:
    """The plan's card; Back leads where the button came from."""
    iso = pressed.iso.upper()
    if iso not in {c.iso for c in bundle.coverage}:
        iso = ""  # a forged or stale country: Back leads to the Buy screen
    return screens.render(
        render.bundle_screen,
        *look,
        bundle,
        iso=iso,
        origin=pressed.origin,
        page=pressed.page,
        networks=networks,
    )


async def on_search(
    message: Message,
    current: Catalogue,
    pricing: PricingService,
    translator: Translator,
    language: str,
    screens: ScreenCache,
    trips: TripPlanner,
) -> None:
    """Typed text at any time is a country search, or a trip's countries."""
    query = message.text or ""
    look = (current, pricing, translator, language)
    await show(message, _found(query, look, screens, trips))


def _found(
    query: str,
    look: tuple[Catalogue, PricingService, Translator, str],
    screens: ScreenCache,
    trips: TripPlanner,
) -> render.Screen:
    """A region named exactly, several countries (a trip), the one country meant, the
    countries it may mean, or what was understood when nothing matched."""
    current, _pricing, translator, language = look
    region = current.region_named(query)
    if region is not None and (
        screen := screens.render(render.region_screen, current, language, region, 0)
    ):
        return screen
    trip = trips.find(query)
    if trip is not None:
        return trip_screen(current, translator, language, trip)
    matches = current.search.search(query, limit=SEARCH_CHOICES)
    if len(matches) == 1:
        screen = screens.render(render.country_screen, *look, matches[0].iso, ORIGIN_SEARCH, 0)
        if screen is not None:
            return screen
    if matches:
        isos = tuple(m.iso for m in matches)
        return screens.render(render.search_choices_screen, current, language, isos)
    known = _world_search().best(query)
    name = country_name(known, language) if known else None
    return render.not_found_screen(query, name)


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="browse")
    router.callback_query.middleware(RequireCatalogue())
    router.message.middleware(RequireCatalogue())
    router.callback_query.register(on_buy, MenuCallback.filter(F.action == "buy"))
    router.callback_query.register(on_regions, CountryListCallback.filter(F.view == "regions"))
    router.callback_query.register(on_az, CountryListCallback.filter(F.view == "az"))
    router.callback_query.register(on_region, CountryListCallback.filter(F.view == "region"))
    router.callback_query.register(on_country, CountryCallback.filter())
    router.callback_query.register(on_bundle, BundleCallback.filter(F.action == "show"))
    router.message.register(
        on_search,
        StateFilter(None),
        F.chat.type == ChatType.PRIVATE,
        F.text,
        ~F.text.startswith("/"),
    )
    return router
