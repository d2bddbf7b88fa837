"""The eSIM Go catalogue in memory: an immutable index rebuilt on every sync, kept in the database.

Browsing never calls eSIM Go: handlers read `CatalogueService.catalogue`, which a sync replaces
in one assignment. The raw catalogue is also saved as a snapshot, so a restart while eSIM Go is
down still sells from the last one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.repositories.catalogue import CatalogueSnapshotRepository
from services.budget import background_work
from services.countries import country_name as localized_country_name
from services.countries import region_name, sort_key, sorted_by_name
from services.country_search import CountrySearch, normalize
from services.esimgo.models import Bundle, Country
from services.i18n import SUPPORTED_LANGUAGES

logger = logging.getLogger(__name__)

# Traveller favourites for the first Buy screen, most asked-for first.
POPULAR_COUNTRIES = (
    "TH", "TR", "AE", "US", "GB", "JP", "IT", "ES", "FR", "DE", "GE", "EG",
    "ID", "VN", "CN", "KR", "GR", "MX", "CY", "ME", "MA", "LK", "MV", "CZ",
)  # fmt: skip
# Display order of eSIM Go's regions; unknown ones follow alphabetically.
REGION_ORDER = (
    "Europe", "Asia", "Middle East", "North America", "Central America", "Caribbean", "LATAM",
    "Latin America", "South America", "Africa", "Oceania", "Antarctica",
)  # fmt: skip
DEFAULT_KEEP_SNAPSHOTS = 3
# How often a replica that does not sync looks for a newer snapshot: a minute of old prices after
# a sync that runs every few hours, for one small query a minute.
FOLLOW_SECONDS = 60.0
_SUMMARY_NAMES = 10


class CatalogueSource(Protocol):
    """Where catalogues come from: the eSIM Go client, or anything shaped like it."""

    async def fetch_catalogue_raw(self) -> list[dict[str, Any]]: ...


class SnapshotCompanion(Protocol):
    """Data fetched with every catalogue sync and kept beside it (the networks per country)."""

    async def load_snapshot(self) -> bool: ...

    async def refresh(self) -> bool:
        """Fetch and keep; never raises."""
        ...


class EmptyCatalogueError(Exception):
    """eSIM Go answered with no usable bundles; never replace a catalogue with nothing."""


def _is_country_code(iso: str) -> bool:
    return len(iso) == 2 and iso.isascii() and iso.isalpha()


def _own_order(bundle: Bundle) -> tuple[bool, int, int, Decimal, str]:
    return (bundle.unlimited, bundle.data_mb, bundle.duration_days, bundle.price, bundle.name)


@dataclass(frozen=True, slots=True)
class _Index:
    """One catalogue's bundles by name, the countries they cover, and per country its own
    bundles and the shared (regional, global) ones that also cover it, in display order."""

    by_name: dict[str, Bundle]
    countries: dict[str, Country]
    own: dict[str, tuple[Bundle, ...]]
    shared: dict[str, tuple[Bundle, ...]]


def _index(bundles: Iterable[Bundle]) -> _Index:
    """The first bundle of each name that covers a real country; the rest are skipped."""
    by_name: dict[str, Bundle] = {}
    own: dict[str, list[Bundle]] = {}
    shared: dict[str, list[Bundle]] = {}
    countries: dict[str, Country] = {}
    reach: dict[str, int] = {}
    for bundle in bundles:
        if bundle.name in by_name:
            continue
        # Regional bundles name a pseudo-country ("Europe+", iso "REUP") as their base.
        coverage = [c for c in bundle.coverage if _is_country_code(c.iso)]
        if not coverage:
            continue
        by_name[bundle.name] = bundle
        reach[bundle.name] = len(coverage)
        for country in coverage:
            known = countries.get(country.iso)
            if known is None or (country.region and not known.region):
                countries[country.iso] = country
        target = shared if len(coverage) > 1 else own
        for country in coverage:
            target.setdefault(country.iso, []).append(bundle)

    def shared_order(bundle: Bundle) -> tuple[int, bool, int, int, Decimal, str]:
        # Smaller regions before global bundles, then as for a country's own bundles.
        return (reach[bundle.name], *_own_order(bundle))

    return _Index(
        by_name,
        countries,
        own={iso: tuple(sorted(b, key=_own_order)) for iso, b in own.items()},
        shared={iso: tuple(sorted(b, key=shared_order)) for iso, b in shared.items()},
    )


def _index_regions(countries: Mapping[str, Country]) -> dict[str, tuple[str, ...]]:
    """Each region's countries A–Z by English name, the regions in display order."""
    regions: dict[str, list[str]] = {}
    for iso in sorted(countries):
        if region := countries[iso].region:
            regions.setdefault(region, []).append(iso)
    english = {iso: localized_country_name(iso, "en", c.name) for iso, c in countries.items()}
    ordered = sorted(
        regions,
        key=lambda r: (REGION_ORDER.index(r) if r in REGION_ORDER else len(REGION_ORDER), r),
    )
    return {
        region: tuple(sorted(regions[region], key=lambda iso: sort_key(english[iso])))
        for region in ordered
    }


