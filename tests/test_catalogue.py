"""The in-memory catalogue: what a traveller sees per country, syncs, snapshots and refreshes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import CatalogueSnapshot
from services.catalogue import (
    Catalogue,
    CatalogueDiff,
    CatalogueService,
    EmptyCatalogueError,
)
from services.esimgo.client import EsimGoClient, RetryPolicy
from tests.fakes.catalogue_data import make_catalogue
from tests.fakes.esimgo import FakeEsimGo

SessionFactory = async_sessionmaker[AsyncSession]
LOGGER = "services.catalogue"


def country(iso: str, name: str, region: str) -> dict[str, str]:
    return {"iso": iso, "name": name, "region": region}


TH = country("TH", "Thailand", "Asia")
VN = country("VN", "Vietnam", "Asia")
AD = country("AD", "Andorra", "Europe")
FR = country("FR", "France", "Europe")


def item(
    name: str,
    countries: list[dict[str, str]],
    *,
    data_mb: int = 1000,
    days: int = 7,
    price: str = "1.00",
    roaming: list[dict[str, str]] | None = None,
    unlimited: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "description": name,
        "countries": countries,
        "roamingEnabled": roaming or [],
        "dataAmount": -1 if unlimited else data_mb,
        "duration": days,
        "unlimited": unlimited,
        "price": price,
        "speed": ["4G"],
        "autostart": True,
        "groups": ["Standard Fixed"],
    }


def asia(name: str, **kwargs: Any) -> dict[str, Any]:
    return item(name, [country("RAS", "Asia", "Asia")], roaming=[TH, VN], **kwargs)


def world(name: str, **kwargs: Any) -> dict[str, Any]:
    return item(name, [country("RGB", "Global", "Global")], roaming=[TH, VN, AD, FR], **kwargs)


SMALL = [
    world("global_1GB_7D", price="9.00"),
    item("th_unlimited_7D", [TH], unlimited=True, price="11.00"),
    item("th_5GB_30D", [TH], data_mb=5000, days=30, price="5.00"),
    asia("asia_1GB_7D", price="3.00"),
    item("th_1GB_15D", [TH], days=15, price="2.00"),
    item("th_1GB_7D_dear", [TH], price="1.50"),
    item("th_1GB_7D", [TH], price="1.20"),
    item("fr_1GB_7D", [FR]),
    item("th_unlimited_3D", [TH], unlimited=True, days=3, price="6.00"),
]


class ListSource:
    """A stand-in for the eSIM Go client: serves whatever `items` holds, or raises `error`."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.error: Exception | None = None
        self.calls = 0
        self.called = asyncio.Event()

    async def fetch_catalogue_raw(self) -> list[dict[str, Any]]:
        self.calls += 1
        self.called.set()
        if self.error is not None:
            raise self.error
        return [dict(i) for i in self.items]


@pytest.fixture(scope="module")
def full() -> Catalogue:
    return Catalogue.from_raw(make_catalogue())


@pytest.fixture
async def esimgo() -> AsyncIterator[FakeEsimGo]:
    fake = FakeEsimGo(catalogue=make_catalogue(300))
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def client(esimgo: FakeEsimGo) -> AsyncIterator[EsimGoClient]:
    # One attempt per call: a failing fake must fail the sync, not be retried for seconds.
    async with EsimGoClient(esimgo.base_url, esimgo.api_key, retry=RetryPolicy(attempts=1)) as c:
        yield c


