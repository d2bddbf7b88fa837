"""Inline mode through the real dispatcher: `@bot thailand` in any chat, in the user's language,
answered with cards whose "Buy in the bot" link opens the bot at that plan's confirmation; the
other start links; and `esimbot check` saying when BotFather has inline mode off."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from bot.check import run_checks
from bot.config import load_settings
from services.deeplinks import country_parameter
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.helpers import BotEnv, inline_query_update, make_user

ALICE = make_user(1001)
BORIS = make_user(2002, language_code="ru", first_name="Борис")


async def inline(env: BotEnv, user: Any, query: str) -> dict[str, Any]:
    """The user types `@bot <query>` in a group; returns the answerInlineQuery parameters."""
    calls = await env.feed(inline_query_update(user, query, chat_type="supergroup"))
    (answer,) = [c for c in calls if c.method == "answerInlineQuery"]
    assert answer.ok, answer.description
    return answer.params


def start_parameter(result: dict[str, Any]) -> str:
    (row,) = result["reply_markup"]["inline_keyboard"]
    (button,) = row
    link = urlparse(button["url"])
    assert (link.scheme, link.netloc, link.path) == ("https", "t.me", "/esim_test_bot")
    (parameter,) = parse_qs(link.query)["start"]
    return parameter


async def test_an_inline_query_lists_plans_whose_link_opens_the_confirmation(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    answer = await inline(env, ALICE, "thailand")

    # Personal: Telegram keys a shared cache by the query alone, so a Russian user would get the
    # English cards cached for the same query; each user's own cache still spares the bot.
    assert (answer["cache_time"], answer["is_personal"]) == (60, True), "not cached per user"
    results = answer["results"]
    plans = env.deps.catalogue.catalogue.bundles_for_country("TH")
    assert len(results) == min(len(plans), 50)
    first = results[0]
    assert first["type"] == "article"
    assert first["title"].startswith("🇹🇭 Thailand · 1 GB · 7 days · ")
    assert "per GB" in first["description"]
    content = first["input_message_content"]
    assert content["parse_mode"] == "HTML" and "Thailand" in content["message_text"]
    assert first["reply_markup"]["inline_keyboard"][0][0]["text"] == "🛒 Buy in the bot"

    # The card's button opens the bot in the private chat, at that plan's confirmation.
    await env.send(ALICE, f"/start {start_parameter(first)}")
    confirmation = env.screen(ALICE).text or ""
    assert "Confirm your order" in confirmation
    assert "Thailand" in confirmation and "1 GB" in confirmation
    assert env.screen(ALICE).button("Pay") and env.screen(ALICE).button("Buy as a gift")
    assert not env.error_logs


async def test_the_same_in_russian_by_russian_name_and_by_code(bot_env: BotEnv) -> None:
    env = bot_env
    english = await inline(env, ALICE, "thailand")
    russian = await inline(env, BORIS, "таиланд")
    by_code = await inline(env, BORIS, "TH")

    ids = [r["id"] for r in english["results"]]
    assert [r["id"] for r in russian["results"]] == ids == [r["id"] for r in by_code["results"]]
    first = russian["results"][0]
    assert first["title"].startswith("🇹🇭 Таиланд · 1 ГБ · 7 дн. · ")
    assert first["reply_markup"]["inline_keyboard"][0][0]["text"] == "🛒 Купить в боте"

    await env.send(BORIS, f"/start {start_parameter(first)}")
    assert "Таиланд" in (env.screen(BORIS).text or "")
    assert env.screen(BORIS).button("Купить в подарок")


async def test_an_empty_query_lists_popular_countries_that_open_their_plans(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    answer = await inline(env, ALICE, "")
    titles = [r["title"] for r in answer["results"]]
    assert titles[0] == "🇹🇭 Thailand"
    assert "🇬🇧 United Kingdom" in titles
    assert start_parameter(answer["results"][0]) == country_parameter("TH")

    await env.send(ALICE, "/start cTH")
    assert "Thailand" in (env.screen(ALICE).text or "")
    assert env.screen(ALICE).button("1 GB · 7 days")


@pytest.mark.parametrize(
    "parameter", ["pzzzzzzzzzzzzzTH", "cXX", "nonsense", "g" + "!" * 24, "c", "p" * 64]
)
async def test_a_start_link_to_nothing_we_sell_opens_the_main_menu(
    bot_env: BotEnv, parameter: str
) -> None:
    await bot_env.send(ALICE, f"/start {parameter}")
    assert "Travel eSIMs" in (bot_env.screen(ALICE).text or "")
    assert not bot_env.error_logs


async def test_check_warns_while_inline_mode_is_off_in_botfather(
    fake_telegram: FakeTelegram,
    fake_esimgo: FakeEsimGo,
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings(
        _env_file=None,
        bot_token=DEFAULT_TOKEN,
        esimgo_api_key=fake_esimgo.api_key,
        esimgo_base_url=fake_esimgo.base_url,
        telegram_api_base=fake_telegram.base_url,
        database_url=sqlite_url,
    )
    await run_checks(settings)
    off = capsys.readouterr().out
    assert "inline mode is off" in off and "/setinline" in off and "@BotFather" in off

    fake_telegram.supports_inline_queries = True
    await run_checks(settings)
    on = capsys.readouterr().out
    assert "inline mode on" in on and "/setinline" not in on
