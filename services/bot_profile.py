"""How the bot introduces itself before Start, per language: commands, description, short one.

Published at start-up with setMyCommands / setMyDescription / setMyShortDescription, once with
each `language_code` we speak and once without (English, for everyone else).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.i18n import N_, SUPPORTED_LANGUAGES, Translator

# Telegram's limits (Bot API): what the profile texts must fit in every language.
MAX_DESCRIPTION = 512
MAX_SHORT_DESCRIPTION = 120
MAX_COMMAND_DESCRIPTION = 256
DEFAULT_LANGUAGE = "en"

COMMANDS = (
    ("start", N_("Main menu")),
    ("help", N_("How it works")),
    ("myesims", N_("My eSIMs and data left")),
    ("language", N_("Change language")),
    ("reminders", N_("Reminders on or off")),
    ("paysupport", N_("Help with a payment")),
    ("terms", N_("Terms of sale")),
)
DESCRIPTION = N_(
    "Travel data eSIMs for most of the world, bought right here in Telegram.\n\n"
    "• Type a country, or several for a whole trip, and pick a plan\n"
    "• Pay in the chat and get your eSIM as a QR code in seconds\n"
    "• Install it before you fly: the plan starts when you land\n"
    "• See the data left, top up, or send an eSIM as a gift\n\n"
    "Press Start to see the plans."
)
SHORT_DESCRIPTION = N_(
    "Travel data eSIMs: pick a country, pay in Telegram, get the QR code in seconds."
)


@dataclass(frozen=True, slots=True)
class BotProfile:
    """One language's profile; `language_code` None is the default for all other languages."""

    language_code: str | None
    commands: tuple[tuple[str, str], ...]  # (command, description)
    description: str
    short_description: str


def bot_profiles(translator: Translator) -> list[BotProfile]:
    """The profile in each language we speak, then the default one (English)."""
    profiles = []
    for code in (*SUPPORTED_LANGUAGES, None):
        lang = code or DEFAULT_LANGUAGE
        profiles.append(
            BotProfile(
                language_code=code,
                commands=tuple((name, translator.gettext(text, lang)) for name, text in COMMANDS),
                description=translator.gettext(DESCRIPTION, lang),
                short_description=translator.gettext(SHORT_DESCRIPTION, lang),
            )
        )
    return profiles