def warnings_from_catalogue(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


# -- the index ---------------------------------------------------------------------------------


def test_country_lists_its_own_bundles_by_data_then_days_then_regional_ones() -> None:
    catalogue = Catalogue.from_raw(SMALL)

    names = [b.name for b in catalogue.bundles_for_country("TH")]

    assert names == [
        "th_1GB_7D",
        "th_1GB_7D_dear",
        "th_1GB_15D",
        "th_5GB_30D",
        "th_unlimited_3D",
        "th_unlimited_7D",
        "asia_1GB_7D",
        "global_1GB_7D",
    ]
    assert [b.name for b in catalogue.own_bundles("th")] == names[:6]
    assert [b.name for b in catalogue.shared_bundles("TH")] == names[6:]


def test_regional_bundles_are_offered_in_every_country_they_cover() -> None:
    catalogue = Catalogue.from_raw(SMALL)

    assert [b.name for b in catalogue.bundles_for_country("VN")] == [
        "asia_1GB_7D",
        "global_1GB_7D",
    ]
    assert [b.name for b in catalogue.bundles_for_country("AD")] == ["global_1GB_7D"]
    assert [b.name for b in catalogue.bundles_for_country("FR")] == ["fr_1GB_7D", "global_1GB_7D"]
    assert catalogue.bundles_for_country("JP") == []


def test_countries_are_real_iso_codes_grouped_by_esimgo_region() -> None:
    catalogue = Catalogue.from_raw(SMALL)

    assert catalogue.countries() == ["AD", "FR", "TH", "VN"]
    assert catalogue.regions() == ["Europe", "Asia"]
    assert catalogue.countries_in_region("Asia") == ["TH", "VN"]
    assert catalogue.countries_in_region("Europe") == ["AD", "FR"]
    assert catalogue.countries_in_region("Global") == []


def test_full_catalogue_index(full: Catalogue) -> None:
    assert len(full) == 1500
    assert full.by_name("esim_1GB_7D_GB_V2") is not None
    assert full.by_name("esim_1gb_7d_gb_v2") is None  # names are case-sensitive
    assert len(full.countries()) > 200
    assert all(len(iso) == 2 for iso in full.countries())
    for bundle in full.bundles_for_country("TH"):
        assert "TH" in {c.iso for c in bundle.coverage}
    own = full.own_bundles("TH")
    assert [b.unlimited for b in own] == sorted(b.unlimited for b in own)
    europe_plus = full.by_name("esim_1GB_7D_REUP_V2")
    assert europe_plus is not None
    assert europe_plus in full.bundles_for_country("AD")
    assert {"Europe", "Asia", "Middle East", "Africa", "Oceania"} <= set(full.regions())
    assert "GB" in full.countries_in_region("Europe")


def test_popular_countries_are_traveller_favourites_on_sale(full: Catalogue) -> None:
    popular = full.popular_countries()

    assert len(popular) == 12
    assert popular[:3] == ["TH", "TR", "AE"]
    assert all(full.has_country(iso) for iso in popular)
    assert Catalogue.from_raw(SMALL).popular_countries() == ["TH", "FR", "VN"]


def test_country_names_are_localized_with_esimgo_name_as_fallback() -> None:
    catalogue = Catalogue.from_raw([*SMALL, item("xx", [country("QZ", "Atlantis", "Europe")])])

    assert catalogue.country_name("TH", "ru") == "Таиланд"
    assert catalogue.country_name("TH", "en") == "Thailand"
    assert catalogue.country_name("QZ", "ru") == "Atlantis"
    assert catalogue.sorted_countries("ru") == ["QZ", "AD", "VN", "TH", "FR"]
    assert catalogue.sorted_countries("en") == ["AD", "QZ", "FR", "TH", "VN"]


@pytest.mark.parametrize(
    ("country_text", "data_mb", "days", "expected"),
    [
        ("TH", 1000, 7, "th_1GB_7D"),  # the cheaper of two identical plans
        ("th", 1000, 15, "th_1GB_15D"),
        ("Thailand", 5000, 30, "th_5GB_30D"),
        ("Таиланд", 5000, 30, "th_5GB_30D"),
        ("TH", None, 7, "th_unlimited_7D"),
        ("TH", -1, 3, "th_unlimited_3D"),
        ("VN", 1000, 7, "asia_1GB_7D"),  # no own bundle: the smallest region covering it
        ("Andorra", 1000, 7, "global_1GB_7D"),
        ("TH", 1000, 30, None),
        ("TH", None, 30, None),
        ("Narnia", 1000, 7, None),
    ],
)
def test_find_bundle(
    country_text: str, data_mb: int | None, days: int, expected: str | None
) -> None:
    bundle = Catalogue.from_raw(SMALL).find_bundle(country_text, data_mb, days)

    assert (bundle.name if bundle else None) == expected


def test_find_bundle_prefers_the_countrys_own_bundle(full: Catalogue) -> None:
    bundle = full.find_bundle("United Kingdom", 1000, 7)

    assert bundle is not None and bundle.name == "esim_1GB_7D_GB_V2"
    unlimited = full.find_bundle("TH", None, 7)
    assert unlimited is not None and unlimited.unlimited and unlimited.countries[0].iso == "TH"


def test_items_without_name_or_country_are_skipped() -> None:
    catalogue = Catalogue.from_raw(
        [
            {"name": "", "countries": [TH]},
            item("nowhere", []),
            item("pseudo_only", [country("REUP", "Europe+", "Europe")]),
            "not a dict",  # type: ignore[list-item]
            item("ok", [TH]),
            item("ok", [VN]),  # a repeated name keeps the first
        ]
    )

    assert [b.name for b in catalogue.bundles] == ["ok"]
    assert catalogue.countries() == ["TH"]


def test_empty_catalogue() -> None:
    empty = Catalogue.empty()

    assert empty.is_empty and len(empty) == 0 and empty.fetched_at is None
    assert empty.countries() == [] and empty.regions() == [] and empty.popular_countries() == []
    assert empty.find_bundle("TH", 1000, 7) is None
    assert empty.search.search("Thailand") == []


# -- diffs -------------------------------------------------------------------------------------


def test_diff_lists_added_removed_and_repriced_bundles() -> None:
    old = Catalogue.from_raw(SMALL)
    changed = [i for i in SMALL if i["name"] != "fr_1GB_7D"] + [item("vn_1GB_7D", [VN])]
    changed = [{**i, "price": "1.35"} if i["name"] == "th_1GB_7D" else i for i in changed]

    diff = CatalogueDiff.between(old, Catalogue.from_raw(changed))

    assert diff.added == ["vn_1GB_7D"]
    assert diff.removed == ["fr_1GB_7D"]
    assert diff.price_changes == [("th_1GB_7D", Decimal("1.20"), Decimal("1.35"))]
    assert diff.changed
    assert diff.summary() == (
        "Catalogue: 9 bundles; 1 added, 1 removed, 1 price changes.\n"
        "Added: vn_1GB_7D\n"
        "Removed: fr_1GB_7D\n"
        "Price: th_1GB_7D 1.20 → 1.35"
    )


def test_diff_summary_shortens_long_lists() -> None:
    diff = CatalogueDiff(added=[f"b{i:02}" for i in range(25)], bundle_count=25)

    summary = diff.summary()

    assert (
        summary.splitlines()[0] == "Catalogue: 25 bundles; 25 added, 0 removed, 0 price changes."
    )
    assert "b09 … (+15 more)" in summary and "b10" not in summary
    assert not CatalogueDiff(bundle_count=3).changed


# -- the service -------------------------------------------------------------------------------


async def test_sync_through_the_esimgo_client(
    esimgo: FakeEsimGo, client: EsimGoClient, sqlite_session_factory: SessionFactory
) -> None:
    service = CatalogueService(client, sqlite_session_factory, refresh_minutes=60)
    assert service.catalogue.is_empty

    first = await service.sync()

    assert len(first.added) == 300 and first.removed == [] and first.bundle_count == 300
    assert service.catalogue.by_name("esim_1GB_7D_TH_V2") is not None
    assert service.catalogue.fetched_at is not None
    assert esimgo.calls("GET /catalogue")

    gone = esimgo.catalogue.pop()
    esimgo.catalogue[0] = {**esimgo.catalogue[0], "price": 99.5}
    esimgo.catalogue.append({**esimgo.catalogue[1], "name": "esim_new_bundle"})
    second = await service.sync()

    assert second.added == ["esim_new_bundle"]
    assert second.removed == [gone["name"]]
    assert [(n, new) for n, _old, new in second.price_changes] == [
        (esimgo.catalogue[0]["name"], Decimal("99.5"))
    ]
    assert "1 added, 1 removed, 1 price changes" in second.summary()


async def test_snapshot_lets_a_fresh_service_sell_while_esimgo_is_down(
    session_factory: SessionFactory,
) -> None:
    source = ListSource(make_catalogue(200))
    await CatalogueService(source, session_factory, refresh_minutes=60).sync()

    down = ListSource([])
    down.error = ConnectionResetError("eSIM Go is down")
    restarted = CatalogueService(down, session_factory, refresh_minutes=60)

    assert await restarted.load_snapshot() is True
    catalogue = restarted.catalogue
    assert len(catalogue) == 200
    bundle = catalogue.by_name("esim_1GB_7D_GB_V2")
    assert bundle is not None
    original = next(i for i in source.items if i["name"] == "esim_1GB_7D_GB_V2")
    assert bundle.price == Decimal(str(original["price"]))
    assert isinstance(bundle.price, Decimal)
    assert catalogue.fetched_at is not None and catalogue.fetched_at.tzinfo is not None

    assert await restarted.refresh() is False
    assert restarted.catalogue is catalogue


async def test_only_the_latest_snapshots_are_kept(session_factory: SessionFactory) -> None:
    source = ListSource(SMALL)
    service = CatalogueService(source, session_factory, refresh_minutes=60, keep_snapshots=2)
    for price in ("1.00", "2.00", "3.00", "4.00"):
        source.items = [*SMALL, item("fr_extra", [FR], price=price)]
        await service.sync()

    async with session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(CatalogueSnapshot))
    assert count == 2

    fresh = CatalogueService(ListSource([]), session_factory, refresh_minutes=60)
    assert await fresh.load_snapshot()
    extra = fresh.catalogue.by_name("fr_extra")
    assert extra is not None and extra.price == Decimal("4.00")


