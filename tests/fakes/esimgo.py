"""A fake eSIM Go v2.4 server over loopback HTTP: tweakable state and fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import operator
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.catalogue_data import make_catalogue, make_networks

PREFIX = "/v2.4"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the /v2.4 prefix
    query: list[tuple[str, str]]
    headers: dict[str, str]
    json: Any
    route: str  # e.g. "GET /esims/{iccid}"
    at: float = 0.0  # time.monotonic() on arrival

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)


@dataclass
class Fault:
    status: int = 500
    times: int = 1
    delay: float | None = None
    headers: dict[str, str] | None = None
    body: Any = None
    create_then_fail: bool = False


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def _parse_iso(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class FakeEsimGo:
    """Serves the eSIM Go endpoints the bot uses; every field is meant to be poked at by tests.

    `fail_next(route, ...)`: route is "METHOD /path-pattern" as the real API documents it, e.g.
    "POST /orders", "GET /esims/{iccid}" (a concrete path like "GET /esims/8944..." works too).
    "POST /orders:validate" / "POST /orders:transaction" narrow a fault to one order type.
    """

    def __init__(self, api_key: str = "test-key", catalogue: list[dict[str, Any]] | None = None):
        self.api_key = api_key
        self.catalogue: list[dict[str, Any]] = (
            catalogue if catalogue is not None else make_catalogue()
        )
        self.balance = Decimal("1000.00")
        self.currency = "USD"
        self.organisation_name = "Fake Travel Ltd"
        self.orders: list[dict[str, Any]] = []
        self.esims: dict[str, dict[str, Any]] = {}
        self.esim_bundles: dict[str, list[dict[str, Any]]] = {}
        self.incompatible: set[tuple[str, str]] = set()
        # The eSIM doctor's view: history events beyond "Bundle Applied" (which is derived from
        # the assignments), where each eSIM was last seen, and refreshes asked for.
        self.esim_events: dict[str, list[dict[str, Any]]] = {}
        self.locations: dict[str, dict[str, Any]] = {}
        self.refreshed: list[str] = []
        self.requests: list[RecordedRequest] = []
        self._arrival = asyncio.Event()
        # Behaviour switches.
        self.catalogue_shape = "wrapped"  # or "list" (the schema's bare array)
        self.catalogue_page_count = True  # False: wrapped shape without pageCount
        self.orders_shape = "wrapped"  # or "list"
        self.smdp_http_prefix = False
        self.smdp_address = "rsp.fake-esimgo.test"
        self.omit_esims_in_order_response = False
        self.iccids_as_numbers = False  # send ICCIDs as JSON numbers
        self.assignments_csv_always = False  # ignore Accept and answer text/csv
        self.bundle_state_case = "lower"  # or "title" ("Active") or "upper"
        # Misbehave on top-ups: put the bundle on a brand-new eSIM despite allowReassign false.
        self.topups_to_new_iccid = False
        # ICCIDs the next new-eSIM transactions hand out again instead of fresh ones (a recycled
        # or mixed-up profile), first in, first out.
        self.reissue_iccids: list[str] = []
        self.faults: dict[str, list[Fault]] = {}
        # GET /networks: `countryNetworks` items, {"name": ISO, "networks": [...]}.
        self.networks: list[dict[str, Any]] = make_networks()
        self._rng = random.Random(1234)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get(f"{PREFIX}/catalogue", self._catalogue)
        r.add_get(f"{PREFIX}/catalogue/bundle/{{name}}", self._bundle)
        r.add_get(f"{PREFIX}/organisation", self._organisation)
        r.add_post(f"{PREFIX}/orders", self._post_order)
        r.add_get(f"{PREFIX}/orders", self._list_orders)
        r.add_get(f"{PREFIX}/orders/{{ref}}", self._get_order)
        r.add_get(f"{PREFIX}/esims/assignments", self._assignments)
        r.add_put(f"{PREFIX}/esims", self._put_esims)
        r.add_get(f"{PREFIX}/esims/{{iccid}}", self._esim)
        r.add_get(f"{PREFIX}/esims/{{iccid}}/bundles", self._esim_bundles)
        r.add_get(f"{PREFIX}/esims/{{iccid}}/compatible/{{bundle}}", self._compatible)
        r.add_get(f"{PREFIX}/networks", self._networks)
        r.add_get(f"{PREFIX}/esims/{{iccid}}/history", self._history)
        r.add_get(f"{PREFIX}/esims/{{iccid}}/location", self._location)
        r.add_get(f"{PREFIX}/esims/{{iccid}}/refresh", self._refresh)
        r.add_delete(f"{PREFIX}/esims/{{iccid}}/bundles/{{name}}", self._revoke)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}{PREFIX}"
        return self.base_url

    async def close(self) -> None:
        self._closing.set()  # wake handlers that are "hanging" so shutdown is quick
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- test helpers ------------------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        status: int = 500,
        times: int = 1,
        delay: float | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        create_then_fail: bool = False,
    ) -> None:
        """Make the next `times` calls to `route` fail (or hang for `delay` s first)."""
        self.faults.setdefault(route, []).append(
            Fault(status, times, delay, headers, body, create_then_fail)
        )

    def calls(self, route: str) -> list[RecordedRequest]:
        """Recorded requests whose route ("GET /catalogue") or concrete path matches."""
        return [r for r in self.requests if route in (r.route, f"{r.method} {r.path}")]

    def requests_per_second(self) -> dict[int, int]:
        """Request counts per whole second since the first request."""
        if not self.requests:
            return {}
        start = self.requests[0].at
        return dict(Counter(int(r.at - start) for r in self.requests))

    def max_requests_in_window(self, window: float = 1.0) -> int:
        """Most requests that arrived within any sliding `window` seconds."""
        stamps = sorted(r.at for r in self.requests)
        best = lo = 0
        for hi, stamp in enumerate(stamps):
            while stamp - stamps[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    async def wait_for_requests(self, count: int = 1) -> None:
        """Return once `count` requests have arrived in all (e.g. the first of a queued burst)."""
        async with asyncio.timeout(10):  # a guard against a hang, not a measurement
            while len(self.requests) < count:
                self._arrival.clear()
                await self._arrival.wait()

    def bundle(self, name: str) -> dict[str, Any] | None:
        return next((b for b in self.catalogue if b.get("name") == name), None)

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

    def plant_order(
        self,
        bundle_name: str,
        *,
        iccids: list[str] | None = None,
        quantity: int = 1,
        lines: int = 1,
        created: datetime | None = None,
        customer_ref: str = "",
    ) -> dict[str, Any]:
        """An order placed on the account by something other than the bot: another customer's
        top-up (`iccids` of their eSIM), the operator's web shop (`customer_ref` on its new
        eSIMs), several lines or eSIMs, or one `created` at another time. Returns the order."""
        bundle = self.bundle(bundle_name)
        assert bundle is not None, bundle_name
        unit = Decimal(str(bundle["price"]))
        moment = created or datetime.now(UTC)
        reference = str(uuid.uuid4())
        order_lines = []
        for _ in range(lines):
            line_iccids = list(iccids) if iccids else []
            if not line_iccids:
                line_iccids = [
                    self.add_esim(customerRef=customer_ref)["iccid"] for _ in range(quantity)
                ]
            order_lines.append(self._order_line(bundle, unit, line_iccids, reference, False))
        order = self._order_record(order_lines, reference, moment)
        self.orders.append(order)
        self.orders.sort(key=lambda o: _parse_iso(o["createdDate"]))
        return order

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
            "assignmentDateTime": _iso(datetime.now(UTC)),
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

    # -- plumbing ----------------------------------------------------------------------------

    def _json(self, payload: Any, status: int = 200) -> web.Response:
        if self.iccids_as_numbers:
            payload = _numeric_iccids(payload)
        return web.Response(
            text=json.dumps(payload, default=str), status=status, content_type="application/json"
        )

    @staticmethod
    def _message(message: str, status: int) -> web.Response:
        return web.json_response({"message": message}, status=status)

    def _route_of(self, request: web.Request) -> str:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        return f"{request.method} {canonical.removeprefix(PREFIX)}"

    def _take_fault(self, record: RecordedRequest) -> Fault | None:
        keys = [f"{record.method} {record.path}", record.route]
        if record.route == "POST /orders" and isinstance(record.json, Mapping):
            keys.insert(0, f"POST /orders:{record.json.get('type', '')}")
        for key in keys:
            queue = self.faults.get(key)
            if queue:
                fault = queue[0]
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
                return fault
        return None

    async def _hang(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    def _fault_response(self, fault: Fault) -> web.Response:
        body = fault.body
        if body is None:
            text = json.dumps(
                {"message": "Internal server error" if fault.status >= 500 else "Request failed"}
            )
            content_type = "application/json"
        elif isinstance(body, str):
            text, content_type = body, "text/plain"
        elif isinstance(body, bytes):
            text, content_type = body.decode(), "text/plain"
        else:
            text, content_type = json.dumps(body), "application/json"
        return web.Response(
            text=text, status=fault.status, headers=fault.headers, content_type=content_type
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            body = await request.json() if request.can_read_body else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.path.removeprefix(PREFIX),
            query=list(request.query.items()),
            headers=dict(request.headers),
            json=body,
            route=self._route_of(request),
            at=time.monotonic(),
        )
        self.requests.append(record)
        self._arrival.set()
        if request.headers.get("X-API-Key") != self.api_key:
            return self._message("Unauthorized", 401)
        fault = self._take_fault(record)
        if fault is None:
            response: web.StreamResponse = await handler(request)
            return response
        if fault.create_then_fail:
            response = await handler(request)  # the order exists now...
            if fault.delay:
                await self._hang(fault.delay)  # ...but the client gives up waiting
                return response
            return self._fault_response(fault)  # ...or is told it failed
        if fault.delay:
            await self._hang(fault.delay)
            if fault.status < 400:
                return await handler(request)  # slow, then fine
        return self._fault_response(fault)

    # -- helpers for data --------------------------------------------------------------------

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
        return f"http://{self.smdp_address}" if self.smdp_http_prefix else self.smdp_address

    def _esim_public(self, iccid: str) -> dict[str, Any]:
        record = self.esims[iccid]
        return {k: record[k] for k in ("iccid", "matchingId", "smdpAddress")}

    def _order_view(self, order: dict[str, Any], *, include_iccids: bool = True) -> dict[str, Any]:
        view: dict[str, Any] = json.loads(json.dumps(order))
        for line in view.get("order", []):
            if self.omit_esims_in_order_response:
                line.pop("esims", None)
            if not include_iccids:
                line.pop("iccids", None)
                line.pop("esims", None)
        return view

    def _styled_state(self, state: str) -> str:
        if self.bundle_state_case == "title":
            return state.title()
        if self.bundle_state_case == "upper":
            return state.upper()
        return state.lower()

    # -- handlers ----------------------------------------------------------------------------

    async def _catalogue(self, request: web.Request) -> web.Response:
        items = self.catalogue
        countries = request.query.get("countries")
        if countries:
            wanted = {c.strip().upper() for c in countries.split(",") if c.strip()}
            items = [
                b for b in items if any(c.get("iso") in wanted for c in b.get("countries", []))
            ]
        region = request.query.get("region")
        if region:
            items = [
                b for b in items if any(c.get("region") == region for c in b.get("countries", []))
            ]
        page = max(1, int(request.query.get("page", "1")))
        per_page = max(1, int(request.query.get("perPage", "50")))
        chunk = items[(page - 1) * per_page : page * per_page]
        if self.catalogue_shape == "list":
            return self._json(chunk)
        payload: dict[str, Any] = {"bundles": chunk, "rows": len(items), "pageSize": per_page}
        if self.catalogue_page_count:
            payload["pageCount"] = max(1, -(-len(items) // per_page))
        return self._json(payload)

    async def _bundle(self, request: web.Request) -> web.Response:
        bundle = self.bundle(request.match_info["name"])
        if bundle is None:
            return self._message("Bundle not found", 404)
        return self._json({k: v for k, v in bundle.items() if k != "groups"})

    async def _organisation(self, request: web.Request) -> web.Response:
        return self._json(
            {
                "name": self.organisation_name,
                "apiKey": "redacted",
                "currency": self.currency,
                "balance": float(self.balance),
                "testCredit": 0,
                "groups": ["Standard"],
            }
        )

    async def _post_order(self, request: web.Request) -> web.Response:
        body = await request.json()
        kind = body.get("type")
        lines = body.get("order") or []
        if kind not in ("validate", "transaction") or not lines:
            return self._message("Invalid order request", 400)
        priced: list[tuple[dict[str, Any], dict[str, Any], Decimal]] = []
        total = Decimal("0")
        for line in lines:
            bundle = self.bundle(str(line.get("item")))
            if bundle is None:
                return self._message(f"Bundle {line.get('item')} not found", 400)
            quantity = int(line.get("quantity", 1))
            iccids = [str(i) for i in line.get("iccids") or []]
            if iccids and len(iccids) != quantity:
                return self._message("Quantity must match the number of ICCIDs", 400)
            for iccid in iccids:
                if iccid not in self.esims:
                    return self._message(f"eSIM {iccid} not found", 400)
                if (iccid, bundle["name"]) in self.incompatible and not line.get("allowReassign"):
                    return self._message(
                        f"Bundle {bundle['name']} is not compatible with eSIM {iccid}", 400
                    )
            unit = Decimal(str(bundle["price"]))
            total += unit * quantity
            priced.append((line, bundle, unit))
        now = datetime.now(UTC)
        if kind == "validate":
            valid = total <= self.balance
            return self._json(
                {
                    "order": [
                        {
                            "type": "bundle",
                            "item": b["name"],
                            "quantity": int(line.get("quantity", 1)),
                            "subTotal": float(unit * int(line.get("quantity", 1))),
                            "pricePerUnit": float(unit),
                            "AllowReassign": bool(line.get("allowReassign", False)),
                        }
                        for line, b, unit in priced
                    ],
                    "total": float(total),
                    "valid": valid,
                    "currency": self.currency,
                    "createdDate": _iso(now),
                    "assigned": bool(body.get("assign")),
                    **({} if valid else {"message": "Insufficient balance"}),
                }
            )
        if total > self.balance:
            return self._message("Insufficient balance to complete the order", 400)
        self.balance -= total
        reference = str(uuid.uuid4())
        order_lines = []
        for line, bundle, unit in priced:
            quantity = int(line.get("quantity", 1))
            iccids = [str(i) for i in line.get("iccids") or []]
            if not iccids or self.topups_to_new_iccid:
                iccids = [self._issue_iccid() for _ in range(quantity)]
            reassign = bool(line.get("allowReassign", False))
            order_lines.append(self._order_line(bundle, unit, iccids, reference, reassign))
        order = self._order_record(order_lines, reference, now)
        self.orders.append(order)
        return self._json(self._order_view(order))

    def _issue_iccid(self) -> str:
        if self.reissue_iccids:
            return self.reissue_iccids.pop(0)
        return str(self.add_esim()["iccid"])

    def _order_line(
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

    def _order_record(
        self, lines: list[dict[str, Any]], reference: str, created: datetime
    ) -> dict[str, Any]:
        total = sum(Decimal(str(line["subTotal"])) for line in lines)
        return {
            "order": lines,
            "total": float(total),
            "currency": self.currency,
            "status": "completed",
            "statusMessage": f"Order completed: {sum(len(x['iccids']) for x in lines)} "
            "eSIM assigned",
            "orderReference": reference,
            "createdDate": _iso(created),
            "assigned": True,
            "sourceIP": "127.0.0.1",
        }

    async def _list_orders(self, request: web.Request) -> web.Response:
        selected = list(self.orders)
        for condition in request.query.getall("createdAt", []):
            op, _, value = condition.partition(":")
            check = _COMPARE.get(op)
            if check is None:
                return self._message(f"Invalid createdAt filter {condition}", 400)
            moment = _parse_iso(value)
            selected = [o for o in selected if check(_parse_iso(o["createdDate"]), moment)]
        include = request.query.get("includeIccids", "false").lower() == "true"
        page = max(1, int(request.query.get("page", "1")))
        limit = max(1, int(request.query.get("limit", "50")))
        chunk = selected[(page - 1) * limit : page * limit]
        views = [self._order_view(o, include_iccids=include) for o in chunk]
        if self.orders_shape == "list":
            return self._json(views)
        return self._json(
            {
                "orders": views,
                "pageCount": max(1, -(-len(selected) // limit)),
                "pageSize": limit,
                "rows": len(selected),
            }
        )

    async def _get_order(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        order = next((o for o in self.orders if o["orderReference"] == ref), None)
        if order is None:
            return self._message("Order not found", 404)
        return self._json(self._order_view(order))

    async def _assignments(self, request: web.Request) -> web.Response:
        refs = [r for value in request.query.getall("reference", []) for r in value.split(",")]
        if not refs:
            return self._message("reference is required", 400)
        rows: list[dict[str, Any]] = []
        for ref in refs:
            order = next((o for o in self.orders if o["orderReference"] == ref), None)
            if order is None:
                return self._message(f"Reference {ref} not found", 400)
            for line in order["order"]:
                for iccid in line["iccids"]:
                    record = self.esims[iccid]
                    rows.append(
                        {
                            "iccid": iccid,
                            "matchingId": record["matchingId"],
                            "smdpAddress": record["smdpAddress"],
                            "profileStatus": record["profileStatus"],
                            "pin": record["pin"],
                            "puk": record["puk"],
                            "firstInstalledDateTime": record["firstInstalledDateTime"],
                        }
                    )
        accept = request.headers.get("Accept", "")
        if "application/json" in accept and not self.assignments_csv_always:
            return self._json(rows[0] if len(rows) == 1 else rows)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["ICCID", "Matching ID", "RSP URL", "Bundle", "Reference"])
        for row in rows:
            writer.writerow([row["iccid"], row["matchingId"], row["smdpAddress"], "", refs[0]])
        return web.Response(text=out.getvalue(), content_type="text/csv")

    async def _put_esims(self, request: web.Request) -> web.Response:
        """Set an eSIM's customerRef; the body and the query both carry the fields."""
        body = await request.json() if request.can_read_body else {}
        fields = {**request.query, **(body if isinstance(body, dict) else {})}
        iccid, reference = str(fields.get("iccid") or ""), fields.get("customerRef")
        if not iccid or reference is None:
            return self._message("iccid and customerRef are required", 400)
        if iccid not in self.esims:
            return self._message("ICCID is not accessible", 403)
        self.esims[iccid]["customerRef"] = str(reference)
        return self._json({"status": "success"})

    async def _esim(self, request: web.Request) -> web.Response:
        record = self.esims.get(request.match_info["iccid"])
        if record is None:
            return self._message("eSIM not found", 404)
        return self._json(dict(record))

    async def _esim_bundles(self, request: web.Request) -> web.Response:
        iccid = request.match_info["iccid"]
        if iccid not in self.esims:
            return self._message("eSIM not found", 404)
        grouped: dict[str, dict[str, Any]] = {}
        for assignment in self.esim_bundles.get(iccid, []):
            entry = grouped.setdefault(
                assignment["name"],
                {
                    "name": assignment["name"],
                    "description": assignment.get("description", ""),
                    "assignments": [],
                },
            )
            view = {k: v for k, v in assignment.items() if k not in ("name", "description")}
            view["bundleState"] = self._styled_state(str(view["bundleState"]))
            entry["assignments"].append(view)
        return self._json({"bundles": list(grouped.values())})

    async def _compatible(self, request: web.Request) -> web.Response:
        iccid = request.match_info["iccid"]
        name = request.match_info["bundle"]
        if iccid not in self.esims:
            return self._message("eSIM not found", 404)
        if self.bundle(name) is None:
            return self._message("Bundle not found", 404)
        return self._json({"compatible": (iccid, name) not in self.incompatible})

    async def _networks(self, request: web.Request) -> web.Response:
        """All countries with `returnAll=true`, else those named in `isos` (comma-separated)."""
        wanted = {iso.strip().upper() for iso in request.query.get("isos", "").split(",")}
        everything = request.query.get("returnAll", "").lower() == "true"
        items = [n for n in self.networks if everything or n["name"] in wanted]
        return self._json({"countryNetworks": items})

    # -- the eSIM doctor and self-refunds: history, location, refresh, revoke -------------------

    def add_event(
        self, iccid: str, name: str, bundle_name: str = "", at: datetime | None = None
    ) -> None:
        """Add a history event ("eSIM First Attachment", "eSIM First Use", …)."""
        moment = at or datetime.now(UTC)
        self.esim_events.setdefault(iccid, []).append(
            {"name": name, "bundleName": bundle_name, "date": _iso(moment)}
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
            "lastSeen": _iso(last_seen or datetime.now(UTC)),
        }

    def install(self, iccid: str, at: datetime | None = None) -> None:
        """The user installed the profile on a phone."""
        moment = at or datetime.now(UTC)
        self.set_profile_status(iccid, "Installed", int(moment.timestamp() * 1000))

    def attach(self, iccid: str, country: str, network: str = "Orange") -> None:
        """The installed eSIM connected to a network in `country` (first time: an event)."""
        if not any(e["name"] == "eSIM First Attachment" for e in self.esim_events.get(iccid, [])):
            self.add_event(iccid, "eSIM First Attachment")
        self.set_location(iccid, country, network)

    def start_bundle(self, iccid: str, bundle_name: str | None = None) -> dict[str, Any]:
        """The plan's first data use: the assignment turns active (and the event is logged)."""
        assignment = self.set_usage(iccid, state="active", bundle_name=bundle_name)
        if not any(e["name"] == "eSIM First Use" for e in self.esim_events.get(iccid, [])):
            self.add_event(iccid, "eSIM First Use", assignment["name"])
        return assignment

    def history_of(self, iccid: str) -> list[dict[str, Any]]:
        """The eSIM's history as the API lists it: applied bundles and events, oldest first."""
        applied = [
            {"name": "Bundle Applied", "bundleName": a["name"], "date": a["assignmentDateTime"]}
            for a in self.esim_bundles.get(iccid, [])
        ]
        events = applied + self.esim_events.get(iccid, [])
        return sorted(events, key=lambda e: _parse_iso(e["date"]))

    async def _history(self, request: web.Request) -> web.Response:
        iccid = request.match_info["iccid"]
        if iccid not in self.esims:
            return self._message("eSIM not found", 404)
        return self._json(self.history_of(iccid))

    async def _location(self, request: web.Request) -> web.Response:
        iccid = request.match_info["iccid"]
        if iccid not in self.esims:
            return self._message("eSIM not found", 404)
        location = self.locations.get(iccid)
        if location is None:
            return self._message("No location found for this eSIM", 404)
        return self._json(location)

    async def _refresh(self, request: web.Request) -> web.Response:
        iccid = request.match_info["iccid"]
        if iccid not in self.esims:
            return self._message("eSIM not found", 404)
        self.refreshed.append(iccid)
        self.add_event(iccid, "eSIM Refreshed")
        return self._json({"status": "Successfully refreshed SIM"})

    async def _revoke(self, request: web.Request) -> web.Response:
        """Revoke the oldest unused assignment of the bundle; its price back to the balance
        with refundToBalance=true. A started bundle cannot be taken back."""
        iccid, name = request.match_info["iccid"], request.match_info["name"]
        if iccid not in self.esims:
            return self._message("The eSIM is not accessible by the user", 403)
        copies = [a for a in self.esim_bundles.get(iccid, []) if a["name"] == name]
        unused = [a for a in copies if str(a["bundleState"]).lower() == "queued"]
        if not copies:
            return self._message(f"Bundle {name} is not applied to eSIM {iccid}", 400)
        if not unused:
            return self._message("Bundle has been used and cannot be revoked or refunded", 400)
        if request.query.get("type", "transaction") == "validate":
            return self._json({"status": "Bundle can be revoked and refunded to balance"})
        assignment = unused[0]
        assignment["bundleState"] = "revoked"
        self.add_event(iccid, "Bundle Revoked", name)
        if request.query.get("refundToBalance", "false").lower() == "true":
            bundle = self.bundle(name)
            self.balance += Decimal(str(bundle["price"])) if bundle else Decimal("0")
            self.add_event(iccid, "Bundle Refunded To Balance", name)
            return self._json(
                {"status": "Successfully Revoked Bundle, bundle has been refunded to balance"}
            )
        return self._json({"status": "Successfully Revoked Bundle"})


_COMPARE: dict[str, Callable[[datetime, datetime], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
    "eq": operator.eq,
}


def _numeric_iccids(payload: Any) -> Any:
    """Turn ICCID strings into JSON numbers, as some eSIM Go payloads do."""
    if isinstance(payload, list):
        return [_numeric_iccids(item) for item in payload]
    if isinstance(payload, dict):
        result: dict[str, Any] = {}
        for key, value in payload.items():
            if key == "iccid" and isinstance(value, str) and value.isdigit():
                result[key] = int(value)
            elif key == "iccids" and isinstance(value, list):
                result[key] = [int(v) if str(v).isdigit() else v for v in value]
            else:
                result[key] = _numeric_iccids(value)
        return result
    return payload


@pytest.fixture
async def fake_esimgo() -> AsyncIterator[FakeEsimGo]:
    """A started fake eSIM Go with the default 1500-bundle catalogue; closed after the test."""
    fake = FakeEsimGo()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
