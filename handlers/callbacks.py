"""CallbackData factories for the menu and browsing; every inline button is built from these.

`origin` fields remember where the user came from so Back returns there. They are short codes:
"p" the Buy screen, "s" a search, "a<page>" the A–Z list, "r<page>.<region>" a region's list.
Anything else (stale or forged) leads back to the Buy screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from aiogram.filters.callback_data import CallbackData

ORIGIN_BUY = "p"
ORIGIN_SEARCH = "s"
_PAGE = re.compile(r"[0-9]{1,4}")


class MenuCallback(CallbackData, prefix="menu"):
    """Main-menu navigation: the menu itself, Buy, Help, Language, My eSIMs."""

    action: Literal["main", "buy", "help", "language", "myesims"]


class LanguageCallback(CallbackData, prefix="lang"):
    code: str


class CountryListCallback(CallbackData, prefix="cl"):
    """Lists of countries: regions, one region's countries, or everything A–Z (paged)."""

    view: Literal["regions", "region", "az"]
    page: int = 0
    region: str = ""


class CountryCallback(CallbackData, prefix="co"):
    """A country's plans (paged); `origin` is where Back leads."""

    iso: str
    origin: str = ORIGIN_BUY
    page: int = 0


class BundleCallback(CallbackData, prefix="bu"):
    """A bundle's card ("show") or buying it ("buy"); iso/origin/page lead Back to the list."""

    action: Literal["show", "buy"]
    bundle: str
    iso: str = ""
    origin: str = ORIGIN_BUY
    page: int = 0


class NoopCallback(CallbackData, prefix="noop"):
    """Buttons that only label something (page counter, section header)."""

    what: str = ""


@dataclass(frozen=True, slots=True)
class Origin:
    """A decoded `origin`: which list to go Back to."""

    kind: Literal["buy", "search", "az", "region"]
    page: int = 0
    region: str = ""


def az_origin(page: int) -> str:
    return f"a{page}"


def region_origin(region: str, page: int) -> str:
    return f"r{page}.{region}"


def parse_origin(origin: str) -> Origin:
    """Decode an origin code; unknown or malformed codes mean the Buy screen."""
    if origin == ORIGIN_SEARCH:
        return Origin("search")
    if origin.startswith("a") and _PAGE.fullmatch(origin[1:]):
        return Origin("az", page=int(origin[1:]))
    if origin.startswith("r") and "." in origin:
        page, _, region = origin[1:].partition(".")
        if _PAGE.fullmatch(page) and region:
            return Origin("region", page=int(page), region=region)
    return Origin("buy")
