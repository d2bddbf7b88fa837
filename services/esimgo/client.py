"""Async client for the eSIM Go reseller API v2.4: pacing, retries for safe calls, typed errors."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import email.utils
import io
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from services.budget import Priority, RequestBudget, call_priority, current_priority
from services.esimgo.endpoints import endpoint
from services.esimgo.errors import (
    AuthError,
    BadRequestError,
    EsimGoError,
    InsufficientBalanceError,
    NotFoundError,
    OrderOutcomeUnknownError,
    RateLimitedError,
    SupplierUnavailableError,
)
from services.esimgo.models import (
    Bundle,
    BundleAssignment,
    EsimCredentials,
    EsimDetails,
    EsimHistoryEvent,
    EsimLocation,
    OrderResult,
    OrderValidation,
    Organisation,
)
from services.metrics import Metrics

logger = logging.getLogger(__name__)

_MAX_PAGES = 500  # a server that ignores `page` must not keep us looping forever
_BALANCE_WORDS = ("balance", "credit", "insufficient funds")
# eSIM Go counts requests per one-second window: a 429 without Retry-After pauses for one.
_DEFAULT_RATE_LIMIT_PAUSE = 1.0

Params = Sequence[tuple[str, str]]

_user_waiting: ContextVar[bool] = ContextVar("esimgo_user_waiting", default=False)


@contextlib.contextmanager
def user_waits() -> Iterator[None]:
    """Calls made inside are tried once, within `Timeouts.interactive` (the wait for the
    request budget included): someone is looking at a spinning button, and is better told to
    try again than kept waiting while we retry."""
    token = _user_waiting.set(True)
    try:
        yield
    finally:
        _user_waiting.reset(token)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Total seconds allowed per call, by kind of call."""

    catalogue: float = 60.0
    orders: float = 60.0
    default: float = 20.0
    interactive: float = 5.0  # inside user_waits()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries for safe calls: `attempts` in total, jittered exponential backoff between them."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A Retry-After longer than this is not waited out inside one call: the caller decides.
    max_retry_after: float = 30.0


@dataclass(frozen=True, slots=True)
class _Call:
    """One request to eSIM Go, as each try sends it."""

    method: str
    path: str
    params: Params | None
    body: Mapping[str, Any] | None
    time_limit: float


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    content_type: str
    body: bytes
    retry_after: float | None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError as exc:
            raise SupplierUnavailableError("eSIM Go sent a response that is not JSON") from exc


class _RetryableError(Exception):
    """Internal: this attempt failed in a way a safe call may retry."""

    def __init__(self, error: EsimGoError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_message(response: _Response) -> str:
    """eSIM Go sends `{"message": ...}`, but also text/plain or nothing at all."""
    text = response.text.strip()
    if text.startswith(("{", "[")):
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, Mapping):
            for key in ("message", "error", "statusMessage", "detail"):
                if payload.get(key):
                    return str(payload[key])
    if text and not text.startswith("<"):
        return text[:500]
    return f"HTTP {response.status}"


def _map_client_error(response: _Response) -> EsimGoError:
    """A non-retryable 4xx to its typed error."""
    status = response.status
    message = _error_message(response)
    lowered = message.lower()
    if status == 401:
        return AuthError(message, status)
    if status == 402 or any(word in lowered for word in _BALANCE_WORDS):
        return InsufficientBalanceError(message, status)
    if status == 403:
        return AuthError(message, status)
    if status == 404:
        return NotFoundError(message, status)
    return BadRequestError(message, status)


