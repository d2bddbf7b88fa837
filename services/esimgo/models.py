"""Typed results of the eSIM Go API; parsing is forgiving because the published schema is loose."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


def to_iccid(value: Any) -> str:
    """ICCIDs are strings; JSON numbers (which eSIM Go sometimes sends) are converted exactly."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Already lossy if it came through a float; the best we can do is drop the exponent.
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else str(value)
    return str(value).strip()


def parse_datetime(value: Any) -> datetime | None:
    """ISO-8601 strings and epoch numbers (ms, or s when small) to aware UTC; None otherwise."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return parse_datetime(Decimal(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
        if number <= 0:
            return None
        # Epoch milliseconds unless the value is too small to be a recent ms timestamp.
        seconds = number / 1000 if number >= Decimal(100_000_000_000) else number
        try:
            return datetime.fromtimestamp(float(seconds), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _first(raw: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = raw.get(key)
        if value is not None and value != "":
            return value
    return None


def _mappings(value: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, Mapping)]
    return []


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
    """One catalogue bundle; `data_mb` is decimal MB (1 GB = 1000 MB), -1 when unlimited."""

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


@dataclass(frozen=True, slots=True)
class OrderValidation:
    """Result of a `validate` order: what a transaction would cost, without charging."""

    total: Decimal
    currency: str
    valid: bool
    unit_price: Decimal
    message: str = ""

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> OrderValidation:
        items = list(_mappings(raw.get("order")))
        first = items[0] if items else {}
        total = to_decimal(raw.get("total"))
        unit = _first(first, "pricePerUnit", "subTotal")
        return cls(
            total=total,
            currency=str(raw.get("currency") or "USD"),
            valid=bool(raw.get("valid", True)),
            unit_price=to_decimal(unit) if unit is not None else total,
            message=str(raw.get("message") or raw.get("statusMessage") or ""),
        )


@dataclass(frozen=True, slots=True)
class EsimCredentials:
    """What a phone needs to download the profile."""

    iccid: str
    matching_id: str
    smdp_address: str

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> EsimCredentials | None:
        iccid = to_iccid(_first(raw, "iccid", "ICCID"))
        if not iccid:
            return None
        return cls(
            iccid=iccid,
            matching_id=str(_first(raw, "matchingId", "Matching ID", "matchingID") or ""),
            smdp_address=str(_first(raw, "smdpAddress", "RSP URL", "smdp") or ""),
        )


@dataclass(frozen=True, slots=True)
class OrderItem:
    bundle_name: str
    quantity: int
    iccids: tuple[str, ...]

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> OrderItem:
        iccids_raw = raw.get("iccids")
        iccids = [to_iccid(i) for i in iccids_raw] if isinstance(iccids_raw, list) else []
        if not iccids:
            iccids = [c.iccid for c in _credentials(raw.get("esims"))]
        return cls(
            bundle_name=str(_first(raw, "item", "name", "bundle") or ""),
            quantity=to_int(raw.get("quantity"), 0),
            iccids=tuple(i for i in iccids if i),
        )


def _credentials(value: Any) -> list[EsimCredentials]:
    parsed = (EsimCredentials.from_api(item) for item in _mappings(value))
    return [c for c in parsed if c is not None]


@dataclass(frozen=True, slots=True)
class OrderResult:
    """A transaction order as eSIM Go reports it; `status` lower-cased (e.g. "completed")."""

    reference: str
    status: str
    total: Decimal
    currency: str
    created_at: datetime | None
    items: tuple[OrderItem, ...]
    esims: tuple[EsimCredentials, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def iccids(self) -> tuple[str, ...]:
        """Every ICCID the order names, from its items and its eSIMs, in order."""
        seen: dict[str, None] = {}
        for item in self.items:
            seen.update(dict.fromkeys(item.iccids))
        seen.update(dict.fromkeys(e.iccid for e in self.esims))
        return tuple(seen)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> OrderResult:
        lines = list(_mappings(raw.get("order")))
        esims = [c for line in lines for c in _credentials(line.get("esims"))]
        esims += _credentials(raw.get("esims"))
        return cls(
            reference=str(_first(raw, "orderReference", "reference", "ref") or ""),
            status=str(raw.get("status") or "").strip().lower(),
            total=to_decimal(raw.get("total")),
            currency=str(raw.get("currency") or "USD"),
            created_at=parse_datetime(_first(raw, "createdDate", "createdAt", "created")),
            items=tuple(OrderItem.from_api(line) for line in lines),
            esims=tuple({e.iccid: e for e in esims}.values()),
            raw=dict(raw),
        )


@dataclass(frozen=True, slots=True)
class EsimDetails:
    iccid: str
    matching_id: str
    smdp_address: str
    profile_status: str | None
    first_installed_at: datetime | None
    # Our tag on the eSIM (the public id of the order that bought it), "" when untagged.
    customer_ref: str = ""

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> EsimDetails:
        status = raw.get("profileStatus")
        return cls(
            iccid=to_iccid(raw.get("iccid")),
            matching_id=str(raw.get("matchingId") or ""),
            smdp_address=str(raw.get("smdpAddress") or ""),
            profile_status=str(status) if status not in (None, "") else None,
            first_installed_at=parse_datetime(raw.get("firstInstalledDateTime")),
            customer_ref=str(raw.get("customerRef") or ""),
        )


@dataclass(frozen=True, slots=True)
class BundleAssignment:
    """One bundle applied to an eSIM; quantities in bytes, `state` lower-cased."""

    bundle_name: str
    assignment_id: str
    reference: str
    state: str
    initial_bytes: int | None
    remaining_bytes: int | None
    assigned_at: datetime | None
    unlimited: bool

    @classmethod
    def from_api(cls, bundle_name: str, raw: Mapping[str, Any]) -> BundleAssignment:
        initial = raw.get("initialQuantity")
        remaining = raw.get("remainingQuantity")
        return cls(
            bundle_name=bundle_name,
            assignment_id=str(raw.get("id") or ""),
            reference=str(raw.get("assignmentReference") or ""),
            state=str(raw.get("bundleState") or "").strip().lower(),
            initial_bytes=to_int(initial) if initial is not None else None,
            remaining_bytes=to_int(remaining) if remaining is not None else None,
            assigned_at=parse_datetime(raw.get("assignmentDateTime")),
            unlimited=bool(raw.get("unlimited")),
        )

    @classmethod
    def list_from_api(cls, raw: Any) -> list[BundleAssignment]:
        """Flatten `{"bundles": [{"name", "assignments": [...]}]}` into assignments."""
        bundles = raw.get("bundles") if isinstance(raw, Mapping) else raw
        result: list[BundleAssignment] = []
        for bundle in _mappings(bundles):
            name = str(bundle.get("name") or "")
            result.extend(cls.from_api(name, a) for a in _mappings(bundle.get("assignments")))
        return result


@dataclass(frozen=True, slots=True)
class EsimHistoryEvent:
    """One line of an eSIM's history ("Bundle Applied", "eSIM First Attachment", …)."""

    name: str
    bundle_name: str
    at: datetime | None
    alert_type: str = ""

    @property
    def kind(self) -> str:
        """The event name lower-cased: eSIM Go capitalises its names inconsistently."""
        return " ".join(self.name.split()).lower()

    @classmethod
    def list_from_api(cls, raw: Any) -> list[EsimHistoryEvent]:
        """The schema shows a bare list; a wrapper object or a single event is read too."""
        if isinstance(raw, Mapping):
            wrapped = next(
                (raw[k] for k in ("history", "items", "data") if isinstance(raw.get(k), list)),
                None,
            )
            raw = wrapped if wrapped is not None else [raw]
        events = [
            cls(
                name=str(item.get("name") or "").strip(),
                bundle_name=str(item.get("bundleName") or "").strip(),
                at=parse_datetime(item.get("date")),
                alert_type=str(item.get("alertType") or "").strip(),
            )
            for item in _mappings(raw)
        ]
        return [event for event in events if event.name]


@dataclass(frozen=True, slots=True)
class EsimLocation:
    """Where the eSIM was last seen on a network; `country` as eSIM Go sent it (e.g. "FR")."""

    country: str
    network_name: str
    network_brand: str
    network_code: str
    last_seen: datetime | None

    @classmethod
    def from_api(cls, raw: Any) -> EsimLocation | None:
        """None when eSIM Go knows no network for the eSIM (it never attached)."""
        if not isinstance(raw, Mapping):
            return None
        location = cls(
            country=str(raw.get("country") or "").strip(),
            network_name=str(raw.get("networkName") or "").strip(),
            network_brand=str(raw.get("networkBrandName") or "").strip(),
            network_code=str(raw.get("mobileNetworkCode") or "").strip(),
            last_seen=parse_datetime(raw.get("lastSeen")),
        )
        if not (location.country or location.network_name or location.network_code):
            return None
        return location