class Catalogue:
    """An immutable index of one catalogue fetch: by name, by country, by region."""

    def __init__(self, bundles: Iterable[Bundle], *, fetched_at: datetime | None = None) -> None:
        self.fetched_at = fetched_at
        index = _index(bundles)
        self._by_name = index.by_name
        self._countries = index.countries
        self._own = index.own
        self._shared = index.shared
        self._country_codes = sorted(self._countries)
        self._regions = _index_regions(self._countries)
        self._region_names = list(self._regions)
        self.search = CountrySearch(
            self._country_codes, {iso: c.name for iso, c in self._countries.items()}
        )
        # What a traveller may type for a region ("Europe", "азия"), in every language we speak.
        self._regions_by_typed_name = {
            normalize(name): region
            for region in reversed(self._region_names)
            for name in (region, *(region_name(region, lang) for lang in SUPPORTED_LANGUAGES))
            if normalize(name)
        }

    @classmethod
    def from_raw(
        cls, items: Iterable[Mapping[str, Any]], *, fetched_at: datetime | None = None
    ) -> Catalogue:
        """Build from eSIM Go's raw catalogue items; unusable items are skipped, and so are
        plans without a cost (missing or ≤ 0): they would sell at the minimum price."""
        parsed = (Bundle.from_api(item) for item in items if isinstance(item, Mapping))
        return cls((b for b in parsed if b is not None and b.price > 0), fetched_at=fetched_at)

    @classmethod
    def empty(cls) -> Catalogue:
        return cls(())

    @property
    def is_empty(self) -> bool:
        return not self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def bundles(self) -> list[Bundle]:
        return list(self._by_name.values())

    def by_name(self, name: str) -> Bundle | None:
        return self._by_name.get(name)

    def own_bundles(self, iso: str) -> list[Bundle]:
        """The country's single-country bundles: by data (unlimited last), days, price."""
        return list(self._own.get(iso.upper(), ()))

    def shared_bundles(self, iso: str) -> list[Bundle]:
        """Regional and global bundles that also cover the country, smallest region first."""
        return list(self._shared.get(iso.upper(), ()))

    def bundles_for_country(self, iso: str) -> list[Bundle]:
        """Everything that works in the country: its own bundles, then regional/global ones."""
        code = iso.upper()
        return [*self._own.get(code, ()), *self._shared.get(code, ())]

    def countries(self) -> list[str]:
        """ISO codes of every country some bundle covers, A–Z by code."""
        return list(self._country_codes)

    def has_country(self, iso: str) -> bool:
        return iso.upper() in self._countries

    def country(self, iso: str) -> Country | None:
        """eSIM Go's own record of the country (English name, region)."""
        return self._countries.get(iso.upper())

    def country_name(self, iso: str, lang: str | None) -> str:
        """Localized name, falling back to eSIM Go's English name."""
        known = self._countries.get(iso.upper())
        return localized_country_name(iso, lang, known.name if known else None)

    def sorted_countries(self, lang: str | None) -> list[str]:
        """Every country A–Z (or А–Я) by its name in `lang`, for the paged list."""
        defaults = {iso: c.name for iso, c in self._countries.items()}
        return sorted_by_name(self._country_codes, lang, defaults)

    def regions(self) -> list[str]:
        """eSIM Go's region names that have countries, in display order."""
        return list(self._region_names)

    def region_named(self, text: str) -> str | None:
        """The region a typed text names exactly ("Europe", "азия"), if any."""
        return self._regions_by_typed_name.get(normalize(text))

    def countries_in_region(self, region: str) -> list[str]:
        """ISO codes in the region, A–Z by English name (use `sorted_by_name` to localize)."""
        return list(self._regions.get(region, ()))

    def popular_countries(self, limit: int = 12) -> list[str]:
        """Traveller favourites that this catalogue can sell."""
        return [iso for iso in POPULAR_COUNTRIES if iso in self._countries][:limit]

    def resolve_country(self, country: str) -> str | None:
        """An ISO code from a code or an unambiguous name in any supported language."""
        code = country.strip().upper()
        if code in self._countries:
            return code
        return self.search.best(country)

    def find_bundle(self, country: str, data_mb: int | None, days: int) -> Bundle | None:
        """The bundle with exactly this data and duration for the country, its own preferred.

        `data_mb` None or negative asks for an unlimited bundle; the cheapest match wins.
        """
        iso = self.resolve_country(country)
        if iso is None:
            return None
        unlimited = data_mb is None or data_mb < 0
        for bundle in self.bundles_for_country(iso):
            if bundle.duration_days != days or bundle.unlimited != unlimited:
                continue
            if unlimited or bundle.data_mb == data_mb:
                return bundle
        return None


