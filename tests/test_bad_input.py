"""Bad input never crashes the bot: every case gets a friendly answer and a way on."""

from __future__ import annotations

import pytest
from aiogram.types import BufferedInputFile, Update

from handlers.callbacks import BundleCallback, CountryCallback, CountryListCallback
from tests.helpers import BotEnv, answers, callback_update, make_user, message_update

ALICE = make_user(1001, language_code="en")
BORIS = make_user(2002, language_code="ru")
MENU = ["🛒 Buy eSIM", "📱 My eSIMs", "📱 Will it work on my phone?", "❓ Help", "🌐 Language"]


async def test_sticker_gets_a_text_only_hint_and_the_menu(bot_env: BotEnv) -> None:
    calls = await bot_env.send_sticker(ALICE)
    assert [c.method for c in calls] == ["sendMessage"]
    screen = bot_env.screen(ALICE)
    assert "I can only read text" in screen.text
    assert screen.button_texts() == MENU
    assert not bot_env.error_logs


async def test_photo_with_or_without_caption_gets_the_hint(bot_env: BotEnv) -> None:
    await bot_env.send_photo(BORIS)
    assert "Я понимаю только текст" in bot_env.screen(BORIS).text
    await bot_env.send_photo(ALICE, caption="Thailand")
    assert "I can only read text" in bot_env.screen(ALICE).text


async def test_a_command_as_a_photo_caption_still_runs(bot_env: BotEnv) -> None:
    await bot_env.send_photo(ALICE, caption="/help")
    assert "How it works" in bot_env.screen(ALICE).text


