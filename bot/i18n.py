"""aiogram's gettext I18n fed from our in-memory catalogues (no compiled .mo files to ship)."""

from __future__ import annotations

import gettext
from typing import cast

from aiogram.utils.i18n import I18n

from services.i18n import LOCALES_DIR, Translator


class CatalogueI18n(I18n):
    """aiogram I18n whose locales come from a Translator instead of .mo files on disk."""

    def __init__(self, translator: Translator, default_locale: str = "en") -> None:
        self._translator = translator
        super().__init__(path=LOCALES_DIR, default_locale=default_locale, domain="messages")

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        # aiogram only calls gettext/ngettext on these, which NullTranslations has too.
        return cast(dict[str, gettext.GNUTranslations], dict(self._translator.translations))
