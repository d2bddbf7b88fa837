"""Translations: gettext catalogues (.po, compiled in memory at start) for English and Russian.

Each feature keeps its own `services/locales/<lang>/LC_MESSAGES/<feature>.po`; all files of a
language are merged. English msgids are the source text, so English needs no catalogue.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterable
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SUPPORTED_LANGUAGES = ("en", "ru")
LOCALES_DIR = Path(__file__).parent / "locales"


def normalize_language(code: str | None, default: str = "en") -> str:
    """Map a Telegram `language_code` ("ru", "ru-RU", "uk", None) to a supported language."""
    if not code:
        return default
    base = code.replace("_", "-").split("-")[0].lower()
    return base if base in SUPPORTED_LANGUAGES else default


def _compile(po_files: Iterable[Path]) -> gettext.NullTranslations:
    translations: gettext.NullTranslations = gettext.NullTranslations()
    for po_file in sorted(po_files):
        with po_file.open("rb") as fp:
            catalog = read_po(fp, locale=po_file.parent.parent.name)
        buffer = io.BytesIO()
        # Fuzzy entries are half-done translations: better English than a wrong Russian text.
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        compiled = gettext.GNUTranslations(buffer)
        compiled.add_fallback(translations)
        translations = compiled
    return translations


def load_translations(locales_dir: Path = LOCALES_DIR) -> dict[str, gettext.NullTranslations]:
    """Every supported language's merged catalogue; English falls back to the msgids."""
    result: dict[str, gettext.NullTranslations] = {}
    for language in SUPPORTED_LANGUAGES:
        folder = locales_dir / language / "LC_MESSAGES"
        files = list(folder.glob("*.po")) if folder.is_dir() else []
        result[language] = _compile(files)
    return result


class Translator:
    """Language-explicit gettext for code that has no aiogram context (workers, services)."""

    def __init__(self, translations: dict[str, gettext.NullTranslations] | None = None) -> None:
        self.translations = translations if translations is not None else load_translations()

    def gettext(self, message: str, language: str) -> str:
        catalogue = self.translations.get(language)
        return catalogue.gettext(message) if catalogue is not None else message

    def ngettext(self, singular: str, plural: str, n: int, language: str) -> str:
        catalogue = self.translations.get(language)
        if catalogue is None:
            return singular if n == 1 else plural
        return catalogue.ngettext(singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark a string for extraction without translating it now."""
    return message
