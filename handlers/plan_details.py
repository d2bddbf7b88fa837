"""What a plan card adds about value and reach: the price per GB and, per country, the mobile
networks and their speeds (from the networks fetched with the catalogue, never live)."""

from __future__ import annotations

import html

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from services.catalogue import Catalogue
from services.countries import sorted_by_name
from services.esimgo.models import Bundle
from services.formatting import flagged
from services.i18n import Translator
from services.networks import NetworkDirectory, describe_networks
from services.plan_text import format_price_per_gb, price_per_gb
from services.pricing import PricingService

# A regional plan lists this many countries' networks; the rest are counted.
COUNTRIES_SHOWN = 4


def price_per_gb_line(
    pricing: PricingService, translator: Translator, lang: str, bundle: Bundle
) -> list[str]:
    """ "💵 ≈ 17 ⭐ per GB"; nothing for an unlimited plan."""
    unit = price_per_gb(pricing, bundle)
    if unit is None:
        return []
    return ["💵 " + html.escape(format_price_per_gb(unit, lang, translator))]


def network_lines(
    catalogue: Catalogue, networks: NetworkDirectory | None, bundle: Bundle, iso: str, lang: str
) -> list[str]:
    """The networks of each country the plan covers (the browsed one first), with speeds."""
    if networks is None:
        return []
    covered = [c.iso for c in bundle.coverage if len(c.iso) == 2 and c.iso.isalpha()]
    ordered = sorted_by_name([c for c in covered if c != iso], lang)
    if iso in covered:
        ordered.insert(0, iso)
    known = [(c, networks.for_country(c)) for c in ordered if networks.for_country(c)]
    if not known:
        return []
    if len(covered) == 1:
        shown = html.escape(describe_networks(known[0][1]))
        return [_("📡 Networks: {networks}").format(networks=shown)]
    lines = [_("📡 Networks:")]
    for country, found in known[:COUNTRIES_SHOWN]:
        name = flagged(country, catalogue.country_name(country, lang))
        lines.append(f"• {html.escape(name)}: {html.escape(describe_networks(found))}")
    if len(known) > COUNTRIES_SHOWN:
        rest = len(known) - COUNTRIES_SHOWN
        more = ngettext("• and {count} more country", "• and {count} more countries", rest)
        lines.append(more.format(count=rest))
    return lines
