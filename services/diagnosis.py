"""What is wrong with an eSIM, decided from what eSIM Go reports (pure: no I/O).

The findings are checked in the order a traveller's problems arise: not installed, removed from
the phone, no plan left, never connected, connected where the plan does not work, plan not
started, and finally "everything looks right" (then a network refresh may help).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from services.esimgo.models import EsimHistoryEvent
from services.usage import PlanState, group_bundles, is_installed

# History events that prove the eSIM reached a network.
ATTACHED_EVENTS = frozenset({"esim first attachment", "esim first use"})
_NEVER_INSTALLED_STATUSES = frozenset({"", "released"})
# Plan states only reached by using data, hence on a network.
_USED_STATES = frozenset({"active", "depleted", "expired"})
_DAWN = datetime.min.replace(tzinfo=UTC)


def ever_installed(
    profile_status: str | None,
    first_installed_at: datetime | None,
    events: Sequence[EsimHistoryEvent],
) -> bool:
    """Whether the profile ever reached a phone: an install time, any status but Released
    (Downloaded means the QR code was used), or an attachment in the history."""
    if is_installed(profile_status, first_installed_at):
        return True
    if (profile_status or "").strip().lower() not in _NEVER_INSTALLED_STATUSES:
        return True
    return any(event.kind in ATTACHED_EVENTS for event in events)


class Finding(enum.StrEnum):
    UNAVAILABLE = "unavailable"  # eSIM Go could not be read: static steps only
    NOT_INSTALLED = "not_installed"
    REMOVED = "removed"  # installed once, since deleted from the phone
    PLAN_ENDED = "plan_ended"  # used up or expired, nothing left to use
    PROCESSING = "processing"  # the plan is still being put on the eSIM
    NOT_ATTACHED = "not_attached"  # installed, never on a network
    WRONG_COUNTRY = "wrong_country"
    NOT_STARTED = "not_started"  # queued: starts on first use in a covered country
    LOOKS_FINE = "looks_fine"  # nothing wrong seen: settings, then a network refresh


@dataclass(frozen=True, slots=True)
class PlanView(PlanState):
    """A plan on the eSIM: eSIM Go's live state, start/end from our records (usage.BundleLike),
    and the countries it covers per the catalogue (empty: unknown)."""

    countries: tuple[str, ...] = ()
    duration_days: int = 0

    @property
    def is_live(self) -> bool:
        return self.state in {"processing", "queued", "active"}


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where the eSIM was last seen: `country` an ISO code when we could tell which."""

    country: str | None
    reported_country: str
    network: str
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class LiveState:
    """Everything eSIM Go said about the eSIM at `read_at`; `events`/`location_read` tell
    whether the history and the location could be read at all."""

    read_at: datetime
    profile_status: str | None
    first_installed_at: datetime | None
    plans: tuple[PlanView, ...]
    events: tuple[EsimHistoryEvent, ...] | None
    location: Sighting | None
    location_read: bool

    @property
    def ever_attached(self) -> bool | None:
        """True when anything shows the eSIM reached a network; None when we cannot tell."""
        if self.location is not None or any(p.state in _USED_STATES for p in self.plans):
            return True
        if any(e.kind in ATTACHED_EVENTS for e in self.events or ()):
            return True
        if self.events is None and not self.location_read:
            return None
        return False

    @property
    def installed(self) -> bool:
        return ever_installed(
            self.profile_status, self.first_installed_at, self.events or ()
        ) or bool(self.ever_attached)

    @property
    def removed(self) -> bool:
        """eSIM Go reports Released both before install and after removal: the install time
        (or a past attachment) tells them apart."""
        status = (self.profile_status or "").strip().lower()
        was_installed = self.first_installed_at is not None or bool(self.ever_attached)
        return status == "released" and was_installed

    @property
    def live_plans(self) -> tuple[PlanView, ...]:
        return tuple(p for p in self.plans if p.is_live)

    @property
    def covered_countries(self) -> tuple[str, ...]:
        """Countries some live plan works in; empty when no live plan's coverage is known."""
        seen: dict[str, None] = {}
        for plan in self.live_plans:
            seen.update(dict.fromkeys(plan.countries))
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class PlanOffer:
    """A plan on sale that covers the country the user is in."""

    bundle_name: str
    data_mb: int
    duration_days: int
    unlimited: bool


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """What the user is shown: the finding, the plan it is about, and what it rests on."""

    esim_id: int
    iccid: str
    finding: Finding
    checked_at: datetime
    live: LiveState | None  # None: eSIM Go could not be read just now
    plan: PlanView | None
    offers: tuple[PlanOffer, ...]
    lpa: str | None
    error: str | None = None
    gift_pending: bool = False  # a gift not claimed yet: its buyer gets no install links

    @property
    def location(self) -> Sighting | None:
        return self.live.location if self.live else None


def diagnose(live: LiveState | None) -> tuple[Finding, PlanView | None]:
    """The finding and the plan it is about."""
    if live is None:
        return Finding.UNAVAILABLE, None
    if live.removed:
        return Finding.REMOVED, None
    if not live.installed:
        return Finding.NOT_INSTALLED, _first_waiting(live.live_plans)
    live_plans = live.live_plans
    if not live_plans:
        return Finding.PLAN_ENDED, group_bundles(list(live.plans)).current
    active = [p for p in live_plans if p.state == "active"]
    waiting = _first_waiting(live_plans)
    if live.ever_attached is False:
        return Finding.NOT_ATTACHED, waiting or live_plans[0]
    where = live.location.country if live.location else None
    covered = live.covered_countries
    if where and covered and where not in covered:
        return Finding.WRONG_COUNTRY, (active or [waiting or live_plans[0]])[0]
    if not active:
        if all(p.state == "processing" for p in live_plans):
            return Finding.PROCESSING, live_plans[0]
        return Finding.NOT_STARTED, waiting
    return Finding.LOOKS_FINE, group_bundles(active).current


def _first_waiting(plans: Sequence[PlanView]) -> PlanView | None:
    waiting = [p for p in plans if p.state in {"queued", "processing"}]
    waiting.sort(key=lambda p: p.assigned_at or _DAWN)
    return waiting[0] if waiting else None
