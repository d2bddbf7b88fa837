"""Mobile networks per country and their speeds (eSIM Go `GET /networks`), for the plan cards.

Fetched with every catalogue refresh and kept as a snapshot, so browsing never calls eSIM Go
and a restart while eSIM Go is down still shows them. A failed or empty fetch keeps the last.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.repositories.networks import NetworkSnapshotRepository
from services.countries import territory_names
from services.country_search import normalize

log = logging.getLogger(__name__)

# Faster first; "LTE" is what some operators call 4G.
_SPEED_RANK = {"5G": 0, "LTE": 1, "4G": 1, "3G": 2, "2G": 3}
_NOT_A_SPEED = 9
_LAST = (_NOT_A_SPEED + 1, "")
MAX_NETWORKS_SHOWN = 4


class NetworkSource(Protocol):
    """Where networks come from: the eSIM Go client, or anything shaped like it."""

    async def fetch_networks_raw(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    speeds: tuple[str, ...]  # fastest first: ("5G", "4G")


def _speed_key(speed: str) -> tuple[int, str]:
    return (_SPEED_RANK.get(speed.upper(), _NOT_A_SPEED), speed)


@cache
def _english_isos() -> Mapping[str, str]:
    return {normalize(name): iso for iso, name in territory_names("en").items()}


def _iso(raw: Mapping[str, Any]) -> str | None:
    """The country of one `countryNetworks` item: its ISO code, or its English name."""
    for key in ("iso", "name", "country"):
        value = raw.get(key)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if len(text) == 2 and text.isascii() and text.isalpha():
                return text.upper()
            if iso := _english_isos().get(normalize(text)):
                return iso
    return None


def _networks(raw: Any) -> tuple[Network, ...]:
    speeds_of: dict[str, set[str]] = {}
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping):
            continue
        name = str(item.get("brandName") or item.get("name") or "").strip()
        if not name:
            continue
        speeds = item.get("speed") or item.get("speeds") or []
        found = speeds_of.setdefault(name, set())
        found.update(str(s).strip() for s in speeds if isinstance(s, str) and s.strip())
    networks = [Network(n, tuple(sorted(s, key=_speed_key))) for n, s in speeds_of.items()]
    # The fastest networks first, then A–Z.
    networks.sort(
        key=lambda n: (_speed_key(n.speeds[0]) if n.speeds else _LAST, n.name.casefold())
    )
    return tuple(networks)


class NetworkDirectory:
    """Immutable networks per ISO code, from one fetch."""

    def __init__(
        self, by_country: Mapping[str, tuple[Network, ...]], fetched_at: datetime | None = None
    ) -> None:
        self._by_country = dict(by_country)
        self.fetched_at = fetched_at

    @classmethod
    def from_raw(
        cls, items: Iterable[Any], fetched_at: datetime | None = None
    ) -> NetworkDirectory:
        by_country: dict[str, tuple[Network, ...]] = {}
        for item in items:
            iso = _iso(item) if isinstance(item, Mapping) else None
            if iso and (networks := _networks(item.get("networks"))):
                by_country[iso] = networks
        return cls(by_country, fetched_at)

    def __len__(self) -> int:
        return len(self._by_country)

    def for_country(self, iso: str) -> tuple[Network, ...]:
        return self._by_country.get(iso.strip().upper(), ())


def describe_networks(networks: Sequence[Network], limit: int = MAX_NETWORKS_SHOWN) -> str:
    """ "AIS 5G/4G · dtac 4G · +2" for a plan card (names and speeds are not translated)."""
    shown = [f"{n.name} {'/'.join(n.speeds)}".strip() for n in networks[:limit]]
    if len(networks) > limit:
        shown.append(f"+{len(networks) - limit}")
    return " · ".join(shown)


class NetworkService:
    """Owns the current directory: refreshed with the catalogue, kept as a snapshot."""

    def __init__(
        self, source: NetworkSource, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        self._source = source
        self._session_factory = session_factory
        self._directory = NetworkDirectory({})

    @property
    def directory(self) -> NetworkDirectory:
        return self._directory

    async def refresh(self) -> bool:
        """Fetch and keep the networks; never raises: on failure the last ones stay."""
        try:
            raw = await self._source.fetch_networks_raw()
            fetched_at = utcnow()
            directory = NetworkDirectory.from_raw(raw, fetched_at)
            if not len(directory):
                log.warning("eSIM Go listed no networks; keeping the last ones")
                return False
            await self._save(raw, len(directory), fetched_at)
        except Exception:
            log.warning("fetching the networks failed; keeping the last ones", exc_info=True)
            return False
        self._directory = directory
        log.info("networks refreshed: %d countries", len(directory))
        return True

    async def _save(self, raw: list[dict[str, Any]], count: int, fetched_at: datetime) -> None:
        payload = json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)
        async with self._session_factory() as session:
            repo = NetworkSnapshotRepository(session)
            kept = await repo.add(payload, count, fetched_at)
            await repo.prune(kept)
            await session.commit()

    async def load_snapshot(self) -> bool:
        """The last saved networks, unless newer ones are in memory already."""
        async with self._session_factory() as session:
            snapshot = await NetworkSnapshotRepository(session).latest()
        if snapshot is None:
            return False
        try:
            items = json.loads(snapshot.payload)
        except ValueError:
            log.warning("network snapshot %s is unreadable", snapshot.id)
            return False
        directory = NetworkDirectory.from_raw(
            items if isinstance(items, list) else [], snapshot.fetched_at
        )
        current = self._directory.fetched_at
        if current is None or current <= snapshot.fetched_at:
            self._directory = directory
        return bool(len(directory))
