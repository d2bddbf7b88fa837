"""A trip, not a country: several countries typed at once find the plans that cover them all."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from babel import Locale
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.catalogue import Catalogue
from services.countries import territory_names
from services.country_search import ALIASES
from services.trip import MAX_TRIP_COUNTRIES, TripPlanner, TripQuery, parse_trip
from tests.fakes.catalogue_data import make_catalogue
from tests.fakes.esimgo import FakeEsimGo
from tests.reach_helpers import STARS, synced_catalogue


@cache
def _catalogue() -> Catalogue:
    return Catalogue.from_raw(make_catalogue())


def _parse(text: str) -> TripQuery | None:
    return parse_trip(_catalogue().search, text)


def _covering_names(raw: list[dict[str, Any]], isos: set[str]) -> set[str]:
    """Bundles whose base and roaming countries include every one of `isos`, from raw data."""
    return {
        item["name"]
        for item in raw
        if isos <= {c["iso"] for c in (*item["countries"], *item["roamingEnabled"])}
    }


# -- reading the countries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "countries"),
    [
        ("Thailand, Vietnam, Cambodia", ("TH", "VN", "KH")),
        ("Франция и Италия", ("FR", "IT")),
        ("FR IT ES", ("FR", "IT", "ES")),
        ("fr, it, es", ("FR", "IT", "ES")),
        ("Japan & USA / Mexico", ("JP", "US", "MX")),
        ("Таиланд + Turkey, GE", ("TH", "TR", "GE")),
        ("Germany Austria Switzerland", ("DE", "AT", "CH")),
        ("South Korea Japan", ("KR", "JP")),
        ("Bosnia and Herzegovina, Serbia", ("BA", "RS")),
        ("Босния и Герцеговина и Сербия", ("BA", "RS")),
        ("Trinidad and Tobago and Barbados", ("TT", "BB")),
        ("Thailand to Vietnam", ("TH", "VN")),
        ("Tailand; Vietnm", ("TH", "VN")),
        ("🇫🇷🇮🇹", ("FR", "IT")),
        ("Paris & Rome", ("FR", "IT")),
        ("UK, USA", ("GB", "US")),
        ("France, France and Italy", ("FR", "IT")),
    ],
)
def test_several_countries_typed_at_once_are_read_in_order(
    text: str, countries: tuple[str, ...]
) -> None:
    trip = _parse(text)
    assert trip is not None, text
    assert trip.countries == countries
    assert trip.unknown == ()


@pytest.mark.parametrize(
    "text",
    [
        "Bosnia and Herzegovina",
        "Trinidad and Tobago",
        "United States",
        "Босния и Герцеговина",
        "Антигуа и Барбуда",
        "Saint Kitts and Nevis",
        "Sao Tome and Principe",
        "Congo, Democratic Republic of the",
        "Guinea-Bissau",
        "Thailand",
        "таиланд",
        "TH",
        "it",
        "Tailand",
        "guinea",
        "Thailand, Blahland",  # one country and noise: the single search, as before
        "",
        "   ",
        ", , &",
    ],
)
def test_one_country_is_not_a_trip(text: str) -> None:
    assert _parse(text) is None


def test_no_country_name_in_either_language_is_mistaken_for_a_trip() -> None:
    catalogue = _catalogue()
    english, russian = Locale.parse("en").territories, Locale.parse("ru").territories
    for iso in catalogue.countries():
        known = catalogue.country(iso)
        assert known is not None
        names = {
            territory_names("en").get(iso),
            territory_names("ru").get(iso),
            english.get(iso),
            russian.get(iso),
            known.name,
            *ALIASES.get(iso, ()),
        }
        for name in filter(None, names):
            assert _parse(name) is None, (iso, name)


def test_unknown_parts_are_reported_beside_the_countries() -> None:
    trip = _parse("Thailand, Atlantis, Laos")
    assert trip == TripQuery(("TH", "LA"), ("Atlantis",))


def test_a_long_list_keeps_the_first_countries_and_says_so() -> None:
    trip = _parse("FR, DE, IT, ES, PT, NL, BE, AT, CH, PL, CZ, HU")
    assert trip is not None
    assert len(trip.countries) == MAX_TRIP_COUNTRIES
    assert trip.countries[:3] == ("FR", "DE", "IT")
    assert trip.too_many


# -- the plans that cover them all ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "isos", "cheapest"),
    [
        ("Thailand, Vietnam, Cambodia", {"TH", "VN", "KH"}, "esim_1GB_7D_RAS_V2"),
        ("Франция и Италия", {"FR", "IT"}, "esim_1GB_7D_REUP_V2"),
        ("FR IT ES", {"FR", "IT", "ES"}, "esim_1GB_7D_REUP_V2"),
        ("Japan & USA / Mexico", {"JP", "US", "MX"}, "esim_1GB_7D_RGB_V2"),
        ("Таиланд + Turkey, GE", {"TH", "TR", "GE"}, "esim_1GB_7D_RGB_V2"),
    ],
)
async def test_a_trip_lists_every_plan_covering_all_its_countries_cheapest_first(
    fake_esimgo: FakeEsimGo,
    sqlite_session_factory: async_sessionmaker[AsyncSession],
    text: str,
    isos: set[str],
    cheapest: str,
) -> None:
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        before = len(fake_esimgo.requests)
        plan = TripPlanner(catalogue, STARS).find(text)
        assert len(fake_esimgo.requests) == before  # planned from memory, never eSIM Go
    assert plan is not None
    assert set(plan.query.countries) == isos
    names = [p.bundle.name for p in plan.covering]
    assert set(names) == _covering_names(fake_esimgo.catalogue, isos)
    assert names[0] == cheapest
    amounts = [p.price.amount for p in plan.covering]
    assert amounts == sorted(amounts)
    assert amounts[0] == STARS.retail_price(plan.covering[0].bundle.price).amount
    assert plan.sets == ()


async def test_buying_country_by_country_is_shown_when_cheaper_or_close(
    fake_esimgo: FakeEsimGo, sqlite_session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        europe = TripPlanner(catalogue, STARS).find("France, Italy")
        asia = TripPlanner(catalogue, STARS).find("Thailand, Vietnam, Cambodia")
        current = catalogue.catalogue
    assert europe is not None and asia is not None
    first = europe.covering[0]
    assert first.bundle.name == "esim_1GB_7D_REUP_V2"
    own = [current.by_name(f"esim_1GB_7D_{iso}_V2") for iso in ("FR", "IT")]
    separately = sum(STARS.retail_price(b.price).amount for b in own if b is not None)
    assert first.separately is not None
    assert first.separately.amount == separately
    assert separately <= first.price.amount * 1.1
    # Three Asian countries one by one cost far more than the Asia plan: not worth showing.
    assert asia.covering[0].bundle.name == "esim_1GB_7D_RAS_V2"
    assert asia.covering[0].separately is None


async def test_without_a_single_plan_the_fewest_plans_that_cover_the_trip_are_offered(
    sqlite_session_factory: async_sessionmaker[AsyncSession],
) -> None:
    no_global = [b for b in make_catalogue() if "_RGB_" not in b["name"]]
    fake = FakeEsimGo(catalogue=no_global)
    await fake.start()
    try:
        async with synced_catalogue(fake, sqlite_session_factory) as catalogue:
            plan = TripPlanner(catalogue, STARS).find("Thailand and France")
            current = catalogue.catalogue
    finally:
        await fake.close()
    assert plan is not None
    assert plan.covering == ()
    assert plan.sets
    assert all(len(s.plans) == 2 for s in plan.sets)
    totals = [s.total.amount for s in plan.sets]
    assert totals == sorted(totals)
    best = plan.sets[0]
    assert {p.bundle.name for p in best.plans} == {"esim_1GB_7D_FR_V2", "esim_1GB_7D_TH_V2"}
    assert sorted(iso for p in best.plans for iso in p.countries) == ["FR", "TH"]
    prices = [current.by_name(p.bundle.name) for p in best.plans]
    assert best.total.amount == sum(STARS.retail_price(b.price).amount for b in prices if b)


async def test_a_trip_across_two_regions_takes_a_regional_plan_and_a_country_plan(
    sqlite_session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Four European countries and Thailand: two plans, not five."""
    no_global = [b for b in make_catalogue() if "_RGB_" not in b["name"]]
    fake = FakeEsimGo(catalogue=no_global)
    await fake.start()
    try:
        async with synced_catalogue(fake, sqlite_session_factory) as catalogue:
            plan = TripPlanner(catalogue, STARS).find("FR, DE, IT, ES, Thailand")
    finally:
        await fake.close()
    assert plan is not None
    best = plan.sets[0]
    assert {p.bundle.name for p in best.plans} == {"esim_1GB_7D_REUP_V2", "esim_1GB_7D_TH_V2"}
    served = {p.bundle.name: set(p.countries) for p in best.plans}
    assert served["esim_1GB_7D_REUP_V2"] == {"FR", "DE", "IT", "ES"}
