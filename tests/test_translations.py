"""Every user-visible string has a Russian translation, and the catalogues are well-formed."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from services.i18n import LOCALES_DIR, SUPPORTED_LANGUAGES, Translator, normalize_language

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("bot", "handlers", "services")
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "__": None,
    "N_": None,
    "lazy_gettext": None,
}
PLACEHOLDER = re.compile(r"\{[a-z_][a-z0-9_]*(?:![rsa])?(?::[^{}]*)?\}")


def _source_messages() -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    for folder in SOURCE_DIRS:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT / folder, keywords=KEYWORDS, method_map=[("**.py", "python")]
        ):
            texts = message if isinstance(message, tuple) else (message,)
            for text in texts:
                if text:
                    found.setdefault(text, (f"{folder}/{filename}", lineno))
    return found


def _russian_catalogue() -> dict[str, object]:
    entries: dict[str, object] = {}
    for po_file in sorted((LOCALES_DIR / "ru" / "LC_MESSAGES").glob("*.po")):
        with po_file.open("rb") as fp:
            for message in read_po(fp, locale="ru"):
                if message.id:
                    key = message.id[0] if isinstance(message.id, tuple) else message.id
                    entries[key] = message.string
                    if isinstance(message.id, tuple):
                        entries[message.id[1]] = message.string
    return entries


def test_every_source_message_has_a_russian_translation() -> None:
    russian = _russian_catalogue()
    missing = []
    for text, (where, line) in sorted(_source_messages().items()):
        translated = russian.get(text)
        strings = translated if isinstance(translated, (tuple, list)) else (translated,)
        if not translated or not all(strings):
            missing.append(f"{where}:{line}: {text!r}")
    assert not missing, "untranslated messages:\n" + "\n".join(missing)


def test_translations_keep_their_placeholders() -> None:
    translator = Translator()
    for text in _source_messages():
        russian = translator.gettext(text, "ru")
        assert sorted(PLACEHOLDER.findall(russian)) == sorted(PLACEHOLDER.findall(text)), text


def test_language_codes_from_telegram_map_to_supported_ones() -> None:
    assert normalize_language("ru-RU") == "ru"
    assert normalize_language("en-GB") == "en"
    assert normalize_language("de", default="ru") == "ru"
    assert normalize_language(None) == "en"
    assert set(SUPPORTED_LANGUAGES) == {"en", "ru"}
