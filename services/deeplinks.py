"""The `start` parameter of t.me links into the bot: a plan, a country, or a gift's claim token.

Telegram allows 1–64 characters of A–Z a–z 0–9 _ -. Bundle names can be longer, so a plan is
named by a short code derived from its name (stable across catalogue refreshes and replicas):

    p<13 base32 letters>[<ISO>]   a plan, opened at its confirmation ("from this country")
    c<ISO>                        a country's plan list
    g<24-character token>         a gift's claim link

Anything else, a plan no longer sold or a country not on sale resolves to None: the main menu.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from services.catalogue import Catalogue
from services.esimgo.models import Bundle

START_PARAMETER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PLAN = re.compile(r"p([a-z2-7]{13})([A-Z]{2})?")
_COUNTRY = re.compile(r"c([A-Z]{2})")
_GIFT = re.compile(r"g([A-Za-z0-9_-]{24})")


def plan_code(bundle_name: str) -> str:
    """13 characters (64 bits of SHA-256) naming a bundle: no catalogue has a collision."""
    digest = hashlib.sha256(bundle_name.encode()).digest()[:8]
    return base64.b32encode(digest).decode().rstrip("=").lower()


def plan_parameter(bundle_name: str, iso: str = "") -> str:
    code = iso.upper() if len(iso) == 2 and iso.isascii() and iso.isalpha() else ""
    return f"p{plan_code(bundle_name)}{code}"


def country_parameter(iso: str) -> str:
    return f"c{iso.upper()}"


def gift_parameter(token: str) -> str:
    return f"g{token}"


def start_link(bot_username: str, parameter: str) -> str:
    return f"https://t.me/{bot_username}?start={parameter}"


@dataclass(frozen=True, slots=True)
class PlanStart:
    bundle: Bundle
    iso: str  # the country it was offered for; "" for a regional plan offered for no country


@dataclass(frozen=True, slots=True)
class CountryStart:
    iso: str


@dataclass(frozen=True, slots=True)
class GiftStart:
    token: str


StartTarget = PlanStart | CountryStart | GiftStart


class StartLinks:
    """Reads `start` parameters against the catalogue in memory (plan codes indexed once)."""

    def __init__(self) -> None:
        self._indexed: Catalogue | None = None
        self._plans: dict[str, Bundle] = {}

    def _plan(self, catalogue: Catalogue, code: str) -> Bundle | None:
        if catalogue is not self._indexed:
            plans: dict[str, Bundle] = {}
            for bundle in catalogue.bundles:
                plans.setdefault(plan_code(bundle.name), bundle)
            self._plans, self._indexed = plans, catalogue
        return self._plans.get(code)

    def resolve(self, catalogue: Catalogue, parameter: str | None) -> StartTarget | None:
        """What a `/start <parameter>` opens; None (the main menu) for anything unusable."""
        if not parameter or not START_PARAMETER.fullmatch(parameter):
            return None
        if gift := _GIFT.fullmatch(parameter):
            return GiftStart(gift.group(1))
        if country := _COUNTRY.fullmatch(parameter):
            iso = country.group(1)
            return CountryStart(iso) if catalogue.bundles_for_country(iso) else None
        plan = _PLAN.fullmatch(parameter)
        bundle = self._plan(catalogue, plan.group(1)) if plan else None
        if plan is None or bundle is None:
            return None
        iso = plan.group(2) or ""
        covered = [c.iso for c in bundle.coverage]
        if iso not in covered:
            iso = covered[0] if len(covered) == 1 else ""
        return PlanStart(bundle, iso)
