"""Browsing end to end: real dispatcher, fake Bot API over loopback, fake eSIM Go catalogue."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator

import pytest
from aiogram.types import User
from sqlalchemy import select

from bot.dispatcher import create_dispatcher
from db.models.user import User as DbUser
from handlers.callbacks import BundleCallback, CountryCallback, CountryListCallback
from services.catalogue import CatalogueService
from services.countries import sort_key
from services.esimgo.client import EsimGoClient, RetryPolicy
from services.pricing import format_price
from tests.fakes.telegram import StoredMessage
from tests.helpers import BotEnv, answers, make_user

ALICE = make_user(1001, language_code="en")
BORIS = make_user(2002, language_code="ru", username="boris", first_name="Борис")
PAGE_COUNTER = re.compile(r"\d+/\d+")
LABEL = re.compile(
    r"^(?:♾ )?(?P<data>.+?) · (?P<days>\d+) (?:days?|дн\.) · (?P<price>[\d,  ]+) ⭐$"
)


async def _open_country(env: BotEnv, user: User, name: str, buy: str = "Buy") -> None:
    await env.send(user, "/start")
    await env.tap(user, buy)
    await env.tap(user, name)


def _callback(env: BotEnv, user: User, text: str) -> str:
    return str(env.screen(user).button(text)["callback_data"])


def _pager(screen: StoredMessage) -> list[str]:
    """The texts of the navigation row ("‹", "2/5", "›"); [] when the screen has none."""
    rows = (screen.reply_markup or {}).get("inline_keyboard") or []
    for row in rows:
        texts = [str(b.get("text", "")) for b in row]
        if any(PAGE_COUNTER.fullmatch(t) for t in texts):
            return texts
    return []


async def test_start_shows_the_main_menu_in_english(bot_env: BotEnv) -> None:
    calls = await bot_env.send(ALICE, "/start")
    assert [c.method for c in calls] == ["sendMessage"]
    screen = bot_env.screen(ALICE)
    assert "Travel eSIMs" in screen.text
    assert screen.button_texts() == [
        "🛒 Buy eSIM",
        "📱 My eSIMs",
        "📱 Will it work on my phone?",
        "❓ Help",
        "🌐 Language",
    ]
    assert not bot_env.error_logs


async def test_start_follows_telegram_language_russian(bot_env: BotEnv) -> None:
    await bot_env.send(BORIS, "/start")
    screen = bot_env.screen(BORIS)
    assert "eSIM для путешествий" in screen.text
    assert screen.button_texts() == [
        "🛒 Купить eSIM",
        "📱 Мои eSIM",
        "📱 Подойдёт ли мой телефон?",
        "❓ Помощь",
        "🌐 Язык",
    ]


async def test_unsupported_telegram_language_falls_back_to_default(bot_env: BotEnv) -> None:
    german = make_user(3003, language_code="de")
    await bot_env.send(german, "/start")
    assert "🛒 Buy eSIM" in bot_env.screen(german).button_texts()


async def test_buy_popular_country_bundles_card_and_back_edit_one_message(
    bot_env: BotEnv,
) -> None:
    await bot_env.send(ALICE, "/start")
    menu_id = bot_env.screen(ALICE).message_id

    calls = await bot_env.tap(ALICE, "Buy")
    buy = bot_env.screen(ALICE)
    assert buy.message_id == menu_id  # edited in place
    assert [c.method for c in calls] == ["editMessageText", "answerCallbackQuery"]
    assert "Where are you travelling" in buy.text
    labels = buy.button_texts()
    assert labels[:3] == ["🇹🇭 Thailand", "🇹🇷 Türkiye", "🇦🇪 United Arab Emirates"]
    assert "🗺 Regions" in labels and "🔤 All countries A–Z" in labels and "« Back" in labels

    calls = await bot_env.tap(ALICE, "Thailand")
    assert len(answers(calls)) == 1
    country = bot_env.screen(ALICE)
    assert country.message_id == menu_id
    assert "🇹🇭 Thailand" in country.text

    catalogue = bot_env.deps.catalogue.catalogue
    pricing = bot_env.deps.pricing
    own = catalogue.own_bundles("TH")
    first_page = [b for b in country.buttons() if str(b["callback_data"]).startswith("bu:")]
    assert len(first_page) == 10
    shown = [BundleCallback.unpack(str(b["callback_data"])).bundle for b in first_page]
    assert shown == [b.name for b in own[:10]]
    # Sorted by data, then days; unlimited after every capped plan.
    keys = [(b.unlimited, b.data_mb, b.duration_days) for b in own]
    assert keys == sorted(keys)
    assert first_page[0]["text"] == (
        f"1 GB · 7 days · {format_price(pricing.retail_price(own[0].price), 'en')}"
    )
    for item in first_page:
        assert LABEL.match(str(item["text"])), item["text"]
    unlimited = [b["text"] for b in first_page if str(b["text"]).startswith("♾")]
    assert unlimited and all("Unlimited" in str(t) for t in unlimited)
    pages = -(-(len(own) + 1 + len(catalogue.shared_bundles("TH"))) // 10)
    assert pages > 2
    assert _pager(country) == [f"1/{pages}", "›"]
    await bot_env.tap(ALICE, "›")
    second = bot_env.screen(ALICE)
    assert _pager(second) == ["‹", f"2/{pages}", "›"]
    # Each page holds ten lines: the country's own plans, a header, then the shared plans.
    lines = [b.name for b in own] + ["header"] + [b.name for b in catalogue.shared_bundles("TH")]
    plans = [b for b in second.buttons() if str(b["callback_data"]).startswith("bu:")]
    assert [BundleCallback.unpack(str(b["callback_data"])).bundle for b in plans] == [
        name for name in lines[10:20] if name != "header"
    ]
    await bot_env.tap(ALICE, "‹")
    assert bot_env.screen(ALICE).text == country.text
    assert _pager(bot_env.screen(ALICE)) == [f"1/{pages}", "›"]

    await bot_env.tap(ALICE, "1 GB · 7 days")
    card = bot_env.screen(ALICE)
    assert card.message_id == menu_id
    assert "Thailand · 1 GB · 7 days" in card.text
    assert "Valid for 7 days from first use" in card.text
    assert "Coverage: Thailand" in card.text
    assert "Speed:" in card.text
    price = format_price(pricing.retail_price(own[0].price), "en")
    assert f"Price: {price}" in card.text
    buy_data = BundleCallback.unpack(_callback(bot_env, ALICE, "Buy"))
    assert (buy_data.action, buy_data.bundle) == ("buy", "esim_1GB_7D_TH_V2")

    await bot_env.tap(ALICE, "Back")
    assert bot_env.screen(ALICE).text == country.text
    await bot_env.tap(ALICE, "Back")
    assert "Where are you travelling" in bot_env.screen(ALICE).text
    await bot_env.tap(ALICE, "Back")
    assert "Travel eSIMs" in bot_env.screen(ALICE).text
    assert len(bot_env.fake_telegram.calls_to("sendMessage")) == 1
    assert not bot_env.error_logs


async def test_regional_and_global_plans_follow_under_a_header(bot_env: BotEnv) -> None:
    await _open_country(bot_env, ALICE, "Thailand")
    catalogue = bot_env.deps.catalogue.catalogue
    pages = -(-(len(catalogue.own_bundles("TH")) + 1 + len(catalogue.shared_bundles("TH"))) // 10)
    texts: list[str] = []
    for page in range(pages):
        await bot_env.press(ALICE, CountryCallback(iso="TH", origin="p", page=page))
        texts += bot_env.screen(ALICE).button_texts()
    header = texts.index("— 🌍 Regional and global plans —")
    after = [t for t in texts[header + 1 :] if t.startswith("🌍 ")]
    assert after and all(" · " in t for t in after)
    assert any(t.startswith("🌍 Asia · ") for t in after)
    assert any(t.startswith("🌍 Global · ") for t in after)
    assert not any(t.startswith("🌍 ") for t in texts[:header])


async def test_regional_card_shortens_coverage_with_a_count(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    data = BundleCallback(action="show", bundle="esim_1GB_7D_RAS_V2", iso="TH", origin="p")
    calls = await bot_env.press(ALICE, data)
    assert len(answers(calls)) == 1
    card = bot_env.screen(ALICE).text
    assert card.startswith("🌍 Asia · 1 GB · 7 days")
    coverage = next(line for line in card.splitlines() if line.startswith("🌍 Coverage"))
    assert re.fullmatch(r"🌍 Coverage: Thailand, [^,]+, [^,]+ \+\d+ more", coverage), coverage


async def test_russian_labels_use_russian_units(bot_env: BotEnv) -> None:
    await _open_country(bot_env, BORIS, "Таиланд", buy="Купить")
    labels = bot_env.screen(BORIS).button_texts()
    assert labels[0].startswith("1 ГБ · 7 дн. · ")
    assert any(label.startswith("♾ Безлимит") for label in labels)
    await bot_env.tap(BORIS, "1 ГБ")
    card = bot_env.screen(BORIS).text
    assert "Действует 7 дней с первого использования" in card
    assert "Покрытие: Таиланд" in card


@pytest.mark.parametrize(
    ("query", "iso", "name"),
    [
        ("Thailand", "TH", "Thailand"),
        ("таиланд", "TH", "Thailand"),
        ("TH", "TH", "Thailand"),
        ("THA", "TH", "Thailand"),
        ("Tailand", "TH", "Thailand"),
        ("UK", "GB", "United Kingdom"),
        ("Англия", "GB", "United Kingdom"),
    ],
)
async def test_typed_country_opens_its_plans(
    bot_env: BotEnv, query: str, iso: str, name: str
) -> None:
    calls = await bot_env.send(ALICE, query)
    assert [c.method for c in calls] == ["sendMessage"]
    screen = bot_env.screen(ALICE)
    assert screen.text.startswith(f"{chr(0x1F1E6 + ord(iso[0]) - 65)}")
    assert name in screen.text
    assert _callback(bot_env, ALICE, "Back") == "menu:buy"  # Back from a search: Buy screen
    await bot_env.tap(ALICE, "Back")
    assert "Where are you travelling" in bot_env.screen(ALICE).text


async def test_ambiguous_search_offers_choices(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "Guinea")
    screen = bot_env.screen(ALICE)
    assert screen.text == "Which one do you mean?"
    labels = screen.button_texts()
    assert {"🇬🇳 Guinea", "🇬🇼 Guinea-Bissau", "🇬🇶 Equatorial Guinea"} <= set(labels)
    await bot_env.tap(ALICE, "Guinea-Bissau")
    assert "Guinea-Bissau" in bot_env.screen(ALICE).text
    assert bot_env.screen(ALICE).button_texts()[0].startswith("1 GB · 7 days")


async def test_search_in_russian_answers_in_russian(bot_env: BotEnv) -> None:
    await bot_env.send(BORIS, "Англия")
    screen = bot_env.screen(BORIS)
    assert "Великобритания" in screen.text
    assert "Выберите тариф" in screen.text


async def test_unknown_text_gets_not_found_with_lists(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "qwertyuiop")
    screen = bot_env.screen(ALICE)
    assert "couldn't find a country called “qwertyuiop”" in screen.text
    assert {"🗺 Regions", "🔤 All countries A–Z", "🏠 Main menu"} <= set(screen.button_texts())
    await bot_env.send(BORIS, "<b>фывапролд</b> & co")
    assert "Не нашёл страну «<b>фывапролд</b> & co»" in bot_env.screen(BORIS).text


async def test_a_to_z_pages(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    await bot_env.tap(ALICE, "Buy")
    await bot_env.tap(ALICE, "All countries")
    first = bot_env.screen(ALICE)
    countries = [t for t in first.button_texts() if t not in {"›", "« Back"} and "/" not in t]
    assert len(countries) == 20
    assert countries[0].endswith("Afghanistan")
    names = [t.split(" ", 1)[1] for t in countries]
    assert names == sorted(names, key=sort_key)
    total_pages = -(-len(bot_env.deps.catalogue.catalogue.sorted_countries("en")) // 20)
    assert total_pages > 2
    assert _pager(first) == [f"1/{total_pages}", "›"]
    assert f"page 1 of {total_pages}" in first.text

    await bot_env.tap(ALICE, "›")
    second = bot_env.screen(ALICE)
    assert f"page 2 of {total_pages}" in second.text
    assert _pager(second) == ["‹", f"2/{total_pages}", "›"]
    following = [t for t in second.button_texts() if t not in {"‹", "›", "« Back"}]
    following = [t.split(" ", 1)[1] for t in following if not PAGE_COUNTER.fullmatch(t)]
    assert len(following) == 20
    assert sorted(names + following, key=sort_key) == names + following  # page 1, then 2

    await bot_env.tap(ALICE, "‹")
    assert bot_env.screen(ALICE).text == first.text
    assert _pager(bot_env.screen(ALICE)) == [f"1/{total_pages}", "›"]

    await bot_env.press(ALICE, CountryListCallback(view="az", page=total_pages - 1))
    last = bot_env.screen(ALICE)
    assert f"page {total_pages} of {total_pages}" in last.text
    assert _pager(last) == ["‹", f"{total_pages}/{total_pages}"]
    # A page past the end (stale button after a catalogue change) shows the last page.
    await bot_env.press(ALICE, CountryListCallback(view="az", page=total_pages + 5))
    assert bot_env.screen(ALICE).text == last.text

    await bot_env.press(ALICE, CountryListCallback(view="az", page=1))
    await bot_env.tap(ALICE, bot_env.screen(ALICE).button_texts()[0])
    await bot_env.tap(ALICE, "Back")
    assert f"page 2 of {total_pages}" in bot_env.screen(ALICE).text  # Back: the same page


async def test_russian_a_to_z_is_sorted_in_russian(bot_env: BotEnv) -> None:
    await bot_env.send(BORIS, "/start")
    await bot_env.tap(BORIS, "Купить")
    await bot_env.tap(BORIS, "Все страны")
    screen = bot_env.screen(BORIS)
    assert "страница 1 из" in screen.text
    names = [
        t.split(" ", 1)[1] for t in screen.button_texts() if t[0] not in "‹›«" and "/" not in t
    ]
    assert names[0] == "Австралия"
    assert names == sorted(names, key=sort_key)


async def test_regions_list_and_region_countries(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    await bot_env.tap(ALICE, "Buy")
    await bot_env.tap(ALICE, "Regions")
    regions = bot_env.screen(ALICE).button_texts()
    assert regions[0] == "🇪🇺 Europe" and "🌏 Asia" in regions
    await bot_env.tap(ALICE, "Asia")
    asia = bot_env.screen(ALICE)
    assert "Asia" in asia.text
    assert "🇹🇭 Thailand" in asia.button_texts() or "›" in asia.button_texts()
    await bot_env.tap(ALICE, asia.button_texts()[0])
    assert "Choose a plan" in bot_env.screen(ALICE).text
    await bot_env.tap(ALICE, "Back")
    assert bot_env.screen(ALICE).text == asia.text
    await bot_env.tap(ALICE, "Back")
    assert bot_env.screen(ALICE).button_texts() == regions


async def test_typed_region_opens_its_countries(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "europe")
    screen = bot_env.screen(ALICE)
    assert screen.text.startswith("🇪🇺 Europe")
    assert "🇫🇷 France" in screen.button_texts() or "›" in screen.button_texts()
    await bot_env.send(BORIS, "Азия")
    assert bot_env.screen(BORIS).text.startswith("🌏 Азия")


async def test_language_switch_is_stored_and_used_by_new_sessions(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    await bot_env.tap(ALICE, "Language")
    assert bot_env.screen(ALICE).text == "Choose your language:"
    calls = await bot_env.tap(ALICE, "Русский")
    [answer] = answers(calls)
    assert answer.params["text"] == "Язык: русский"
    assert "eSIM для путешествий" in bot_env.screen(ALICE).text

    async with bot_env.deps.session_factory() as session:
        stored = await session.scalar(select(DbUser).where(DbUser.telegram_id == ALICE.id))
    assert stored is not None and stored.language == "ru" and stored.telegram_language == "en"

    # Telegram still says "en"; the stored choice wins in every later update.
    await bot_env.send(ALICE, "/start")
    assert bot_env.screen(ALICE).button_texts()[0] == "🛒 Купить eSIM"
    await bot_env.send(ALICE, "/language")
    assert "✅ 🇷🇺 Русский" in bot_env.screen(ALICE).button_texts()
    await bot_env.tap(ALICE, "English")
    assert bot_env.screen(ALICE).button_texts()[0] == "🛒 Buy eSIM"


async def test_users_are_stored_with_their_telegram_details(bot_env: BotEnv) -> None:
    await bot_env.send(BORIS, "/help")
    assert "Как это работает" in bot_env.screen(BORIS).text
    renamed = make_user(BORIS.id, language_code="ru", username="boris2", first_name="Борис")
    await bot_env.send(renamed, "/start")
    async with bot_env.deps.session_factory() as session:
        stored = await session.get(DbUser, BORIS.id)
    assert stored is not None
    assert (stored.username, stored.first_name, stored.language) == ("boris2", "Борис", None)


async def test_help_and_menu_buttons(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    await bot_env.tap(ALICE, "Help")
    assert "How it works" in bot_env.screen(ALICE).text
    await bot_env.tap(ALICE, "Back")
    calls = await bot_env.tap(ALICE, "My eSIMs")
    assert len(answers(calls)) == 1
    assert not bot_env.error_logs


async def test_bot_commands_in_both_languages(bot_env: BotEnv) -> None:
    from bot.dispatcher import set_bot_profile

    await set_bot_profile(bot_env.bot, bot_env.deps.translator)
    commands = bot_env.fake_telegram.commands
    names = [c["command"] for c in commands[("default", "en")]]
    assert names == [
        "start",
        "help",
        "myesims",
        "language",
        "reminders",
        "paysupport",
        "terms",
    ]
    assert commands[("default", "ru")][0]["description"] == "Главное меню"
    assert commands[("default", "")][0]["description"] == "Main menu"


@pytest.fixture
async def offline_catalogue(bot_env: BotEnv) -> AsyncIterator[CatalogueService]:
    """A catalogue service whose eSIM Go is down (every catalogue request fails)."""
    settings = bot_env.deps.settings
    client = EsimGoClient(
        settings.esimgo_base_url,
        settings.esimgo_api_key.get_secret_value(),
        retry=RetryPolicy(attempts=1),
    )
    bot_env.fake_esimgo.fail_next("GET /catalogue", status=503, times=100)
    service = CatalogueService(client, bot_env.deps.session_factory)
    try:
        yield service
    finally:
        await client.close()


async def test_catalogue_unavailable_without_a_snapshot(
    bot_env: BotEnv, offline_catalogue: CatalogueService
) -> None:
    assert not await offline_catalogue.refresh()
    deps = dataclasses.replace(bot_env.deps, catalogue=offline_catalogue)
    env = dataclasses.replace(bot_env, dispatcher=create_dispatcher(deps))
    await env.send(ALICE, "/start")
    calls = await env.tap(ALICE, "Buy")
    assert len(answers(calls)) == 1
    assert "temporarily unavailable" in env.screen(ALICE).text
    await env.send(BORIS, "Thailand")
    assert "Каталог временно недоступен" in env.screen(BORIS).text
    await env.press(ALICE, CountryCallback(iso="TH"))
    assert "temporarily unavailable" in env.screen(ALICE).text


async def test_snapshot_keeps_selling_while_esimgo_is_down(
    bot_env: BotEnv, offline_catalogue: CatalogueService
) -> None:
    assert await offline_catalogue.load_snapshot()  # saved by bot_env's sync
    assert not await offline_catalogue.refresh()
    deps = dataclasses.replace(bot_env.deps, catalogue=offline_catalogue)
    env = dataclasses.replace(bot_env, dispatcher=create_dispatcher(deps))
    await env.send(ALICE, "Thailand")
    assert "Choose a plan" in env.screen(ALICE).text


async def test_plan_lists_follow_the_users_language_and_a_refreshed_catalogue(
    bot_env: BotEnv,
) -> None:
    await bot_env.send(ALICE, "Thailand")
    english = bot_env.screen(ALICE)
    await bot_env.send(BORIS, "Таиланд")
    russian = bot_env.screen(BORIS)
    assert "Thailand" in english.text and "Таиланд" in russian.text
    assert english.button_texts()[0].startswith("1 GB · 7 days")
    assert russian.button_texts()[0].startswith("1 ГБ · 7 дн.")

    bundle = bot_env.fake_esimgo.bundle("esim_1GB_7D_TH_V2")
    assert bundle is not None
    bundle["price"] = bundle["price"] * 3  # eSIM Go raises the price; the next sync sees it
    await bot_env.deps.catalogue.sync()
    await bot_env.send(ALICE, "Thailand")

    before = LABEL.match(english.button_texts()[0])
    after = LABEL.match(bot_env.screen(ALICE).button_texts()[0])
    assert before is not None and after is not None
    assert int(after["price"].replace(",", "")) > int(before["price"].replace(",", ""))
