"""Typed results of the eSIM Go API; parsing is forgiving because the published schema is loose."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any


def to_decimal(value: Any, default: str = "0") -> Decimal:
    """eSIM Go types prices as integers but sends decimals; never go through float."""
    if value is None or isinstance(value, bool):
        return Decimal(default)
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(default)


def to_int(value: Any, default: int = 0) -> int:
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(Decimal(str(value)))
        except (InvalidOperation, ValueError):
            return default


@dataclass(frozen=True, slots=True)
class Country:
    iso: str
    name: str
    region: str = ""

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Country | None:
        # /catalogue/bundle/{name} may nest the country as {"country": {...}, "networks": [...]}.
        nested = raw.get("country")
        if isinstance(nested, Mapping):
            raw = nested
        iso = str(raw.get("iso") or "").strip().upper()
        if not iso:
            return None
        return cls(iso=iso, name=str(raw.get("name") or iso), region=str(raw.get("region") or ""))


def _countries(raw: Any) -> tuple[Country, ...]:
    if not isinstance(raw, list):
        return ()
    parsed = (Country.from_api(item) for item in raw if isinstance(item, Mapping))
    return tuple(c for c in parsed if c is not None)


@dataclass(frozen=True, slots=True)
class Bundle:
    """One catalogue bundle. `data_mb` is decimal MB (1 GB = 1000 MB); -1/unlimited means no cap."""

    name: str
    description: str
    countries: tuple[Country, ...]
    roaming: tuple[Country, ...]
    data_mb: int
    duration_days: int
    unlimited: bool
    price: Decimal
    speed: tuple[str, ...] = ()
    autostart: bool = False
    groups: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Bundle | None:
        """Parse one catalogue item; None when it has no usable name."""
        name = str(raw.get("name") or "").strip()
        if not name:
            return None
        data_mb = to_int(raw.get("dataAmount"), 0)
        unlimited = bool(raw.get("unlimited")) or data_mb < 0
        speed_raw = raw.get("speed")
        groups_raw = raw.get("groups")
        return cls(
            name=name,
            description=str(raw.get("description") or ""),
            countries=_countries(raw.get("countries")),
            roaming=_countries(raw.get("roamingEnabled")),
            data_mb=-1 if unlimited and data_mb <= 0 else data_mb,
            duration_days=to_int(raw.get("duration"), 0),
            unlimited=unlimited,
            price=to_decimal(raw.get("price")),
            speed=tuple(str(s) for s in speed_raw) if isinstance(speed_raw, list) else (),
            autostart=bool(raw.get("autostart")),
            groups=tuple(str(g) for g in groups_raw) if isinstance(groups_raw, list) else (),
            raw=dict(raw),
        )

    @property
    def coverage(self) -> tuple[Country, ...]:
        """Every country the bundle works in: base countries first, then roaming ones."""
        seen: dict[str, Country] = {}
        for country in (*self.countries, *self.roaming):
            seen.setdefault(country.iso, country)
        return tuple(seen.values())

    @property
    def is_multi_country(self) -> bool:
        return len(self.coverage) > 1


@dataclass(frozen=True, slots=True)
class Organisation:
    name: str
    balance: Decimal
    currency: str

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Organisation:
        return cls(
            name=str(raw.get("name") or ""),
            balance=to_decimal(raw.get("balance")),
            currency=str(raw.get("currency") or "USD"),
        )
