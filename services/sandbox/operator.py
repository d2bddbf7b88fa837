"""/sandbox for admins: move an eSIM on the stand-in (data used, installed, expired) and let the
bot hear of it as it would from eSIM Go — a signed callback to its own route, or, for expiry
(which eSIM Go sends no callback for), the status poll run at once. Replies are for admins, in
English."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories.esims import MyEsimsRepository
from services.esimgo.standin import EsimGoStandIn
from services.esimgo.standin.callbacks import (
    CallbackError,
    CallbackSender,
    first_use,
    profile_status_change,
    utilisation,
)
from services.messenger import Messenger
from services.tracking import TrackingService

HELP = (
    "🧪 <b>Sandbox controls</b> (admins only)\n"
    "/sandbox use 80 — 80 % of the plan used (any 1–100)\n"
    "/sandbox install — the eSIM is installed on a phone\n"
    "/sandbox expire — the plan's validity ends now\n"
    "Each acts on your newest eSIM; add the last digits of an ICCID to pick another of yours."
)
NO_ESIM = "You have no such eSIM yet: buy one (the payment is only simulated), then try again."


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed `/sandbox` line: what to do, the percentage for `use`, which eSIM."""

    action: str
    percent: int = 0
    iccid_tail: str = ""


def parse_command(args: str) -> Command | None:
    """`use <1–100> [digits]`, `install [digits]`, `expire [digits]`; None for anything else."""
    words = args.split()
    if not words or words[0] not in ("use", "install", "expire"):
        return None
    action, rest = words[0], words[1:]
    percent = 0
    if action == "use":
        if not rest or not rest[0].rstrip("%").isdigit():
            return None
        percent, rest = int(rest[0].rstrip("%")), rest[1:]
        if not 1 <= percent <= 100:
            return None
    if len(rest) > 1 or (rest and not rest[0].isdigit()):
        return None
    return Command(action, percent, rest[0] if rest else "")


class SandboxOperator:
    """Carries out /sandbox commands on the stand-in for the admin who typed them."""

    def __init__(
        self,
        standin: EsimGoStandIn,
        callbacks: CallbackSender,
        session_factory: async_sessionmaker[AsyncSession],
        tracking: TrackingService,
        messenger: Messenger,
    ) -> None:
        self._standin = standin
        self._callbacks = callbacks
        self._session_factory = session_factory
        self._tracking = tracking
        self._messenger = messenger

    async def run(self, admin_id: int, args: str) -> str:
        """What the command did, or how to use it."""
        command = parse_command(args)
        if command is None:
            return HELP
        iccid = await self._target(admin_id, command.iccid_tail)
        if iccid is None or iccid not in self._standin.esims:
            return NO_ESIM
        if command.action == "install":
            return await self._install(iccid)
        if self._standin.live_assignment(iccid) is None:
            return f"eSIM …{iccid[-4:]} has no plan that can still be used: top it up first."
        if command.action == "use":
            return await self._use(iccid, command.percent)
        return await self._expire(iccid)

    async def _target(self, admin_id: int, tail: str) -> str | None:
        """The admin's newest eSIM, or their eSIM whose ICCID ends in `tail`."""
        async with self._session_factory() as session:
            esims = await MyEsimsRepository(session).esims(admin_id)
        return next((e.iccid for e in esims if e.iccid.endswith(tail)), None)

    async def _use(self, iccid: str, percent: int) -> str:
        started = self._standin.live_assignment(iccid) or {}
        was_queued = str(started.get("bundleState", "")).lower() == "queued"
        assignment = self._standin.use_data(iccid, percent)
        self._attach(iccid, assignment)
        payloads = [first_use(self._standin, iccid, assignment)] if was_queued else []
        payloads.append(utilisation(self._standin, iccid, assignment))
        left = int(assignment["remainingQuantity"])
        usage = "unlimited data" if left < 0 else f"{left / 1e9:.2f} GB left"
        done = f"eSIM …{iccid[-4:]}: {percent} % of {assignment['name']} used ({usage})."
        return f"{done}\n{await self._deliver(payloads)}"

    async def _install(self, iccid: str) -> str:
        now = datetime.now(UTC)
        self._standin.install(iccid, now)
        done = f"eSIM …{iccid[-4:]} is installed on a phone now."
        delivered = await self._deliver([profile_status_change(iccid, "Installed", now)])
        return f"{done}\n{delivered}"

    async def _expire(self, iccid: str) -> str:
        assignment = self._standin.expire(iccid)
        await self._tracking.poll_esim(iccid, self._messenger)
        return (
            f"eSIM …{iccid[-4:]}: {assignment['name']} has expired. eSIM Go sends no callback "
            "for that; the status poll, run now, has told the bot."
        )

    def _attach(self, iccid: str, assignment: dict[str, Any]) -> None:
        """Data is used somewhere: on a network of the plan's (first) country."""
        bundle = self._standin.bundle(assignment["name"]) or {}
        places = [*bundle.get("countries", []), *bundle.get("roamingEnabled", [])]
        country = next((p["iso"] for p in places if len(str(p.get("iso", ""))) == 2), "")
        if country and iccid not in self._standin.locations:
            self._standin.attach(iccid, country)

    async def _deliver(self, payloads: list[dict[str, Any]]) -> str:
        """Post each callback in turn; says what the bot answered."""
        answers = []
        for payload in payloads:
            try:
                answer = await self._callbacks.post(payload)
            except CallbackError as exc:
                return f"⚠️ The {payload['alertType']} callback did not reach the bot: {exc}"
            answers.append(f"{payload['alertType']}: {answer}")
        return f"Signed callbacks posted to {self._callbacks.url}: " + ", ".join(answers)