async def test_unknown_command_shows_the_menu(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/explode now")
    screen = bot_env.screen(ALICE)
    assert "don't know that command" in screen.text
    assert screen.button_texts() == MENU


@pytest.mark.parametrize("text", ["asdfghjkl", "12345", "!!!", "🙂", " ", "x" * 4000, "a\nb"])
async def test_random_text_is_a_search_that_finds_nothing(bot_env: BotEnv, text: str) -> None:
    calls = await bot_env.send(ALICE, text)
    assert [c.method for c in calls] == ["sendMessage"] and calls[0].ok
    screen = bot_env.screen(ALICE)
    assert "couldn't find" in screen.text
    assert len(screen.text) < 400  # a 4000-character text is not echoed back whole
    assert not bot_env.error_logs


async def test_real_country_without_plans_is_named(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "Antarctica")
    assert "there are no plans for Antarctica yet" in bot_env.screen(ALICE).text
    await bot_env.send(BORIS, "Россия")
    assert "для страны «Россия» тарифов пока нет" in bot_env.screen(BORIS).text


@pytest.mark.parametrize(
    "data",
    [
        "garbage",
        "menu",
        "menu:explode",
        "co:",
        "co:TH:p:notanumber",
        "cl:az:-x:",
        "bu:show",
        "bu:steal:esim_1GB_7D_TH_V2:TH:p:0",
        "lang",
        "noop:a:b",
        "\u0000\u202e",
        "x" * 64,
    ],
)
async def test_forged_callback_data_is_answered_and_shows_the_menu(
    bot_env: BotEnv, data: str
) -> None:
    await bot_env.send(ALICE, "/start")
    calls = await bot_env.press(ALICE, data)
    [answer] = answers(calls)
    assert answer.params["text"] == "This button is out of date. Here is the menu."
    assert bot_env.screen(ALICE).button_texts() == MENU
    assert not bot_env.error_logs


async def test_unknown_language_code_in_callback(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    calls = await bot_env.press(ALICE, "lang:xx")
    [answer] = answers(calls)
    assert answer.params["text"] == "This button is out of date."
    assert bot_env.screen(ALICE).button_texts() == MENU


async def test_unknown_bundle_leads_back_to_current_plans(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    stale = BundleCallback(action="show", bundle="esim_999GB_1D_TH_V1", iso="TH", origin="p")
    calls = await bot_env.press(ALICE, stale)
    [answer] = answers(calls)
    assert "no longer available" in answer.params["text"]
    assert "Thailand" in bot_env.screen(ALICE).text
    assert "Choose a plan" in bot_env.screen(ALICE).text

    forged = BundleCallback(action="show", bundle="nope", iso="ZZ", origin="r0.Atlantis")
    await bot_env.press(ALICE, forged)
    assert "Where are you travelling" in bot_env.screen(ALICE).text


async def test_bundle_with_a_foreign_country_backs_out_to_buy(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    await bot_env.press(ALICE, BundleCallback(action="show", bundle="esim_1GB_7D_TH_V2", iso="FR"))
    card = bot_env.screen(ALICE)
    assert "Thailand" in card.text
    assert card.button("Back")["callback_data"] == "menu:buy"


async def test_country_without_bundles_and_unknown_region(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    calls = await bot_env.press(ALICE, CountryCallback(iso="AQ"))
    [answer] = answers(calls)
    assert "no plans for this country" in answer.params["text"]
    assert "Where are you travelling" in bot_env.screen(ALICE).text

    calls = await bot_env.press(ALICE, CountryListCallback(view="region", region="Atlantis"))
    assert "no longer available" in answers(calls)[0].params["text"]
    assert "Regions" in bot_env.screen(ALICE).text

    await bot_env.press(ALICE, CountryCallback(iso="TH", origin="r-1.x", page=-7))
    assert "Thailand" in bot_env.screen(ALICE).text
    assert bot_env.screen(ALICE).button("Back")["callback_data"] == "menu:buy"


async def test_stale_message_gets_a_new_message(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    calls = await bot_env.press(ALICE, "menu:buy", message_id=999)  # deleted or never existed
    methods = [c.method for c in calls]
    assert methods == ["editMessageText", "sendMessage", "answerCallbackQuery"]
    assert "Where are you travelling" in bot_env.screen(ALICE).text


async def test_button_under_a_photo_sends_a_new_message(bot_env: BotEnv) -> None:
    photo = await bot_env.bot.send_photo(
        ALICE.id, BufferedInputFile(b"\x89PNG fake", "qr.png"), caption="Your eSIM"
    )
    calls = await bot_env.press(ALICE, "menu:main", message_id=photo.message_id)
    assert [c.method for c in calls if c.ok] == ["sendMessage", "answerCallbackQuery"]
    assert bot_env.screen(ALICE).button_texts() == MENU


async def test_inaccessible_old_message_gets_a_new_message(bot_env: BotEnv) -> None:
    update = callback_update(ALICE, "menu:help").model_dump()
    update["callback_query"]["message"] = {
        "message_id": 1,
        "date": 0,  # Telegram's marker for a message the bot can no longer access
        "chat": {"id": ALICE.id, "type": "private"},
    }
    calls = await bot_env.feed(Update.model_validate(update))
    assert [c.method for c in calls] == ["sendMessage", "answerCallbackQuery"]
    assert "How it works" in bot_env.screen(ALICE).text


async def test_pressing_the_same_button_twice_is_fine(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    await bot_env.tap(ALICE, "Help")
    calls = await bot_env.press(ALICE, "menu:help")  # "message is not modified"
    assert len(answers(calls)) == 1
    assert not bot_env.error_logs


async def test_group_chat_text_is_ignored(bot_env: BotEnv) -> None:
    calls = await bot_env.feed(message_update(ALICE, "hello", chat_id=-100123))
    assert calls == []


async def test_telegram_failure_is_logged_and_the_user_told(bot_env: BotEnv) -> None:
    await bot_env.send(BORIS, "/start")
    bot_env.fake_telegram.fail_next("editMessageText", 500, "Internal Server Error")
    update = callback_update(BORIS, "menu:help", bot_env.screen(BORIS).message_id)
    calls = await bot_env.feed(update)
    assert len(answers(calls)) == 1
    assert "Что-то пошло не так" in bot_env.screen(BORIS).text
    [record] = bot_env.error_logs
    assert str(update.update_id) in record.getMessage()


async def test_blocked_user_does_not_break_the_dispatcher(bot_env: BotEnv) -> None:
    bot_env.fake_telegram.fail_next("sendMessage", times=2)  # 403: bot was blocked
    await bot_env.send(ALICE, "/start")
    assert len(bot_env.error_logs) == 1
    await bot_env.send(ALICE, "/start")  # unblocked again: works
    assert bot_env.screen(ALICE).button_texts() == MENU
