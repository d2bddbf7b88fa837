"""The bot introduces itself before Start in the user's language, within Telegram's limits."""

from __future__ import annotations

import re

import pytest

from bot.dispatcher import set_bot_profile
from services.bot_profile import (
    MAX_COMMAND_DESCRIPTION,
    MAX_DESCRIPTION,
    MAX_SHORT_DESCRIPTION,
    bot_profiles,
)
from services.i18n import Translator
from tests.helpers import BotEnv

_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


def test_english_and_russian_profiles_and_an_english_default() -> None:
    english, russian, default = bot_profiles(Translator())

    assert (english.language_code, russian.language_code, default.language_code) == (
        "en",
        "ru",
        None,
    )
    assert default.commands == english.commands
    assert default.description == english.description
    assert english.short_description.startswith("Travel data eSIMs")
    assert russian.short_description.startswith("eSIM для поездок")
    assert dict(russian.commands)["myesims"] == "Мои eSIM и остаток трафика"
    assert dict(russian.commands)["reminders"] == "Напоминания: вкл. или выкл."
    assert [c for c, _ in russian.commands] == [c for c, _ in english.commands]


def test_every_profile_fits_telegram_limits() -> None:
    for profile in bot_profiles(Translator()):
        assert 0 < len(profile.description) <= MAX_DESCRIPTION
        assert 0 < len(profile.short_description) <= MAX_SHORT_DESCRIPTION
        for command, description in profile.commands:
            assert _COMMAND.fullmatch(command)
            assert 0 < len(description) <= MAX_COMMAND_DESCRIPTION


async def test_published_per_language_once_and_a_refusal_is_not_fatal(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    fake = bot_env.fake_telegram
    await set_bot_profile(bot_env.bot, bot_env.deps.translator)

    english, russian, _ = bot_profiles(Translator())
    assert fake.commands[("default", "ru")] == [
        {"command": c, "description": d} for c, d in russian.commands
    ]
    assert fake.commands[("default", "")] == fake.commands[("default", "en")]
    assert fake.descriptions == {
        "en": english.description,
        "ru": russian.description,
        "": english.description,
    }
    assert fake.short_descriptions["ru"] == russian.short_description
    # Published again (a restart): the descriptions are left alone, being the same.
    fake.clear_calls()
    await set_bot_profile(bot_env.bot, bot_env.deps.translator)
    assert fake.calls_to("setMyDescription") == fake.calls_to("setMyShortDescription") == []

    # Telegram refusing one language leaves the others published and the bot starting.
    fake.descriptions.clear()
    fake.fail_next("setMyDescription", 429, retry_after=30)
    await set_bot_profile(bot_env.bot, bot_env.deps.translator)
    assert set(fake.descriptions) == {"ru", ""}
    assert "Telegram refused the bot's profile (en)" in caplog.text
