"""Screens that depend only on the catalogue, the language and their arguments, built once.

A country's plan list takes Babel numbers, callback data and keyboard models to format, and is
the same for everyone who types "Thailand" in English (bench/webhook.py shows what building it
once saves); a refreshed catalogue (a new object) starts the cache over.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import ParamSpec, TypeVar, cast

from aiogram.utils.i18n import I18n

from services.catalogue import Catalogue, CatalogueService

P = ParamSpec("P")
S = TypeVar("S")

# Keys carry callback data (pages, origins) that users can forge: the oldest screen goes first.
MAX_SCREENS = 2048


class ScreenCache:
    """`render(build, *args)` returns `build(*args)`, computed once per catalogue and locale."""

    def __init__(self, catalogue: CatalogueService, max_screens: int = MAX_SCREENS) -> None:
        self._catalogue = catalogue
        self._max = max_screens
        self._built_for: Catalogue | None = None
        self._screens: OrderedDict[Hashable, object] = OrderedDict()

    def render(self, build: Callable[P, S], /, *args: P.args, **kwargs: P.kwargs) -> S:
        current = self._catalogue.catalogue
        if current is not self._built_for:
            self._screens.clear()
            self._built_for = current
        # Texts come from gettext in aiogram's current locale, which a handler may switch.
        i18n = I18n.get_current(no_error=True)
        locale = i18n.current_locale if i18n is not None else None
        key = (locale, build, args, tuple(sorted(kwargs.items())))
        cached = self._screens.get(key)
        if cached is not None:
            self._screens.move_to_end(key)
            return cast(S, cached)
        screen = build(*args, **kwargs)
        if screen is not None:  # "nothing here" is cheap to find again
            self._screens[key] = screen
            if len(self._screens) > self._max:
                self._screens.popitem(last=False)
        return screen
