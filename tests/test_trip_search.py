"""Several countries typed at once, through the real dispatcher: the plans that cover them all,
cheapest first (with the one-country-at-a-time price when it is close), or the fewest plans that
do; notes for what was left out. And the plan card's networks and price per GB."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.callbacks import BundleCallback
from services.trip import MAX_TRIP_COUNTRIES
from tests.fakes.telegram import StoredMessage
from tests.helpers import BotEnv, make_user

ALICE = make_user(1001)
BORIS = make_user(2002, language_code="ru", first_name="Борис")


def covering(raw: list[dict[str, Any]], isos: set[str]) -> set[str]:
    """Bundles whose countries include every one of `isos`, read from eSIM Go's raw data."""
    return {
        item["name"]
        for item in raw
        if isos <= {c["iso"] for c in (*item["countries"], *item["roamingEnabled"])}
    }


def plan_buttons(screen: StoredMessage) -> list[str]:
    """The bundles the screen's plan buttons open, top to bottom."""
    return [
        BundleCallback.unpack(b["callback_data"]).bundle
        for b in screen.buttons()
        if str(b.get("callback_data", "")).startswith("bu:")
    ]


@pytest.mark.parametrize(
    ("user", "text", "isos", "cheapest"),
    [
        (ALICE, "Thailand, Vietnam, Cambodia", {"TH", "VN", "KH"}, "esim_1GB_7D_RAS_V2"),
        (BORIS, "Франция и Италия", {"FR", "IT"}, "esim_1GB_7D_REUP_V2"),
        (ALICE, "FR IT ES", {"FR", "IT", "ES"}, "esim_1GB_7D_REUP_V2"),
        (ALICE, "Japan & USA / Mexico", {"JP", "US", "MX"}, "esim_1GB_7D_RGB_V2"),
        (BORIS, "Таиланд + Turkey, GE", {"TH", "TR", "GE"}, "esim_1GB_7D_RGB_V2"),
    ],
)
async def test_a_trip_lists_the_plans_covering_every_country_cheapest_first(
    bot_env: BotEnv, user: Any, text: str, isos: set[str], cheapest: str
) -> None:
    env = bot_env
    before = len(env.fake_esimgo.requests)
    await env.send(user, text)
    assert len(env.fake_esimgo.requests) == before  # planned from memory

    screen = env.screen(user)
    shown = plan_buttons(screen)
    assert shown[0] == cheapest
    assert set(shown) <= covering(env.fake_esimgo.catalogue, isos)
    catalogue, pricing = env.deps.catalogue.catalogue, env.deps.pricing
    bundles = [b for n in shown if (b := catalogue.by_name(n)) is not None]
    prices = [pricing.retail_price(b.price).amount for b in bundles]
    assert prices == sorted(prices)
    heading = "Ваша поездка" if user is BORIS else "Your trip"
    assert heading in (screen.text or "")
    for iso in isos:
        assert catalogue.country_name(iso, user.language_code) in (screen.text or "")
    # A plan opens its card, as from any list.
    await env.press(user, screen.buttons()[0]["callback_data"])
    assert "💰" in (env.screen(user).text or "")
    assert not env.error_logs


async def test_countries_one_by_one_are_shown_beside_a_plan_when_close(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "France, Italy")
    text = bot_env.screen(ALICE).text or ""
    first_line = next(line for line in text.splitlines() if line.startswith("• "))
    assert "Europe+" in first_line and "one country at a time:" in first_line


async def test_without_a_single_plan_the_fewest_plans_are_offered(bot_env: BotEnv) -> None:
    env = bot_env
    env.fake_esimgo.catalogue[:] = [
        b for b in env.fake_esimgo.catalogue if "_RGB_" not in b["name"]
    ]
    await env.deps.catalogue.sync()

    await env.send(ALICE, "Thailand and France")

    screen = env.screen(ALICE)
    assert "No single plan covers them all" in (screen.text or "")
    assert "in all" in (screen.text or "")
    assert sorted(plan_buttons(screen)) == ["esim_1GB_7D_FR_V2", "esim_1GB_7D_TH_V2"]


async def test_unknown_parts_and_too_many_countries_are_noted(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "Thailand, Atlantis, Laos")
    text = bot_env.screen(ALICE).text or ""
    assert "Not found, so left out: “Atlantis”" in text

    await bot_env.send(BORIS, "FR, DE, IT, ES, PT, NL, BE, AT, CH, PL, CZ, HU")
    text = bot_env.screen(BORIS).text or ""
    assert f"Учтены только первые {MAX_TRIP_COUNTRIES} стран" in text
    assert "Венгрия" not in text  # the eleventh country on


async def test_one_country_typed_is_still_its_own_plan_list(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "Bosnia and Herzegovina")
    text = bot_env.screen(ALICE).text or ""
    assert "Bosnia" in text and "Your trip" not in text


async def test_a_plan_card_shows_networks_per_country_and_the_price_per_gb(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    await env.send(ALICE, "/start")
    await env.press(ALICE, BundleCallback(action="show", bundle="esim_1GB_7D_TH_V2", iso="TH"))
    text = env.screen(ALICE).text or ""
    assert "📡 Networks: AIS 5G/4G · TrueMove H 5G/4G · dtac 4G" in text
    bundle = env.deps.catalogue.catalogue.by_name("esim_1GB_7D_TH_V2")
    assert bundle is not None
    price = env.deps.pricing.retail_price(bundle.price)
    assert f"💵 ≈ {price.amount} ⭐ per GB" in text

    await env.send(BORIS, "/start")
    await env.press(BORIS, BundleCallback(action="show", bundle="esim_1GB_7D_REUP_V2", iso="FR"))
    text = env.screen(BORIS).text or ""
    lines = text.splitlines()
    start = lines.index("📡 Сети:")
    assert lines[start + 1] == "• 🇫🇷 Франция: Orange 5G/4G · Bouygues Telecom 4G/3G · SFR 4G"
    assert any(line.startswith("• и ещё ") for line in lines[start:])
