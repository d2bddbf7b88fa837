"""A diagnosis as the operators read it: one fact per line, English, plain text."""

from __future__ import annotations

from datetime import datetime

from services.diagnosis import Diagnosis, PlanView

HISTORY_LINES = 8


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "unknown"


def _plan(plan: PlanView) -> str:
    parts = [f"plan {plan.bundle_name}: {plan.state or 'unknown'}"]
    if plan.unlimited:
        parts.append("unlimited")
    elif plan.initial_bytes:
        left = plan.remaining_bytes if plan.remaining_bytes is not None else "?"
        parts.append(f"{left} of {plan.initial_bytes} bytes left")
    if plan.start_at:
        parts.append(f"started {_when(plan.start_at)}")
    if plan.end_at:
        parts.append(f"ends {_when(plan.end_at)}")
    parts.append(f"covers {', '.join(plan.countries)}" if plan.countries else "coverage unknown")
    return ", ".join(parts)


def operator_report(diagnosis: Diagnosis) -> str:
    """The finding and the live facts behind it."""
    lines = [f"finding: {diagnosis.finding} (checked {_when(diagnosis.checked_at)})"]
    live = diagnosis.live
    if live is None:
        lines.append(f"eSIM Go could not be read: {diagnosis.error or 'unknown error'}")
        return "\n".join(lines)
    installed = _when(live.first_installed_at) if live.first_installed_at else "never"
    lines.append(f"profile: {live.profile_status or 'unknown'}, first installed {installed}")
    lines.extend(_plan(plan) for plan in live.plans)
    if not live.plans:
        lines.append("plans: none")
    if live.location is not None:
        seen = live.location
        lines.append(
            f"location: {seen.reported_country or '?'} on {seen.network or '?'}, "
            f"last seen {_when(seen.last_seen)}"
        )
    else:
        lines.append("location: none" if live.location_read else "location: could not be read")
    if live.events is None:
        lines.append("history: could not be read")
    for event in (live.events or ())[-HISTORY_LINES:]:
        bundle = f" {event.bundle_name}" if event.bundle_name else ""
        lines.append(f"history: {_when(event.at)} {event.name}{bundle}")
    return "\n".join(lines)
