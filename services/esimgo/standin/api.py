"""The stand-in's HTTP side: eSIM Go API v2.4 as the bot calls it, served on a loopback port so
the real EsimGoClient (and everything above it) runs unchanged against the account."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from services.esimgo.standin.account import SANDBOX_SMDP_ADDRESS, StandInAccount, StandInError

PREFIX = "/v2.4"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ASSIGNMENT_FIELDS = (
    "iccid",
    "matchingId",
    "smdpAddress",
    "profileStatus",
    "pin",
    "puk",
    "firstInstalledDateTime",
)


class EsimGoStandIn(StandInAccount):
    """The account behind eSIM Go's endpoints; `start()` serves them, `close()` stops.

    The views below are the shapes eSIM Go sends; a subclass may vary them (tests do).
    """

    def __init__(
        self,
        api_key: str,
        *,
        catalogue: list[dict[str, Any]] | None = None,
        rng: random.Random | None = None,
        smdp_address: str = SANDBOX_SMDP_ADDRESS,
    ) -> None:
        super().__init__(api_key, catalogue=catalogue, rng=rng, smdp_address=smdp_address)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> str:
        """Serve on 127.0.0.1 (a free port); returns the API base URL."""
        app = web.Application(middlewares=[self._middleware])
        self._routes(app.router)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}{PREFIX}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _routes(self, r: web.UrlDispatcher) -> None:
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
        r.add_delete(
            f"{PREFIX}/esims/{{iccid}}/bundles/{{name}}/assignments/{{assignmentId}}", self._revoke
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        return await self._authorised(request, handler)

    async def _authorised(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The API key checked as eSIM Go does; its refusals become `{"message"}` answers."""
        if request.headers.get("X-API-Key") != self.api_key:
            return self._message("Unauthorized", 401)
        try:
            return await handler(request)
        except StandInError as exc:
            return self._message(exc.message, exc.status)

    # -- views: how eSIM Go shapes its answers ---------------------------------------------------

    def _json(self, payload: Any, status: int = 200) -> web.Response:
        return web.Response(
            text=json.dumps(payload, default=str), status=status, content_type="application/json"
        )

    @staticmethod
    def _message(message: str, status: int) -> web.Response:
        return web.json_response({"message": message}, status=status)

    def _catalogue_page(self, chunk: list[dict[str, Any]], rows: int, per_page: int) -> Any:
        return {
            "bundles": chunk,
            "rows": rows,
            "pageSize": per_page,
            "pageCount": max(1, -(-rows // per_page)),
        }

    def _orders_page(self, views: list[dict[str, Any]], rows: int, limit: int) -> Any:
        return {
            "orders": views,
            "pageCount": max(1, -(-rows // limit)),
            "pageSize": limit,
            "rows": rows,
        }

    def _order_view(self, order: dict[str, Any], *, include_iccids: bool = True) -> dict[str, Any]:
        view: dict[str, Any] = json.loads(json.dumps(order))
        if not include_iccids:
            for line in view.get("order", []):
                line.pop("iccids", None)
                line.pop("esims", None)
        return view

    def _styled_state(self, state: str) -> str:
        return state.lower()

    def _wants_json(self, request: web.Request) -> bool:
        """/esims/assignments answers CSV unless JSON is asked for."""
        return "application/json" in request.headers.get("Accept", "")

    # -- handlers --------------------------------------------------------------------------------

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
        return self._json(self._catalogue_page(chunk, len(items), per_page))

    async def _bundle(self, request: web.Request) -> web.Response:
        bundle = self.bundle(request.match_info["name"])
        if bundle is None:
            raise StandInError(404, "Bundle not found")
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
            raise StandInError(400, "Invalid order request")
        priced = self.price(lines)
        if kind == "validate":
            return self._json(self.validation(priced, bool(body.get("assign"))))
        return self._json(self._order_view(self.transact(priced)))

    async def _list_orders(self, request: web.Request) -> web.Response:
        selected = self.orders_created(request.query.getall("createdAt", []))
        include = request.query.get("includeIccids", "false").lower() == "true"
        page = max(1, int(request.query.get("page", "1")))
        limit = max(1, int(request.query.get("limit", "50")))
        chunk = selected[(page - 1) * limit : page * limit]
        views = [self._order_view(o, include_iccids=include) for o in chunk]
        return self._json(self._orders_page(views, len(selected), limit))

    async def _get_order(self, request: web.Request) -> web.Response:
        order = self.order(request.match_info["ref"])
        if order is None:
            raise StandInError(404, "Order not found")
        return self._json(self._order_view(order))

    async def _assignments(self, request: web.Request) -> web.Response:
        refs = [r for value in request.query.getall("reference", []) for r in value.split(",")]
        if not refs:
            raise StandInError(400, "reference is required")
        rows = [row for ref in refs for row in self._assignment_rows(ref)]
        if self._wants_json(request):
            return self._json(rows[0] if len(rows) == 1 else rows)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["ICCID", "Matching ID", "RSP URL", "Bundle", "Reference"])
        for row in rows:
            writer.writerow([row["iccid"], row["matchingId"], row["smdpAddress"], "", refs[0]])
        return web.Response(text=out.getvalue(), content_type="text/csv")

    def _assignment_rows(self, reference: str) -> list[dict[str, Any]]:
        order = self.order(reference)
        if order is None:
            raise StandInError(400, f"Reference {reference} not found")
        return [
            {k: self.esims[iccid][k] for k in _ASSIGNMENT_FIELDS}
            for line in order["order"]
            for iccid in line["iccids"]
        ]

    async def _put_esims(self, request: web.Request) -> web.Response:
        """Set an eSIM's customerRef; the body and the query both carry the fields."""
        body = await request.json() if request.can_read_body else {}
        fields = {**request.query, **(body if isinstance(body, dict) else {})}
        iccid, reference = str(fields.get("iccid") or ""), fields.get("customerRef")
        if not iccid or reference is None:
            raise StandInError(400, "iccid and customerRef are required")
        self.set_customer_ref(iccid, str(reference))
        return self._json({"status": "success"})

    async def _esim(self, request: web.Request) -> web.Response:
        return self._json(dict(self.esim(request.match_info["iccid"])))

    async def _esim_bundles(self, request: web.Request) -> web.Response:
        iccid = request.match_info["iccid"]
        self.esim(iccid)
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
        iccid, name = request.match_info["iccid"], request.match_info["bundle"]
        self.esim(iccid)
        if self.bundle(name) is None:
            raise StandInError(404, "Bundle not found")
        return self._json({"compatible": (iccid, name) not in self.incompatible})

    async def _networks(self, request: web.Request) -> web.Response:
        """All countries with `returnAll=true`, else those named in `isos` (comma-separated)."""
        wanted = {iso.strip().upper() for iso in request.query.get("isos", "").split(",")}
        everything = request.query.get("returnAll", "").lower() == "true"
        items = [n for n in self.networks if everything or n["name"] in wanted]
        return self._json({"countryNetworks": items})

    async def _history(self, request: web.Request) -> web.Response:
        iccid = request.match_info["iccid"]
        self.esim(iccid)
        return self._json(self.history_of(iccid))

    async def _location(self, request: web.Request) -> web.Response:
        iccid = request.match_info["iccid"]
        self.esim(iccid)
        location = self.locations.get(iccid)
        if location is None:
            raise StandInError(404, "No location found for this eSIM")
        return self._json(location)

    async def _refresh(self, request: web.Request) -> web.Response:
        self.refresh(request.match_info["iccid"])
        return self._json({"status": "Successfully refreshed SIM"})

    async def _revoke(self, request: web.Request) -> web.Response:
        status = self.revoke(
            request.match_info["iccid"],
            request.match_info["name"],
            check_only=request.query.get("type", "transaction") == "validate",
            to_balance=request.query.get("refundToBalance", "false").lower() == "true",
            assignment_id=request.match_info.get("assignmentId"),
        )
        return self._json({"status": status})
