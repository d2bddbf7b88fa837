"""eSIM Go's V3 callbacks as the stand-in sends them: the payloads of its documentation, signed
as eSIM Go signs them (HMAC-SHA256 of the raw body keyed with the API key, hex, in
X-Signature-SHA256) and posted to the bot's own callback route."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp

from services.esimgo.standin.account import StandInAccount

SIGNATURE_HEADER = "X-Signature-SHA256"
POST_TIMEOUT_SECONDS = 10
# What the first use has taken when eSIM Go reports it (to the nearest kilobyte).
FIRST_USE_BYTES = 1_000


class CallbackError(Exception):
    """The callback could not be delivered: no route known yet, or the bot did not answer."""


def _rfc3339(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _bundle(account: StandInAccount, assignment: dict[str, Any], remaining: int) -> dict[str, Any]:
    start, end = account.plan_windows.get(assignment["id"], (None, None))
    return {
        "id": assignment["id"],
        "reference": assignment["assignmentReference"],
        "name": assignment["name"],
        "description": assignment.get("description", ""),
        "initialQuantity": assignment["initialQuantity"],
        "remainingQuantity": remaining,
        "startTime": _rfc3339(start),
        "endTime": _rfc3339(end),
        "unlimited": bool(assignment.get("unlimited")),
    }


def first_use(account: StandInAccount, iccid: str, assignment: dict[str, Any]) -> dict[str, Any]:
    """The one-time FirstUse alert: the plan's clock starts."""
    initial = int(assignment["initialQuantity"])
    remaining = max(initial - FIRST_USE_BYTES, 0) if initial > 0 else initial
    return {
        "iccid": iccid,
        "alertType": "FirstUse",
        "bundle": _bundle(account, assignment, remaining),
    }


def utilisation(account: StandInAccount, iccid: str, assignment: dict[str, Any]) -> dict[str, Any]:
    """A Utilisation alert with the assignment's usage as it is now."""
    remaining = int(assignment["remainingQuantity"])
    return {
        "iccid": iccid,
        "alertType": "Utilisation",
        "bundle": _bundle(account, assignment, remaining),
    }


def profile_status_change(iccid: str, status: str, at: datetime) -> dict[str, Any]:
    """The eSIM's profile changed state on a phone (Downloaded, Installed, Released)."""
    return {
        "iccid": iccid,
        "alertType": "ProfileStatusChange",
        "profileStatus": status,
        "timestamp": _rfc3339(at),
    }


class CallbackSender:
    """Posts signed callbacks to `url` (set once the bot's HTTP server listens)."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        self.url: str | None = None
        self._session: aiohttp.ClientSession | None = None

    def signature(self, body: bytes) -> str:
        return hmac.new(self._api_key.encode(), body, hashlib.sha256).hexdigest()

    async def post(self, payload: dict[str, Any]) -> str:
        """Deliver one callback; returns the bot's answer ("accepted", "duplicate"…)."""
        if self.url is None:
            raise CallbackError("the bot's HTTP server is not listening (no callback route)")
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: self.signature(body)}
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT_SECONDS)
            self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            async with self._session.post(self.url, data=body, headers=headers) as response:
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise CallbackError(f"{type(exc).__name__}: {exc}") from exc
        if response.status != 200 or not isinstance(answer, dict):
            raise CallbackError(f"the bot answered {response.status}: {answer}")
        return str(answer.get("status", ""))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
