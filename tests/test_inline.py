"""Inline mode (`@bot thailand`): a country's plans as cards, in the user's language, with a
start link that opens the bot at the plan; answers kept briefly; eSIM Go never called."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.catalogue import CatalogueService
from services.deeplinks import (
    START_PARAMETER,
    CountryStart,
    GiftStart,
    PlanStart,
    StartLinks,
    country_parameter,
    gift_parameter,
    plan_parameter,
)
from services.i18n import Translator
from services.inline import InlineCatalogue
from tests.fakes.catalogue_data import make_catalogue
from tests.fakes.esimgo import FakeEsimGo
from tests.reach_helpers import STARS, synced_catalogue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _inline(catalogue: CatalogueService, clock: Clock | None = None) -> InlineCatalogue:
    return InlineCatalogue(catalogue, STARS, Translator(), clock=clock or Clock())


async def test_a_country_typed_in_english_lists_its_plans_with_a_buy_link(
    fake_esimgo: FakeEsimGo, sqlite_session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        before = len(fake_esimgo.requests)
        answer = _inline(catalogue).answer("thailand", "en")
        assert len(fake_esimgo.requests) == before
        current = catalogue.catalogue
    plans = current.bundles_for_country("TH")
    assert [r.start_parameter for r in answer.results] == [
        plan_parameter(b.name, "TH") for b in plans
    ][:50]
    first = answer.results[0]
    cheapest = current.by_name("esim_1GB_7D_TH_V2")
    assert cheapest is not None and plans[0] is cheapest
    price = STARS.retail_price(cheapest.price).amount
    assert first.title == f"🇹🇭 Thailand · 1 GB · 7 days · {price} ⭐"
    assert first.button == "🛒 Buy in the bot"
    assert f"≈ {price} ⭐ per GB" in first.description
    assert "<b>🇹🇭 Thailand · 1 GB · 7 days</b>" in first.text
    assert all(START_PARAMETER.fullmatch(r.start_parameter) for r in answer.results)
    assert len({r.id for r in answer.results}) == len(answer.results)
    assert answer.cache_seconds == 60
    # The link lands on that plan, offered for Thailand.
    target = StartLinks().resolve(current, first.start_parameter)
    assert target == PlanStart(cheapest, "TH")


async def test_the_same_plans_in_russian_by_russian_name_and_by_code(
    fake_esimgo: FakeEsimGo, sqlite_session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        inline = _inline(catalogue)
        english = inline.answer("thailand", "en")
        russian = inline.answer("таиланд", "ru")
        by_code = inline.answer("TH", "ru-RU")
    assert [r.id for r in russian.results] == [r.id for r in english.results]
    assert [r.id for r in by_code.results] == [r.id for r in english.results]
    first = russian.results[0]
    assert first.title.startswith("🇹🇭 Таиланд · 1 ГБ · 7 дн. · ")
    assert first.button == "🛒 Купить в боте"
    assert "за ГБ" in first.description
    assert "Тариф начинает действовать" in first.text
    shared = [r for r in russian.results if r.title.startswith("🌍")]
    assert shared and shared[0].title.startswith("🌍 Азия · ")


async def test_an_empty_query_offers_popular_countries(
    fake_esimgo: FakeEsimGo, sqlite_session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        inline = _inline(catalogue)
        english = inline.answer("", "en")
        russian = inline.answer("  ", "ru")
        current = catalogue.catalogue
    popular = current.popular_countries()
    assert [r.start_parameter for r in english.results] == [country_parameter(i) for i in popular]
    count = len(current.bundles_for_country("TH"))
    cheapest = min(STARS.retail_price(b.price).amount for b in current.bundles_for_country("TH"))
    assert english.results[0].title == "🇹🇭 Thailand"
    assert english.results[0].description == f"{count} plans from {cheapest} ⭐"
    assert english.results[0].button == "📱 See plans in the bot"
    assert russian.results[0].title == "🇹🇭 Таиланд"
    assert re.fullmatch(r"\d+ тариф(а|ов)? от \d+ ⭐", russian.results[0].description)
    assert StartLinks().resolve(current, english.results[0].start_parameter) == CountryStart("TH")


async def test_several_countries_inline_list_the_plans_covering_the_trip(
    fake_esimgo: FakeEsimGo, sqlite_session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        answer = _inline(catalogue).answer("Франция и Италия", "ru")
    assert answer.results[0].start_parameter == plan_parameter("esim_1GB_7D_REUP_V2")
    assert answer.results[0].description.startswith("Работает: Франция, Италия")


async def test_ambiguous_and_unknown_queries(
    fake_esimgo: FakeEsimGo, sqlite_session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        inline = _inline(catalogue)
        guinea = inline.answer("guine", "en")
        nothing = inline.answer("zzzzqqq", "en")
        huge = inline.answer("x" * 5000, "en")
    assert {r.start_parameter for r in guinea.results} >= {"cGN", "cGW", "cGQ"}
    assert nothing.results == ()
    assert huge.results == ()


async def test_answers_are_kept_per_query_and_language_then_rebuilt(
    fake_esimgo: FakeEsimGo, sqlite_session_factory: async_sessionmaker[AsyncSession]
) -> None:
    clock = Clock()
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        inline = _inline(catalogue, clock)
        first = inline.answer("thailand", "en")
        assert inline.answer("thailand", "en") is first
        assert inline.answer("thailand", "ru") is not first
        clock.now += 61
        again = inline.answer("thailand", "en")
        assert again is not first and again == first
        # A refreshed catalogue (a new object) starts the answers over.
        await catalogue.sync()
        assert inline.answer("thailand", "en") is not again


async def test_a_stale_or_forged_start_parameter_leads_nowhere(
    fake_esimgo: FakeEsimGo, sqlite_session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        links = StartLinks()
        current = catalogue.catalogue
        stale = plan_parameter("esim_1GB_7D_TH_V2", "TH")
        assert links.resolve(current, stale) is not None
        fake_esimgo.catalogue = [b for b in make_catalogue() if b["name"] != "esim_1GB_7D_TH_V2"]
        await catalogue.sync()
        assert links.resolve(catalogue.catalogue, stale) is None
        forged = [
            None,
            "",
            "p" + "a" * 13,  # well-formed, no such plan
            "pAAAAAAAAAAAAA",  # not the code alphabet
            "cZZ",  # no such country on sale
            "cth",
            "g" + "A" * 23,  # a token one short
            "x" * 65,
            "p<script>",
            "ab cd",
            "🇹🇭",
        ]
        for parameter in forged:
            assert links.resolve(catalogue.catalogue, parameter) is None, parameter


async def test_start_parameters_fit_telegram_for_any_bundle_name(
    fake_esimgo: FakeEsimGo, sqlite_session_factory: async_sessionmaker[AsyncSession]
) -> None:
    long_name = "esim_" + "Unlimited_Essential_" * 5 + "30D_TH_V2"
    raw = [*make_catalogue(), {**make_catalogue()[0], "name": long_name}]
    fake_esimgo.catalogue = raw
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        current = catalogue.catalogue
        links = StartLinks()
        for bundle in current.bundles:
            parameter = plan_parameter(bundle.name, "TH")
            assert START_PARAMETER.fullmatch(parameter)
            target = links.resolve(current, parameter)
            assert isinstance(target, PlanStart) and target.bundle is bundle
    assert len(long_name) > 64
    token = "Ab_-" * 6
    assert links.resolve(current, gift_parameter(token)) == GiftStart(token)


@pytest.mark.parametrize(("iso", "expected"), [("TH", "TH"), ("FR", ""), ("", "")])
async def test_a_plan_link_names_its_country_only_when_the_plan_covers_it(
    fake_esimgo: FakeEsimGo,
    sqlite_session_factory: async_sessionmaker[AsyncSession],
    iso: str,
    expected: str,
) -> None:
    async with synced_catalogue(fake_esimgo, sqlite_session_factory) as catalogue:
        current = catalogue.catalogue
        asia = current.by_name("esim_1GB_7D_RAS_V2")
        assert asia is not None
        target = StartLinks().resolve(current, plan_parameter(asia.name, iso))
    assert target == PlanStart(asia, expected)
