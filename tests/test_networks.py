"""Networks per country and their speeds, fetched with the catalogue and kept as a snapshot;
the price per GB. Plan cards read both from memory: browsing never calls eSIM Go."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.esimgo.models import Bundle
from services.i18n import Translator
from services.networks import Network, NetworkDirectory, NetworkService, describe_networks
from services.plan_text import format_price_per_gb, price_per_gb
from services.pricing import PricingService
from tests.fakes.esimgo import FakeEsimGo
from tests.reach_helpers import STARS, esimgo_client, synced_catalogue


async def test_networks_come_with_the_catalogue_and_survive_a_restart(
    fake_esimgo: FakeEsimGo, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with esimgo_client(fake_esimgo) as client:
        networks = NetworkService(client, session_factory)
        async with synced_catalogue(fake_esimgo, session_factory, (networks,)):
            assert len(fake_esimgo.calls("GET /networks")) == 1
            assert fake_esimgo.calls("GET /networks")[0].param("returnAll") == "true"
            before = len(fake_esimgo.requests)
            thailand = networks.directory.for_country("th")
            assert len(fake_esimgo.requests) == before  # read from memory
        # A restart while eSIM Go is down: the snapshot in the database is enough.
        restarted = NetworkService(client, session_factory)
        assert await restarted.load_snapshot()
    assert thailand == (
        Network("AIS", ("5G", "4G")),
        Network("TrueMove H", ("5G", "4G")),
        Network("dtac", ("4G",)),
    )
    assert restarted.directory.for_country("TH") == thailand
    assert describe_networks(thailand) == "AIS 5G/4G · TrueMove H 5G/4G · dtac 4G"
    assert describe_networks(restarted.directory.for_country("FR"), limit=2) == (
        "Orange 5G/4G · Bouygues Telecom 4G/3G · +1"
    )


async def test_a_failed_network_fetch_keeps_the_last_networks_and_the_catalogue(
    fake_esimgo: FakeEsimGo, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with esimgo_client(fake_esimgo) as client:
        networks = NetworkService(client, session_factory)
        async with synced_catalogue(fake_esimgo, session_factory, (networks,)) as catalogue:
            known = networks.directory.for_country("US")
            fake_esimgo.fail_next("GET /networks", status=400)
            await catalogue.sync()  # the catalogue still refreshes
            fake_esimgo.networks = []
            assert not await networks.refresh()  # nothing listed: keep what we have
    assert known
    assert networks.directory.for_country("US") == known


def test_networks_listed_by_country_name_or_iso_are_merged_and_ordered_by_speed() -> None:
    directory = NetworkDirectory.from_raw(
        [
            {"name": "United Kingdom", "networks": [{"name": "EE", "speed": ["4G"]}]},
            {
                "name": "de",
                "networks": [
                    {"name": "TELEKOM", "brandName": "Telekom", "speed": ["3G", "LTE"]},
                    {"name": "O2-DE", "brandName": "O2", "speed": ["5G"]},
                    {"brandName": "O2", "speed": ["4G"]},
                    {"name": "", "speed": ["5G"]},
                    "junk",
                ],
            },
            {"name": "Atlantis", "networks": [{"name": "X", "speed": ["4G"]}]},
            {"name": "FR", "networks": "none"},
        ]
    )
    assert directory.for_country("GB") == (Network("EE", ("4G",)),)
    assert directory.for_country("DE") == (
        Network("O2", ("5G", "4G")),
        Network("Telekom", ("LTE", "3G")),
    )
    assert len(directory) == 2


def _bundle(data_mb: int, price: str, *, unlimited: bool = False) -> Bundle:
    bundle = Bundle.from_api(
        {
            "name": "esim_test",
            "dataAmount": data_mb,
            "duration": 30,
            "price": price,
            "unlimited": unlimited,
            "countries": [{"iso": "TH", "name": "Thailand"}],
        }
    )
    assert bundle is not None
    return bundle


def test_price_per_gb_in_stars_and_in_fiat_in_both_languages() -> None:
    translator = Translator()
    three_gb = _bundle(3000, "3.20")  # 3.20 × 1.3 / 0.013 = 320 ⭐
    unit = price_per_gb(STARS, three_gb)
    assert unit is not None
    assert format_price_per_gb(unit, "en", translator) == "≈ 107 ⭐ per GB"
    assert format_price_per_gb(unit, "ru", translator) == "≈ 107 ⭐ за ГБ"
    small = price_per_gb(STARS, _bundle(20000, "1.00"))  # 100 ⭐ for 20 GB
    assert small is not None and small.amount == Decimal("5.0")
    dollars = PricingService(Decimal(30), Decimal("0.013"), "USD")
    fiat = price_per_gb(dollars, three_gb)  # $4.49 for 3 GB
    assert fiat is not None
    assert format_price_per_gb(fiat, "en", translator) == "≈ $1.50 per GB"
    assert format_price_per_gb(fiat, "ru", translator) == "≈ 1,50\xa0$ за ГБ"
    assert price_per_gb(STARS, _bundle(-1, "5", unlimited=True)) is None
