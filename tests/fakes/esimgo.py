"""A fake eSIM Go v2.4 server over loopback HTTP: the sandbox's stand-in (product code,
services/esimgo/standin) plus what tests need on top: every request recorded, faults injected,
and switches for the answer shapes eSIM Go has been seen to send."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from services.esimgo.standin import PREFIX, EsimGoStandIn
from services.esimgo.standin.account import PricedLine, parse_time
from services.esimgo.standin.api import Handler


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


class FakeEsimGo(EsimGoStandIn):
    """Serves the eSIM Go endpoints the bot uses; every field is meant to be poked at by tests.

    `fail_next(route, ...)`: route is "METHOD /path-pattern" as the real API documents it, e.g.
    "POST /orders", "GET /esims/{iccid}" (a concrete path like "GET /esims/8944..." works too).
    "POST /orders:validate" / "POST /orders:transaction" narrow a fault to one order type.
    """

    def __init__(self, api_key: str = "test-key", catalogue: list[dict[str, Any]] | None = None):
        super().__init__(
            api_key,
            catalogue=catalogue,
            rng=random.Random(1234),
            smdp_address="rsp.fake-esimgo.test",
        )
        self.organisation_name = "Fake Travel Ltd"
        self.requests: list[RecordedRequest] = []
        self._arrival = asyncio.Event()
        # Behaviour switches.
        self.catalogue_shape = "wrapped"  # or "list" (the schema's bare array)
        self.catalogue_page_count = True  # False: wrapped shape without pageCount
        self.orders_shape = "wrapped"  # or "list"
        self.smdp_http_prefix = False
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
        # The account's rate limit (`limit_requests()`): None = unlimited, as most tests want.
        self.rate_limit: int | None = None
        self.rate_window = 1.0
        self.rate_limited = 0  # 429s answered for the limit (not those of fail_next)
        self._recent: collections.deque[float] = collections.deque()
        self._closing = asyncio.Event()

    async def close(self) -> None:
        self._closing.set()  # wake handlers that are "hanging" so shutdown is quick
        await super().close()

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

    def limit_requests(self, per_window: int = 10, window: float = 1.0) -> None:
        """Answer 429 (Retry-After: 1) to a request that is more than the `per_window`th to
        arrive within any `window` seconds, from any client: eSIM Go's limit per account.
        Refused requests count too: a client cannot hammer its way through."""
        self.rate_limit, self.rate_window = per_window, window

    def _over_limit(self, at: float) -> bool:
        if self.rate_limit is None:
            return False
        recent = self._recent
        while recent and at - recent[0] >= self.rate_window:
            recent.popleft()
        recent.append(at)
        if len(recent) <= self.rate_limit:
            return False
        self.rate_limited += 1
        return True

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
            order_lines.append(self.order_line(bundle, unit, line_iccids, reference, False))
        order = self.order_record(order_lines, reference, moment)
        self.orders.append(order)
        self.orders.sort(key=lambda o: parse_time(o["createdDate"]))
        return order

    # -- the switches ------------------------------------------------------------------------

    def line_iccids(self, line: PricedLine) -> list[str]:
        if self.topups_to_new_iccid:
            return [self.issue_iccid() for _ in range(line.quantity)]
        return super().line_iccids(line)

    def issue_iccid(self) -> str:
        if self.reissue_iccids:
            return self.reissue_iccids.pop(0)
        return super().issue_iccid()

    def _smdp(self) -> str:
        return f"http://{self.smdp_address}" if self.smdp_http_prefix else self.smdp_address

    def _json(self, payload: Any, status: int = 200) -> web.Response:
        return super()._json(
            _numeric_iccids(payload) if self.iccids_as_numbers else payload, status
        )

    def _catalogue_page(self, chunk: list[dict[str, Any]], rows: int, per_page: int) -> Any:
        if self.catalogue_shape == "list":
            return chunk
        page = super()._catalogue_page(chunk, rows, per_page)
        if not self.catalogue_page_count:
            del page["pageCount"]
        return page

    def _orders_page(self, views: list[dict[str, Any]], rows: int, limit: int) -> Any:
        return views if self.orders_shape == "list" else super()._orders_page(views, rows, limit)

    def _order_view(self, order: dict[str, Any], *, include_iccids: bool = True) -> dict[str, Any]:
        view = super()._order_view(order, include_iccids=include_iccids)
        if self.omit_esims_in_order_response:
            for line in view.get("order", []):
                line.pop("esims", None)
        return view

    def _styled_state(self, state: str) -> str:
        if self.bundle_state_case == "title":
            return state.title()
        if self.bundle_state_case == "upper":
            return state.upper()
        return state.lower()

    def _wants_json(self, request: web.Request) -> bool:
        return not self.assignments_csv_always and super()._wants_json(request)

    # -- recording and faults ----------------------------------------------------------------

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
        if self._over_limit(record.at):
            return web.json_response(
                {"message": "Too Many Requests"}, status=429, headers={"Retry-After": "1"}
            )
        fault = self._take_fault(record)
        if fault is None:
            return await self._authorised(request, handler)
        if fault.create_then_fail:
            response = await self._authorised(request, handler)  # the order exists now...
            if fault.delay:
                await self._hang(fault.delay)  # ...but the client gives up waiting
                return response
            return self._fault_response(fault)  # ...or is told it failed
        if fault.delay:
            await self._hang(fault.delay)
            if fault.status < 400:
                return await self._authorised(request, handler)  # slow, then fine
        return self._fault_response(fault)


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