async def test_load_snapshot_without_one(sqlite_session_factory: SessionFactory) -> None:
    service = CatalogueService(ListSource(SMALL), sqlite_session_factory, refresh_minutes=60)

    assert await service.load_snapshot() is False
    assert service.catalogue.is_empty


async def test_an_unreadable_snapshot_falls_back_to_an_older_one(
    sqlite_session_factory: SessionFactory,
) -> None:
    service = CatalogueService(ListSource(SMALL), sqlite_session_factory, refresh_minutes=60)
    await service.sync()
    async with sqlite_session_factory() as session:
        session.add(CatalogueSnapshot(payload="{not json", bundle_count=1))
        await session.commit()

    fresh = CatalogueService(ListSource([]), sqlite_session_factory, refresh_minutes=60)

    assert await fresh.load_snapshot() is True
    assert len(fresh.catalogue) == len(SMALL)


async def test_an_empty_answer_never_replaces_the_catalogue(
    sqlite_session_factory: SessionFactory,
) -> None:
    source = ListSource(SMALL)
    service = CatalogueService(source, sqlite_session_factory, refresh_minutes=60)
    await service.sync()
    before = service.catalogue

    source.items = []
    with pytest.raises(EmptyCatalogueError):
        await service.sync()

    assert service.catalogue is before