def _iso_ms(moment: datetime) -> str:
    """eSIM Go's filter format: 2024-03-01T00:00:00.000Z."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _page_items(payload: Any, *keys: str) -> tuple[list[Any], int | None]:
    """Items and pageCount of one page, whether it is a bare list or a wrapper object."""
    if isinstance(payload, list):
        return payload, None
    if not isinstance(payload, Mapping):
        return [], None
    items: list[Any] = []
    for key in keys:
        value = payload.get(key)
        if isinstance(value, list):
            items = value
            break
    page_count = payload.get("pageCount")
    if isinstance(page_count, int | str) and not isinstance(page_count, bool):
        try:
            return items, int(page_count)
        except ValueError:
            pass
    return items, None


def _parse_assignments_csv(text: str) -> list[EsimCredentials]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    result: list[EsimCredentials] = []
    for row in reader:
        clean = {str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None}
        credentials = EsimCredentials.from_api(clean)
        if credentials is not None:
            result.append(credentials)
    return result


class EsimGoClient:
    """One aiohttp session, one request budget; safe GETs retried, orders never.

    Each method's requests spend the budget at its priority (`call_priority`; undecorated
    methods are interactive); loops that nobody waits on mark theirs with `background_work()`.
    The client owns the budget and closes it.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        max_requests_per_second: float = 9.0,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        budget: RequestBudget | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._metrics = metrics
        self._api_key = api_key
        self._session = session
        self._owns_session = session is None
        self._timeouts = timeouts or Timeouts()
        self._retry = retry or RetryPolicy()
        self._budget = budget or RequestBudget(max_requests_per_second)

    def __repr__(self) -> str:
        # Never let the key leak through a repr in a traceback or log line.
        return f"EsimGoClient(base_url={self._base_url!r})"

    async def __aenter__(self) -> EsimGoClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the budget, and the session if this client created it."""
        await self._budget.close()
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()
        if self._owns_session:
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    # -- transport ---------------------------------------------------------------------------

    async def _send_once(self, call: _Call) -> _Response:
        await self._budget.acquire(current_priority())
        headers = {"X-API-Key": self._api_key, "Accept": "application/json"}
        started = time.monotonic()
        async with self._get_session().request(
            call.method,
            self._base_url + call.path,
            params=list(call.params) if call.params else None,
            json=call.body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=call.time_limit),
            # A redirect would carry X-API-Key to whatever host it names.
            allow_redirects=False,
        ) as resp:
            payload = await resp.read()
            response = _Response(
                status=resp.status,
                content_type=resp.content_type,
                body=payload,
                retry_after=_parse_retry_after(resp.headers.get("Retry-After")),
            )
        logger.debug(
            "eSIM Go %s %s -> %s in %.0f ms",
            call.method,
            call.path,
            response.status,
            (time.monotonic() - started) * 1000,
        )
        return response

    async def _attempt(self, call: _Call) -> _Response:
        """One try: a transient failure raises _RetryableError, a permanent one its typed error."""
        try:
            response = await self._send_once(call)
        except TimeoutError as exc:
            self._count(call, "timeout")
            raise _RetryableError(
                SupplierUnavailableError(f"timed out after {call.time_limit:g} s")
            ) from exc
        except aiohttp.ClientError as exc:
            self._count(call, "error")
            raise _RetryableError(
                SupplierUnavailableError(f"connection failed: {type(exc).__name__}")
            ) from exc
        status = response.status
        self._count(call, status)
        if 200 <= status < 300:
            return response
        if status == 429:
            pause = response.retry_after or _DEFAULT_RATE_LIMIT_PAUSE
            await self._budget.pause(pause)
            error: EsimGoError = RateLimitedError(response.retry_after, _error_message(response))
            raise _RetryableError(error, pause)
        if status >= 500 or status == 408:
            error = SupplierUnavailableError(_error_message(response), status)
            raise _RetryableError(error, response.retry_after if status == 503 else None)
        raise _map_client_error(response)

    def _count(self, call: _Call, status: int | str) -> None:
        if self._metrics is not None:
            self._metrics.esimgo_request(endpoint(call.method, call.path), status)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._retry.max_delay, self._retry.base_delay * (2.0**attempt))
        jitter: float = random.uniform(0.5, 1.0)  # spreads retries out; not cryptography
        return ceiling * jitter

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Mapping[str, Any] | None = None,
        time_limit: float | None = None,
        retry: bool = True,
    ) -> _Response:
        """Send with retries when `retry` (safe calls only), once when a user waits (see
        `user_waits`); raise typed errors."""
        limit = self._timeouts.default if time_limit is None else time_limit
        if not _user_waiting.get():
            return await self._send(_Call(method, path, params, body, limit), retry)
        limit = min(limit, self._timeouts.interactive)
        try:
            async with asyncio.timeout(limit):
                return await self._send(_Call(method, path, params, body, limit), retry=False)
        except TimeoutError:
            # Still waiting for the budget (or an answer): the user tries again instead.
            logger.warning("eSIM Go %s %s: no answer within %g s", method, path, limit)
            raise SupplierUnavailableError(f"no answer within {limit:g} s") from None

    async def _send(self, call: _Call, retry: bool) -> _Response:
        """`RetryPolicy.attempts` tries when `retry`, with backoff between them; else one."""
        method, path = call.method, call.path
        attempts = max(1, self._retry.attempts) if retry else 1
        for attempt in range(attempts):
            try:
                return await self._attempt(call)
            except _RetryableError as failure:
                last = failure.error
                wait = failure.wait
                if wait is not None and wait > self._retry.max_retry_after:
                    logger.warning(
                        "eSIM Go %s %s: %s; Retry-After %.0f s is too long to wait",
                        method,
                        path,
                        last,
                        wait,
                    )
                    raise last from None
                if attempt + 1 >= attempts:
                    logger.warning("eSIM Go %s %s failed: %s", method, path, last)
                    raise last from None
                delay = wait if wait is not None else self._backoff(attempt)
                logger.info(
                    "eSIM Go %s %s: %s; retry %d in %.2f s",
                    method,
                    path,
                    last,
                    attempt + 1,
                    delay,
                )
                if not isinstance(last, RateLimitedError):
                    await asyncio.sleep(delay)  # after a 429 the paused budget holds the retry
            except EsimGoError as exc:
                logger.warning("eSIM Go %s %s failed: %s", method, path, exc)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_json(
        self, path: str, params: Params | None = None, *, time_limit: float | None = None
    ) -> Any:
        return (await self._request("GET", path, params=params, time_limit=time_limit)).json()

    # -- catalogue ---------------------------------------------------------------------------

    async def fetch_catalogue_raw(self, per_page: int = 1000) -> list[dict[str, Any]]:
        """Every catalogue page, raw items, in as few requests as the server allows."""
        pages = self._pages(
            "/catalogue",
            [("perPage", str(per_page))],
            per_page,
            ("bundles", "items", "data"),
            time_limit=self._timeouts.catalogue,
        )
        return [dict(item) async for page in pages for item in page if isinstance(item, Mapping)]

    async def get_bundle(self, name: str) -> Bundle:
        payload = await self._get_json(f"/catalogue/bundle/{quote(name, safe='')}")
        bundle = Bundle.from_api(payload) if isinstance(payload, Mapping) else None
        if bundle is None:
            raise NotFoundError(f"bundle {name!r} not in the response", 404)
        return bundle

    async def get_organisation(self) -> Organisation:
        payload = await self._get_json("/organisation")
        if isinstance(payload, Mapping) and isinstance(payload.get("organisations"), list):
            orgs = payload["organisations"]  # some versions wrap it in a list
            payload = orgs[0] if orgs else {}
        return Organisation.from_api(payload if isinstance(payload, Mapping) else {})

    # -- orders ------------------------------------------------------------------------------

    @staticmethod
    def _order_body(kind: str, bundle_name: str, iccid: str | None) -> dict[str, Any]:
        line: dict[str, Any] = {"type": "bundle", "item": bundle_name, "quantity": 1}
        if iccid:
            line["iccids"] = [iccid]
            line["allowReassign"] = False  # never silently hand the user a new eSIM
        return {"type": kind, "assign": True, "order": [line]}

    async def validate_order(
        self, bundle_name: str, *, iccid: str | None = None
    ) -> OrderValidation:
        """Price an order without charging; `valid` False when eSIM Go would refuse it."""
        response = await self._request(
            "POST",
            "/orders",
            body=self._order_body("validate", bundle_name, iccid),
            time_limit=self._timeouts.orders,
            retry=True,  # validate charges nothing, so retrying is safe
        )
        payload = response.json()
        return OrderValidation.from_api(payload if isinstance(payload, Mapping) else {})

    @call_priority(Priority.PAID)
    async def create_order(self, bundle_name: str, *, iccid: str | None = None) -> OrderResult:
        """Buy one bundle (onto `iccid` for a top-up). Never retried: no idempotency key exists."""
        body = self._order_body("transaction", bundle_name, iccid)
        try:
            response = await self._request(
                "POST", "/orders", body=body, time_limit=self._timeouts.orders, retry=False
            )
        except RateLimitedError:
            raise  # rejected before processing: nothing was bought
        except SupplierUnavailableError as exc:
            raise OrderOutcomeUnknownError(
                f"order for {bundle_name} may or may not exist: {exc.message}", exc.status
            ) from exc
        try:
            payload = response.json()
        except SupplierUnavailableError as exc:
            raise OrderOutcomeUnknownError(
                "eSIM Go accepted the order but its response was unreadable", response.status
            ) from exc
        if not isinstance(payload, Mapping):
            raise OrderOutcomeUnknownError("order response is not an object", response.status)
        result = OrderResult.from_api(payload)
        if not result.esims and result.reference:
            result = await self._with_assignments(result)
        return result

    async def _with_assignments(self, result: OrderResult) -> OrderResult:
        """Fill in eSIM credentials missing from an order response; the order stands either way."""
        try:
            esims = await self.get_assignments(result.reference)
        except EsimGoError as exc:
            logger.warning(
                "eSIM Go order %s: no eSIM details yet (%s)", result.reference, exc.message
            )
            return result
        return OrderResult(
            reference=result.reference,
            status=result.status,
            total=result.total,
            currency=result.currency,
            created_at=result.created_at,
            items=result.items,
            esims=tuple(esims),
            raw=result.raw,
        )

    @call_priority(Priority.PAID)
    async def list_orders(self, created_since: datetime) -> list[OrderResult]:
        """Every order created at or after `created_since`, all pages, with ICCIDs."""
        per_page = 100
        params = [
            ("createdAt", f"gte:{_iso_ms(created_since)}"),
            ("includeIccids", "true"),
            ("limit", str(per_page)),
        ]
        pages = self._pages(
            "/orders",
            params,
            per_page,
            ("orders", "items", "data"),
            time_limit=self._timeouts.orders,
            single="orderReference",  # one order may come unwrapped
        )
        return [
            OrderResult.from_api(o) async for page in pages for o in page if isinstance(o, Mapping)
        ]

    async def _pages(
        self,
        path: str,
        params: list[tuple[str, str]],
        per_page: int,
        keys: tuple[str, ...],
        *,
        time_limit: float,
        single: str = "",
    ) -> AsyncIterator[list[Any]]:
        """The items of each page in turn, until the last by pageCount or a short page; a
        response holding the key `single` is one item sent on its own."""
        previous_first: Any = object()
        for page in range(1, _MAX_PAGES + 1):
            payload = await self._get_json(
                path, [*params, ("page", str(page))], time_limit=time_limit
            )
            if single and isinstance(payload, Mapping) and single in payload:
                yield [payload]
                return
            items, page_count = _page_items(payload, *keys)
            if items and items[0] == previous_first:
                return  # the server ignored `page` and sent the same page again
            previous_first = items[0] if items else None
            yield items
            last = (
                page >= page_count or not items
                if page_count is not None
                else len(items) < per_page
            )
            if last:
                return

    @call_priority(Priority.PAID)
    async def get_order(self, reference: str) -> OrderResult:
        payload = await self._get_json(
            f"/orders/{quote(reference, safe='')}", time_limit=self._timeouts.orders
        )
        if isinstance(payload, Mapping) and isinstance(payload.get("orders"), list):
            payload = payload["orders"][0] if payload["orders"] else {}
        if not isinstance(payload, Mapping):
            raise NotFoundError(f"order {reference} not in the response", 404)
        return OrderResult.from_api(payload)

    # -- eSIMs -------------------------------------------------------------------------------

    @call_priority(Priority.PAID)
    async def get_assignments(self, reference: str) -> list[EsimCredentials]:
        """ICCID, matching id and SM-DP+ address of an order's eSIMs (JSON, else CSV)."""
        response = await self._request(
            "GET", "/esims/assignments", params=[("reference", reference)]
        )
        if "csv" in response.content_type or (
            "json" not in response.content_type
            and not response.text.lstrip().startswith(("{", "["))
        ):
            return _parse_assignments_csv(response.text)
        payload = response.json()
        if isinstance(payload, Mapping):
            for key in ("esims", "assignments", "items"):
                if isinstance(payload.get(key), list):
                    payload = payload[key]
                    break
        records = payload if isinstance(payload, list) else [payload]
        parsed = (EsimCredentials.from_api(r) for r in records if isinstance(r, Mapping))
        return [c for c in parsed if c is not None]

    async def set_customer_ref(self, iccid: str, customer_ref: str) -> None:
        """Tag the eSIM (`PUT /esims`); both the query and the body carry the fields."""
        fields = {"iccid": iccid, "customerRef": customer_ref}
        await self._request("PUT", "/esims", params=list(fields.items()), body=fields)

    async def get_esim(self, iccid: str) -> EsimDetails:
        payload = await self._get_json(f"/esims/{quote(iccid, safe='')}")
        if not isinstance(payload, Mapping):
            raise SupplierUnavailableError("eSIM details response is not an object")
        details = EsimDetails.from_api(payload)
        return details if details.iccid else EsimDetails.from_api({**payload, "iccid": iccid})

    async def get_esim_bundles(self, iccid: str) -> list[BundleAssignment]:
        """Every bundle assignment on the eSIM, used ones included."""
        payload = await self._get_json(
            f"/esims/{quote(iccid, safe='')}/bundles",
            [("includeUsed", "true"), ("limit", "200")],
        )
        return BundleAssignment.list_from_api(payload)

    async def is_compatible(self, iccid: str, bundle_name: str) -> bool:
        payload = await self._get_json(
            f"/esims/{quote(iccid, safe='')}/compatible/{quote(bundle_name, safe='')}"
        )
        if isinstance(payload, Mapping):
            value = payload.get("compatible")
            if isinstance(value, str):
                return value.strip().lower() == "true"
            return bool(value)
        return bool(payload)

    # -- networks ----------------------------------------------------------------------------

    async def fetch_networks_raw(self) -> list[dict[str, Any]]:
        """Every country's networks and their speeds: `countryNetworks` items, raw."""
        payload = await self._get_json(
            "/networks", [("returnAll", "true")], time_limit=self._timeouts.catalogue
        )
        items, _pages = _page_items(payload, "countryNetworks", "networks", "items")
        return [dict(item) for item in items if isinstance(item, Mapping)]

    # -- troubleshooting and refunds (the eSIM doctor, self-refunds) ----------------------------

    async def get_esim_history(self, iccid: str) -> list[EsimHistoryEvent]:
        """What happened to the eSIM: bundles applied, first attachment, first use, refreshes."""
        payload = await self._get_json(f"/esims/{quote(iccid, safe='')}/history")
        return EsimHistoryEvent.list_from_api(payload)

    async def get_esim_location(self, iccid: str) -> EsimLocation | None:
        """The network and country the eSIM was last seen on; None if it never attached."""
        try:
            payload = await self._get_json(f"/esims/{quote(iccid, safe='')}/location")
        except NotFoundError:
            return None
        return EsimLocation.from_api(payload)

    async def refresh_esim(self, iccid: str) -> str:
        """Make the network drop the eSIM so the phone reconnects; eSIM Go's status text.

        Never retried: each call disconnects the user again.
        """
        response = await self._request(
            "GET", f"/esims/{quote(iccid, safe='')}/refresh", retry=False
        )
        return _status_text(response)

    async def revoke_bundle(self, iccid: str, bundle_name: str, *, to_balance: bool = True) -> str:
        """Take the oldest unused copy of a bundle off the eSIM, its price back to our balance
        when `to_balance`; eSIM Go's status text. Never retried: a second call would revoke
        another unused copy."""
        response = await self._request(
            "DELETE",
            f"/esims/{quote(iccid, safe='')}/bundles/{quote(bundle_name, safe='')}",
            params=[("type", "transaction"), ("refundToBalance", str(to_balance).lower())],
            retry=False,
        )
        return _status_text(response)

    async def revoke_assignment(
        self, iccid: str, bundle_name: str, assignment_id: str, *, to_balance: bool = True
    ) -> str:
        """Take one exact copy of a bundle (its assignment id) off the eSIM, its price back to
        our balance when `to_balance`; eSIM Go's status text. Never retried, like a revoke by
        name: whether a lost answer revoked it is read from the eSIM's bundles."""
        esim, name, assignment = (quote(p, safe="") for p in (iccid, bundle_name, assignment_id))
        response = await self._request(
            "DELETE",
            f"/esims/{esim}/bundles/{name}/assignments/{assignment}",
            params=[("type", "transaction"), ("refundToBalance", str(to_balance).lower())],
            retry=False,
        )
        return _status_text(response)


def _status_text(response: _Response) -> str:
    """`{"status": "..."}` as eSIM Go answers side-effect calls; tolerant of other shapes."""
    try:
        payload = response.json()
    except SupplierUnavailableError:
        return response.text.strip()[:200]
    if isinstance(payload, Mapping):
        return str(payload.get("status") or payload.get("message") or "")
    return ""
