"""aiogram's gettext I18n fed from our in-memory catalogues (no compiled .mo files to ship)."""

from __future__ import annotations

import gettext
from collections.abc import Iterator
from contextlib import contextmanager
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

    @contextmanager
    def context(self) -> Iterator[I18n]:
        """Make this the current I18n for aiogram's `gettext` (which asks I18n.get_current)."""
        # ContextInstanceMixin keeps one context variable per class: the inherited context()
        # would set CatalogueI18n's own and leave I18n's, the one gettext reads, unset.
        token = I18n.set_current(self)
        try:
            with super().context():
                yield self
        finally:
            I18n.reset_current(token)