async def test_failed_refresh_keeps_the_catalogue_and_logs_once(
    esimgo: FakeEsimGo,
    client: EsimGoClient,
    sqlite_session_factory: SessionFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = CatalogueService(client, sqlite_session_factory, refresh_minutes=60)
    assert await service.refresh() is True
    before = service.catalogue
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    esimgo.fail_next("GET /catalogue", status=503, times=3)
    results = [await service.refresh() for _ in range(3)]

    assert results == [False, False, False]
    assert service.catalogue is before
    assert len(warnings_from_catalogue(caplog)) == 1
    assert "still selling from the catalogue of" in warnings_from_catalogue(caplog)[0].message

    assert await service.refresh() is True
    assert service.catalogue is not before
    assert any("works again" in r.message for r in caplog.records if r.name == LOGGER)

    esimgo.fail_next("GET /catalogue", status=500)
    assert await service.refresh() is False
    assert len(warnings_from_catalogue(caplog)) == 2


async def until_called(source: ListSource, times: int) -> None:
    while source.calls < times:
        source.called.clear()
        await source.called.wait()


async def test_refresh_loop_syncs_again_and_again(sqlite_session_factory: SessionFactory) -> None:
    source = ListSource(SMALL)
    source.error = RuntimeError("first attempt fails")
    service = CatalogueService(
        source, sqlite_session_factory, refresh_minutes=0.001, retry_minutes=0.0005
    )
    task = asyncio.create_task(service.run_refresh_loop())
    try:
        async with asyncio.timeout(10):
            await until_called(source, 2)
            source.error = None
            await until_called(source, 4)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert not service.catalogue.is_empty


async def test_refresh_loop_waits_out_a_fresh_snapshot(
    sqlite_session_factory: SessionFactory,
) -> None:
    await CatalogueService(ListSource(SMALL), sqlite_session_factory, refresh_minutes=60).sync()
    source = ListSource(SMALL)
    service = CatalogueService(source, sqlite_session_factory, refresh_minutes=60)
    await service.load_snapshot()

    task = asyncio.create_task(service.run_refresh_loop())
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert source.calls == 0


def test_refresh_interval_must_be_positive(sqlite_session_factory: SessionFactory) -> None:
    with pytest.raises(ValueError, match="refresh_minutes"):
        CatalogueService(ListSource(SMALL), sqlite_session_factory, refresh_minutes=0)


async def test_a_replica_that_does_not_sync_picks_up_a_newer_snapshot_only(
    sqlite_session_factory: SessionFactory,
) -> None:
    leader = CatalogueService(ListSource(SMALL), sqlite_session_factory, refresh_minutes=60)
    follower = CatalogueService(ListSource([]), sqlite_session_factory, refresh_minutes=60)
    await leader.sync()
    assert await follower.reload_if_newer() is True
    first = follower.catalogue
    assert len(first) == len(leader.catalogue)
    assert await follower.reload_if_newer() is False, "nothing newer: the same index is kept"
    assert follower.catalogue is first

    cheaper = [{**item, "price": "0.50"} for item in SMALL]
    leader = CatalogueService(ListSource(cheaper), sqlite_session_factory, refresh_minutes=60)
    await leader.sync()
    assert await follower.reload_if_newer() is True
    assert {b.price for b in follower.catalogue.bundles} == {Decimal("0.5")}
