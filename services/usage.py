"""How an eSIM's plan is shown: usage bar, data left, end date, and its state in words (pure)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Generic, Protocol, TypeVar

from services.formatting import data_amount, day_and_month
from services.i18n import N_, Translator

BAR_WIDTH = 8
FILLED = "▓"
EMPTY = "░"

LIVE_STATES = frozenset({"processing", "queued", "active"})
FINISHED_STATES = frozenset({"expired", "depleted", "revoked", "lapsed"})
INSTALLED_PROFILE_STATES = frozenset({"installed", "enabled", "disabled"})
_DAWN = datetime.min.replace(tzinfo=UTC)


class BundleLike(Protocol):
    """What the display needs from a bundle row (db EsimBundle fits)."""

    @property
    def state(self) -> str: ...
    @property
    def unlimited(self) -> bool: ...
    @property
    def initial_bytes(self) -> int | None: ...
    @property
    def remaining_bytes(self) -> int | None: ...
    @property
    def assigned_at(self) -> datetime | None: ...
    @property
    def start_at(self) -> datetime | None: ...
    @property
    def end_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanState:
    """A plan on an eSIM as the display reads it: the one we stored, or eSIM Go's live one."""

    bundle_name: str
    state: str
    unlimited: bool
    initial_bytes: int | None
    remaining_bytes: int | None
    assigned_at: datetime | None
    start_at: datetime | None
    end_at: datetime | None


B = TypeVar("B", bound=BundleLike)


class EsimState(enum.StrEnum):
    NOT_INSTALLED = "not_installed"
    READY = "ready"
    IN_USE = "in_use"
    USED_UP = "used_up"
    EXPIRED = "expired"


STATE_LABELS: dict[EsimState, str] = {
    EsimState.NOT_INSTALLED: N_("not installed yet"),
    EsimState.READY: N_("ready"),
    EsimState.IN_USE: N_("in use"),
    EsimState.USED_UP: N_("used up"),
    EsimState.EXPIRED: N_("expired"),
}


def is_installed(profile_status: str | None, first_installed_at: datetime | None) -> bool:
    """eSIM Go reports Released both before install and after removal; the install time decides."""
    if first_installed_at is not None:
        return True
    return (profile_status or "").strip().lower() in INSTALLED_PROFILE_STATES


def esim_state(installed: bool, bundle_states: Iterable[str]) -> EsimState:
    """One word for the whole eSIM, from its profile and its bundles' states."""
    states = {s.strip().lower() for s in bundle_states}
    if "active" in states:
        return EsimState.IN_USE
    if states & {"queued", "processing"} or not states:
        return EsimState.READY if installed else EsimState.NOT_INSTALLED
    if "depleted" in states:
        return EsimState.USED_UP
    return EsimState.EXPIRED


def state_label(state: EsimState, lang: str, translator: Translator) -> str:
    return translator.gettext(STATE_LABELS[state], lang)


def used_fraction(bundle: BundleLike) -> Decimal | None:
    """Share of the data used, 0..1; None when unknown or unlimited."""
    if bundle.unlimited or not bundle.initial_bytes or bundle.initial_bytes <= 0:
        return None
    if bundle.state.lower() == "depleted":
        return Decimal(1)
    if bundle.remaining_bytes is None:
        # A callback can bring the plan size before any usage figure: unknown, not used up.
        return None
    remaining = min(max(bundle.remaining_bytes, 0), bundle.initial_bytes)
    return Decimal(bundle.initial_bytes - remaining) / Decimal(bundle.initial_bytes)


def usage_bar(fraction: Decimal, width: int = BAR_WIDTH) -> str:
    filled = int((fraction * width).to_integral_value(ROUND_HALF_UP))
    filled = min(max(filled, 0), width)
    return FILLED * filled + EMPTY * (width - filled)


def format_percent(fraction: Decimal, lang: str) -> str:
    whole = int((fraction * 100).to_integral_value(ROUND_HALF_UP))
    return f"{whole}\u00a0%"


def usage_line(bundle: BundleLike, lang: str, translator: Translator) -> str:
    """`▓▓▓▓░░░░ 52 % · 2.4 GB of 5 GB left · until 12 Dec` for one bundle."""
    parts: list[str] = []
    fraction = used_fraction(bundle)
    if bundle.unlimited:
        parts.append(translator.gettext("Unlimited data", lang))
    elif fraction is not None and bundle.initial_bytes:
        remaining = max(bundle.initial_bytes - int(fraction * bundle.initial_bytes), 0)
        parts.append(f"{usage_bar(fraction)} {format_percent(fraction, lang)}")
        parts.append(
            translator.gettext("{left} of {total} left", lang).format(
                left=data_amount(remaining, lang, translator),
                total=data_amount(bundle.initial_bytes, lang, translator),
            )
        )
    if bundle.end_at is not None and bundle.state.lower() in LIVE_STATES:
        parts.append(
            translator.gettext("until {date}", lang).format(
                date=day_and_month(bundle.end_at, lang)
            )
        )
    elif bundle.state.lower() in {"queued", "processing"}:
        parts.append(translator.gettext("starts on first use", lang))
    return " · ".join(parts)


def is_finished(bundle: BundleLike) -> bool:
    return bundle.state.strip().lower() not in LIVE_STATES


def percent_left(bundle: BundleLike, lang: str, translator: Translator) -> str | None:
    """`48 % left` for a live plan; None when unknown, unlimited or over."""
    used = used_fraction(bundle)
    if used is None or is_finished(bundle):
        return None
    return translator.gettext("{percent} left", lang).format(
        percent=format_percent(1 - used, lang)
    )


def finished_line(bundle: BundleLike, lang: str, translator: Translator) -> str:
    """`used up` or `expired on 12 Dec` for a plan that is over."""
    if bundle.state.strip().lower() == "depleted":
        return translator.gettext(STATE_LABELS[EsimState.USED_UP], lang)
    if bundle.end_at is not None:
        return translator.gettext("expired on {date}", lang).format(
            date=day_and_month(bundle.end_at, lang)
        )
    return translator.gettext(STATE_LABELS[EsimState.EXPIRED], lang)


def plan_line(bundle: BundleLike, lang: str, translator: Translator) -> str:
    """The usage line of a live plan, or how a finished one ended."""
    if is_finished(bundle):
        return finished_line(bundle, lang, translator)
    return usage_line(bundle, lang, translator)


@dataclass(frozen=True, slots=True)
class BundleGroups(Generic[B]):
    """A whole eSIM's bundles split for display: the one shown, those waiting, those done."""

    current: B | None
    queued: tuple[B, ...]
    finished: tuple[B, ...]


def group_bundles(bundles: Sequence[B]) -> BundleGroups[B]:
    """The active bundle (soonest end first) is current; else the first queued; else the last.

    Finished ones come newest first.
    """
    active = [b for b in bundles if b.state.lower() == "active"]
    waiting = sorted(
        (b for b in bundles if b.state.lower() in {"queued", "processing"}),
        key=lambda b: (b.assigned_at is None, b.assigned_at or _DAWN),
    )
    done = sorted(
        (b for b in bundles if is_finished(b)),
        key=lambda b: b.end_at or b.assigned_at or _DAWN,
        reverse=True,
    )
    current: B | None
    if active:
        active.sort(key=lambda b: (b.end_at is None, b.end_at or _DAWN))
        current, queued = active[0], tuple(waiting)
    elif waiting:
        current, queued = waiting[0], tuple(waiting[1:])
    else:
        current, queued = (done[0] if done else None), ()
    return BundleGroups(current=current, queued=queued, finished=tuple(done))