@dataclass(frozen=True, slots=True)
class CatalogueDiff:
    """What changed between two catalogues, for logs and `esimbot sync-catalogue`."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    price_changes: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    bundle_count: int = 0

    @classmethod
    def between(cls, old: Catalogue, new: Catalogue) -> CatalogueDiff:
        old_names = {b.name: b for b in old.bundles}
        new_names = {b.name: b for b in new.bundles}
        changes = [
            (name, old_names[name].price, bundle.price)
            for name, bundle in new_names.items()
            if name in old_names and old_names[name].price != bundle.price
        ]
        return cls(
            added=sorted(new_names.keys() - old_names.keys()),
            removed=sorted(old_names.keys() - new_names.keys()),
            price_changes=sorted(changes),
            bundle_count=len(new),
        )

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.price_changes)

    def summary(self) -> str:
        """A few readable lines: totals first, then (some of) the names."""
        lines = [
            f"Catalogue: {self.bundle_count} bundles; {len(self.added)} added, "
            f"{len(self.removed)} removed, {len(self.price_changes)} price changes."
        ]
        for label, names in (("Added", self.added), ("Removed", self.removed)):
            if names:
                more = (
                    f" … (+{len(names) - _SUMMARY_NAMES} more)"
                    if len(names) > _SUMMARY_NAMES
                    else ""
                )
                lines.append(f"{label}: {', '.join(names[:_SUMMARY_NAMES])}{more}")
        for name, old, new in self.price_changes[:_SUMMARY_NAMES]:
            lines.append(f"Price: {name} {old} → {new}")
        if len(self.price_changes) > _SUMMARY_NAMES:
            lines.append(f"… (+{len(self.price_changes) - _SUMMARY_NAMES} more price changes)")
        return "\n".join(lines)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a catalogue snapshot")


class CatalogueService:
    """Owns the current catalogue: loads the snapshot, syncs from eSIM Go, refreshes on a timer."""

    def __init__(
        self,
        source: CatalogueSource,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        refresh_minutes: float = 360,
        retry_minutes: float | None = None,
        keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
        companions: Sequence[SnapshotCompanion] = (),
    ) -> None:
        if refresh_minutes <= 0:
            raise ValueError("refresh_minutes must be positive")
        self._source = source
        self._session_factory = session_factory
        self._interval = timedelta(minutes=refresh_minutes)
        # After a failure try again sooner, but never more often than the normal interval.
        retry = timedelta(minutes=retry_minutes) if retry_minutes else timedelta(minutes=5)
        self._retry = min(retry, self._interval)
        self._keep = max(keep_snapshots, 1)
        self._catalogue = Catalogue.empty()
        self._lock = asyncio.Lock()
        self._failing = False
        self._companions = tuple(companions)

    @property
    def catalogue(self) -> Catalogue:
        """The current index; replaced whole by a sync, so a reader never sees a half-built one."""
        return self._catalogue

    async def load_snapshot(self) -> bool:
        """Load the newest readable snapshot unless a newer catalogue is already in memory."""
        for companion in self._companions:
            await companion.load_snapshot()
        async with self._session_factory() as session:
            repo = CatalogueSnapshotRepository(session)
            for snapshot_id in await repo.latest_ids(self._keep):
                snapshot = await repo.get(snapshot_id)
                if snapshot is None:
                    continue
                try:
                    items = json.loads(snapshot.payload, parse_float=Decimal)
                    catalogue = Catalogue.from_raw(
                        items if isinstance(items, list) else [], fetched_at=snapshot.fetched_at
                    )
                except ValueError:
                    logger.warning(
                        "Catalogue snapshot %s is unreadable; trying an older one", snapshot_id
                    )
                    continue
                if catalogue.is_empty:
                    continue
                current = self._catalogue.fetched_at
                if current is None or current <= snapshot.fetched_at:
                    self._catalogue = catalogue
                logger.info(
                    "Catalogue snapshot loaded: %d bundles fetched at %s",
                    len(catalogue),
                    snapshot.fetched_at.isoformat(),
                )
                return True
        return False

    async def reload_if_newer(self) -> bool:
        """Load the stored snapshot when another replica saved one newer than ours."""
        async with self._session_factory() as session:
            stored = await CatalogueSnapshotRepository(session).latest_fetched_at()
        current = self._catalogue.fetched_at
        if stored is None or (current is not None and stored <= current):
            return False
        return await self.load_snapshot()

    async def run_follow_loop(self, interval_seconds: float = FOLLOW_SECONDS) -> None:
        """On every replica: pick up the catalogue the syncing replica stored, until cancelled.

        The replica that syncs finds nothing newer than its own; the others reload, so every
        replica sells at the same prices within `interval_seconds` of a sync.
        """
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.reload_if_newer()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("Reading the stored catalogue failed; trying again", exc_info=True)

    async def sync(self) -> CatalogueDiff:
        """Fetch the whole catalogue, swap the index in and save a snapshot; raises on failure."""
        async with self._lock:
            raw = await self._source.fetch_catalogue_raw()
            items = [item for item in raw if isinstance(item, Mapping)]
            fetched_at = utcnow()
            catalogue = Catalogue.from_raw(items, fetched_at=fetched_at)
            if catalogue.is_empty:
                raise EmptyCatalogueError(f"eSIM Go returned no usable bundles ({len(raw)} items)")
            diff = CatalogueDiff.between(self._catalogue, catalogue)
            self._catalogue = catalogue
            await self._save(items, len(catalogue), fetched_at)
        for companion in self._companions:
            await companion.refresh()
        logger.info(
            "Catalogue synced: %d bundles, %d added, %d removed, %d price changes",
            len(catalogue),
            len(diff.added),
            len(diff.removed),
            len(diff.price_changes),
        )
        return diff

    async def _save(self, items: Sequence[Any], count: int, fetched_at: datetime) -> None:
        payload = json.dumps(
            list(items), ensure_ascii=False, separators=(",", ":"), default=_json_default
        )
        async with self._session_factory() as session:
            repo = CatalogueSnapshotRepository(session)
            await repo.add(payload, count, fetched_at)
            await repo.prune(self._keep)
            await session.commit()

    async def refresh(self) -> bool:
        """One scheduled sync that never raises: on failure the old catalogue stays.

        The failure is logged once; further failures are quiet until a sync succeeds again.
        """
        try:
            await self.sync()
        except asyncio.CancelledError:
            raise
        except Exception:
            if not self._failing:
                self._failing = True
                fetched_at = self._catalogue.fetched_at
                logger.warning(
                    "Catalogue refresh failed; still selling from the catalogue of %s",
                    fetched_at.isoformat() if fetched_at else "nowhere (no catalogue yet)",
                    exc_info=True,
                )
            else:
                logger.debug("Catalogue refresh failed again", exc_info=True)
            return False
        if self._failing:
            self._failing = False
            logger.info("Catalogue refresh works again")
        return True

    async def run_refresh_loop(self) -> None:
        """Refresh every `refresh_minutes` (sooner after a failure) until cancelled.

        Background work for the eSIM Go budget; a sync someone waits on (start, CLI) is not.
        """
        fetched_at = self._catalogue.fetched_at
        # A fresh snapshot needs no immediate sync: wait out the rest of its interval.
        delay = (fetched_at + self._interval - utcnow()) if fetched_at else timedelta(0)
        while True:
            if delay > timedelta(0):
                await asyncio.sleep(delay.total_seconds())
            with background_work():
                refreshed = await self.refresh()
            delay = self._interval if refreshed else self._retry
