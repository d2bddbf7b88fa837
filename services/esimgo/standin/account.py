"""The stand-in's eSIM Go account: catalogue, balance, orders, eSIMs and their bundles, and the
ways each changes. Records are kept as the API shapes them (camelCase dicts), so the HTTP side
only selects and serialises."""

from __future__ import annotations

import operator
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.esimgo.standin.catalogue_data import make_catalogue, make_networks

# No phone can install a profile from here: `.invalid` never resolves (RFC 6761).
SANDBOX_SMDP_ADDRESS = "rsp.esimgo-sandbox.invalid"
SANDBOX_BALANCE = Decimal("1000.00")
# Bundle states after which an assignment can no longer be used.
_SPENT = frozenset({"depleted", "expired", "revoked", "lapsed"})

COMPARE: dict[str, Callable[[datetime, datetime], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
    "eq": operator.eq,
}


class StandInError(Exception):
    """eSIM Go's refusal: the HTTP status and its `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def iso_time(moment: datetime) -> str:
    """eSIM Go's timestamps: UTC with milliseconds, `2026-11-20T08:00:00.000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PricedLine:
    """One line of an order request, checked against the catalogue and the eSIMs."""

    request: Mapping[str, Any]
    bundle: dict[str, Any]
    unit: Decimal

    @property
    def quantity(self) -> int:
        return int(self.request.get("quantity", 1))

    @property
    def iccids(self) -> list[str]:
        return [str(i) for i in self.request.get("iccids") or []]


class StandInAccount:
    """Every field may be read and changed: the HTTP API serves it, the sandbox operator moves
    usage and install state, tests arrange their scenes on it."""

    def __init__(
        self,
        api_key: str,
        *,
        catalogue: list[dict[str, Any]] | None = None,
        rng: random.Random | None = None,
        smdp_address: str = SANDBOX_SMDP_ADDRESS,
    ) -> None:
        self.api_key = api_key
        self.catalogue: list[dict[str, Any]] = (
            catalogue if catalogue is not None else make_catalogue()
        )
        self.balance = SANDBOX_BALANCE
        self.currency = "USD"
        self.organisation_name = "eSIM Go sandbox (esimbot stand-in)"
        self.orders: list[dict[str, Any]] = []
        self.esims: dict[str, dict[str, Any]] = {}
        self.esim_bundles: dict[str, list[dict[str, Any]]] = {}
        # (ICCID, bundle name) pairs eSIM Go calls incompatible.
        self.incompatible: set[tuple[str, str]] = set()
        # History beyond "Bundle Applied" (derived from the assignments), last locations, and
        # the refreshes asked for.
        self.esim_events: dict[str, list[dict[str, Any]]] = {}
        self.locations: dict[str, dict[str, Any]] = {}
        self.refreshed: list[str] = []
        # Start and end of each started assignment (by its id): only callbacks carry them.
        self.plan_windows: dict[str, tuple[datetime, datetime | None]] = {}
        self.networks: list[dict[str, Any]] = make_networks()
        self.smdp_address = smdp_address
        # Unseeded by default: a restarted sandbox must not hand out ICCIDs it issued before.
        self._rng = rng or random.Random()

    # -- eSIMs and their bundles ---------------------------------------------------------------

    def bundle(self, name: str) -> dict[str, Any] | None:
        return next((b for b in self.catalogue if b.get("name") == name), None)

    def esim(self, iccid: str) -> dict[str, Any]:
        record = self.esims.get(iccid)
        if record is None:
            raise StandInError(404, "eSIM not found")
        return record

    def add_esim(self, iccid: str | None = None, **fields: Any) -> dict[str, Any]:
        """Create an eSIM (as if bought earlier) and return its record."""
        iccid = iccid or self._new_iccid()
        record = {
            "iccid": iccid,
            "matchingId": self._matching_id(),
            "smdpAddress": self._smdp(),
            "profileStatus": "Released",
            "pin": "1234",
            "puk": "12345678",
            "firstInstalledDateTime": None,
            "customerRef": "",
        }
        record.update(fields)
        self.esims[iccid] = record
        self.esim_bundles.setdefault(iccid, [])
        return record

    def assign_bundle(self, iccid: str, bundle_name: str, reference: str = "") -> dict[str, Any]:
        """Apply a bundle to an eSIM: a queued assignment with the full quantity left."""
        bundle = self.bundle(bundle_name) or {"name": bundle_name, "dataAmount": 1000}
        unlimited = bool(bundle.get("unlimited"))
        quantity = -1 if unlimited else int(bundle.get("dataAmount", 0)) * 1_000_000
        assignment = {
            "id": str(self._rng.randrange(100_000_000, 999_999_999)),
            "name": bundle_name,
            "description": bundle.get("description", ""),
            "callTypeGroup": "data",
            "initialQuantity": quantity,
            "remainingQuantity": quantity,
            "assignmentDateTime": iso_time(datetime.now(UTC)),
            "assignmentReference": f"{reference or uuid.uuid4()}-0",
            "bundleState": "queued",
            "unlimited": unlimited,
        }
        self.esim_bundles.setdefault(iccid, []).append(assignment)
        return assignment

    def set_usage(
        self,
        iccid: str,
        remaining_bytes: int | None = None,
        state: str | None = None,
        bundle_name: str | None = None,
    ) -> dict[str, Any]:
        """Change the latest (or the named) assignment on an eSIM; returns it."""
        candidates = [
            a
            for a in self.esim_bundles.get(iccid, [])
            if bundle_name is None or a["name"] == bundle_name
        ]
        if not candidates:
            raise KeyError(f"no bundle {bundle_name or ''} on {iccid}")
        assignment = candidates[-1]
        if remaining_bytes is not None:
            assignment["remainingQuantity"] = remaining_bytes
        if state is not None:
            assignment["bundleState"] = state
        return assignment

    def set_profile_status(self, iccid: str, status: str, installed_ms: int | None = None) -> None:
        self.esims[iccid]["profileStatus"] = status
        if installed_ms is not None:
            self.esims[iccid]["firstInstalledDateTime"] = installed_ms

    def install(self, iccid: str, at: datetime | None = None) -> None:
        """The user installed the profile on a phone."""
        moment = at or datetime.now(UTC)
        self.set_profile_status(iccid, "Installed", int(moment.timestamp() * 1000))

    def start_bundle(self, iccid: str, bundle_name: str | None = None) -> dict[str, Any]:
        """The plan's first data use: the assignment turns active (and the event is logged)."""
        assignment = self.set_usage(iccid, state="active", bundle_name=bundle_name)
        if not any(e["name"] == "eSIM First Use" for e in self.esim_events.get(iccid, [])):
            self.add_event(iccid, "eSIM First Use", assignment["name"])
        if assignment["id"] not in self.plan_windows:
            start = datetime.now(UTC)
            days = int((self.bundle(assignment["name"]) or {}).get("duration", 0))
            self.plan_windows[assignment["id"]] = (
                start,
                start + timedelta(days=days) if days > 0 else None,
            )
        return assignment

    def live_assignment(self, iccid: str) -> dict[str, Any] | None:
        """The newest assignment that can still be used (queued or active), if any."""
        live = [
            a
            for a in self.esim_bundles.get(iccid, [])
            if str(a["bundleState"]).lower() not in _SPENT
        ]
        return live[-1] if live else None

    def use_data(self, iccid: str, percent: int) -> dict[str, Any]:
        """`percent` of the live plan used (it starts first if it had not): returns it."""
        assignment = self.live_assignment(iccid)
        if assignment is None:
            raise KeyError(f"no live bundle on {iccid}")
        self.start_bundle(iccid, assignment["name"])
        initial = int(assignment["initialQuantity"])
        if initial > 0:
            assignment["remainingQuantity"] = initial * (100 - percent) // 100
            if percent >= 100:
                assignment["bundleState"] = "depleted"
        return assignment

    def expire(self, iccid: str) -> dict[str, Any]:
        """The live plan's validity ends now: returns the assignment, now expired."""
        assignment = self.live_assignment(iccid)
        if assignment is None:
            raise KeyError(f"no live bundle on {iccid}")
        now = datetime.now(UTC)
        start, _end = self.plan_windows.get(assignment["id"], (now, None))
        self.plan_windows[assignment["id"]] = (start, now)
        assignment["bundleState"] = "expired"
        return assignment

    def set_customer_ref(self, iccid: str, reference: str) -> None:
        if iccid not in self.esims:
            raise StandInError(403, "ICCID is not accessible")
        self.esims[iccid]["customerRef"] = reference

    # -- the eSIM doctor's view: history, location, refresh, revoke ------------------------------

    def add_event(
        self, iccid: str, name: str, bundle_name: str = "", at: datetime | None = None
    ) -> None:
        """Add a history event ("eSIM First Attachment", "eSIM First Use", …)."""
        moment = at or datetime.now(UTC)
        self.esim_events.setdefault(iccid, []).append(
            {"name": name, "bundleName": bundle_name, "date": iso_time(moment)}
        )

    def set_location(
        self,
        iccid: str,
        country: str,
        network: str = "Orange",
        brand: str | None = None,
        last_seen: datetime | None = None,
    ) -> None:
        """Where the eSIM was last seen (`country` as eSIM Go sends it, e.g. "FR")."""
        self.locations[iccid] = {
            "mobileNetworkCode": f"{country[:3].upper()}01",
            "networkName": network,
            "networkBrandName": brand or f"{network} {country}",
            "country": country,
            "lastSeen": iso_time(last_seen or datetime.now(UTC)),
        }

    def attach(self, iccid: str, country: str, network: str = "Orange") -> None:
        """The installed eSIM connected to a network in `country` (first time: an event)."""
        if not any(e["name"] == "eSIM First Attachment" for e in self.esim_events.get(iccid, [])):
            self.add_event(iccid, "eSIM First Attachment")
        self.set_location(iccid, country, network)

    def history_of(self, iccid: str) -> list[dict[str, Any]]:
        """The eSIM's history as the API lists it: applied bundles and events, oldest first."""
        applied = [
            {"name": "Bundle Applied", "bundleName": a["name"], "date": a["assignmentDateTime"]}
            for a in self.esim_bundles.get(iccid, [])
        ]
        events = applied + self.esim_events.get(iccid, [])
        return sorted(events, key=lambda e: parse_time(e["date"]))

    def refresh(self, iccid: str) -> None:
        self.esim(iccid)
        self.refreshed.append(iccid)
        self.add_event(iccid, "eSIM Refreshed")

    def revoke(
        self,
        iccid: str,
        name: str,
        *,
        check_only: bool,
        to_balance: bool,
        assignment_id: str | None = None,
    ) -> str:
        """Revoke one unused assignment of the bundle: the one with `assignment_id`, else the
        oldest unused copy (as a revoke by name does); its price back to the balance with
        `to_balance`. A started bundle cannot be taken back. Returns the status text."""
        if iccid not in self.esims:
            raise StandInError(403, "The eSIM is not accessible by the user")
        copies = [a for a in self.esim_bundles.get(iccid, []) if a["name"] == name]
        if assignment_id is not None:
            copies = [a for a in copies if str(a["id"]) == assignment_id]
        unused = [a for a in copies if str(a["bundleState"]).lower() == "queued"]
        if not copies:
            raise StandInError(400, f"Bundle {name} is not applied to eSIM {iccid}")
        if not unused:
            raise StandInError(400, "Bundle has been used and cannot be revoked or refunded")
        if check_only:
            return "Bundle can be revoked and refunded to balance"
        unused[0]["bundleState"] = "revoked"
        self.add_event(iccid, "Bundle Revoked", name)
        if not to_balance:
            return "Successfully Revoked Bundle"
        bundle = self.bundle(name)
        self.balance += Decimal(str(bundle["price"])) if bundle else Decimal("0")
        self.add_event(iccid, "Bundle Refunded To Balance", name)
        return "Successfully Revoked Bundle, bundle has been refunded to balance"

    # -- orders ----------------------------------------------------------------------------------

    def price(self, lines: list[Mapping[str, Any]]) -> list[PricedLine]:
        """Each requested line with its bundle and unit price, or eSIM Go's refusal."""
        priced = []
        for line in lines:
            bundle = self.bundle(str(line.get("item")))
            if bundle is None:
                raise StandInError(400, f"Bundle {line.get('item')} not found")
            item = PricedLine(line, bundle, Decimal(str(bundle["price"])))
            if item.iccids and len(item.iccids) != item.quantity:
                raise StandInError(400, "Quantity must match the number of ICCIDs")
            for iccid in item.iccids:
                if iccid not in self.esims:
                    raise StandInError(400, f"eSIM {iccid} not found")
                if (iccid, bundle["name"]) in self.incompatible and not line.get("allowReassign"):
                    raise StandInError(
                        400, f"Bundle {bundle['name']} is not compatible with eSIM {iccid}"
                    )
            priced.append(item)
        return priced

    def validation(self, priced: list[PricedLine], assign: bool) -> dict[str, Any]:
        """A `validate` order's answer: the priced lines and whether the balance covers them."""
        total = sum((p.unit * p.quantity for p in priced), Decimal("0"))
        valid = total <= self.balance
        return {
            "order": [
                {
                    "type": "bundle",
                    "item": p.bundle["name"],
                    "quantity": p.quantity,
                    "subTotal": float(p.unit * p.quantity),
                    "pricePerUnit": float(p.unit),
                    "AllowReassign": bool(p.request.get("allowReassign", False)),
                }
                for p in priced
            ],
            "total": float(total),
            "valid": valid,
            "currency": self.currency,
            "createdDate": iso_time(datetime.now(UTC)),
            "assigned": assign,
            **({} if valid else {"message": "Insufficient balance"}),
        }

    def transact(self, priced: list[PricedLine]) -> dict[str, Any]:
        """A `transaction` order: paid from the balance, bundles applied to new or given eSIMs."""
        total = sum((p.unit * p.quantity for p in priced), Decimal("0"))
        if total > self.balance:
            raise StandInError(400, "Insufficient balance to complete the order")
        self.balance -= total
        reference = str(uuid.uuid4())
        lines = [
            self.order_line(
                p.bundle,
                p.unit,
                self.line_iccids(p),
                reference,
                bool(p.request.get("allowReassign", False)),
            )
            for p in priced
        ]
        order = self.order_record(lines, reference, datetime.now(UTC))
        self.orders.append(order)
        return order

    def line_iccids(self, line: PricedLine) -> list[str]:
        """The eSIMs a line's bundles go onto: those named (a top-up), else new ones."""
        return line.iccids or [self.issue_iccid() for _ in range(line.quantity)]

    def issue_iccid(self) -> str:
        return str(self.add_esim()["iccid"])

    def order_line(
        self,
        bundle: dict[str, Any],
        unit: Decimal,
        iccids: list[str],
        reference: str,
        reassign: bool,
    ) -> dict[str, Any]:
        for iccid in iccids:
            self.assign_bundle(iccid, bundle["name"], reference)
        return {
            "esims": [self._esim_public(i) for i in iccids],
            "type": "bundle",
            "item": bundle["name"],
            "iccids": iccids,
            "quantity": len(iccids),
            "subTotal": float(unit * len(iccids)),
            "pricePerUnit": float(unit),
            "AllowReassign": reassign,
        }

    def order_record(
        self, lines: list[dict[str, Any]], reference: str, created: datetime
    ) -> dict[str, Any]:
        total = sum(Decimal(str(line["subTotal"])) for line in lines)
        count = sum(len(line["iccids"]) for line in lines)
        return {
            "order": lines,
            "total": float(total),
            "currency": self.currency,
            "status": "completed",
            "statusMessage": f"Order completed: {count} eSIM assigned",
            "orderReference": reference,
            "createdDate": iso_time(created),
            "assigned": True,
            "sourceIP": "127.0.0.1",
        }

    def order(self, reference: str) -> dict[str, Any] | None:
        return next((o for o in self.orders if o["orderReference"] == reference), None)

    def orders_created(self, conditions: list[str]) -> list[dict[str, Any]]:
        """Orders whose creation time meets every `createdAt` filter (`gte:<ISO time>`…)."""
        selected = list(self.orders)
        for condition in conditions:
            op, _, value = condition.partition(":")
            check = COMPARE.get(op)
            if check is None:
                raise StandInError(400, f"Invalid createdAt filter {condition}")
            moment = parse_time(value)
            selected = [o for o in selected if check(parse_time(o["createdDate"]), moment)]
        return selected

    # -- made-up identifiers ---------------------------------------------------------------------

    def _new_iccid(self) -> str:
        # 8944 + issuer digits: 19 or 20 digits like real eSIM Go ICCIDs.
        length = self._rng.choice((19, 20))
        while True:
            digits = "8944" + "".join(str(self._rng.randrange(10)) for _ in range(length - 4))
            if digits not in self.esims:
                return digits

    def _matching_id(self) -> str:
        return "-".join(
            "".join(self._rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(5))
            for _ in range(5)
        )

    def _smdp(self) -> str:
        return self.smdp_address

    def _esim_public(self, iccid: str) -> dict[str, Any]:
        record = self.esims[iccid]
        return {k: record[k] for k in ("iccid", "matchingId", "smdpAddress")}
