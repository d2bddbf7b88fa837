"""A support request opened from the eSIM doctor, with the diagnosis attached.

`SupportDesk` opens it in the admin feature's ticket store, so admins answer it by replying to
its copy as they answer /paysupport; `AdminAlertDesk` only tells the operators (ADMIN_IDS).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.admin.tickets import Asker, Opened, SupportTickets
from services.admin_alerts import AdminAlerts, alert_markup
from services.messenger import Messenger

TICKET_LIMIT = 4000  # Telegram's 4096 characters, with room for the header


@dataclass(frozen=True, slots=True)
class SupportTicket:
    """Who asks, about which eSIM, what they were shown and what eSIM Go reports now."""

    user_id: int
    user_name: str
    username: str | None
    language: str
    iccid: str
    orders: tuple[str, ...]
    shown: str  # the finding the user last saw, and when
    report: str  # eSIM Go's live state, one fact per line, English
    opened_at: datetime

    def admin_text(self) -> str:
        """The ticket as the operators read it (HTML, English)."""
        who = html.escape(self.user_name or "?")
        if self.username:
            who += f" (@{html.escape(self.username)})"
        lines = [
            "🆘 <b>Support request: “It doesn't work”</b>",
            f"From: {who}, id <code>{self.user_id}</code>, language {self.language}",
            f"ICCID: <code>{html.escape(self.iccid)}</code>",
            *(f"Order: {html.escape(order)}" for order in self.orders),
            f"User saw: {html.escape(self.shown)}",
            "",
            f"<b>eSIM Go at {self.opened_at:%Y-%m-%d %H:%M} UTC</b>",
        ]
        room = TICKET_LIMIT - sum(len(line) + 1 for line in lines)
        facts: list[str] = []
        for fact in self.report.splitlines():
            escaped = html.escape(fact)
            if len(escaped) + 1 > room:
                facts.append("…")  # whole lines only: a cut entity would break the HTML
                break
            facts.append(escaped)
            room -= len(escaped) + 1
        return "\n".join([*lines, *facts])


class TicketDesk(Protocol):
    """Where doctor tickets go; the admin feature's ticket store implements it."""

    async def open(self, ticket: SupportTicket) -> None: ...


class AdminAlertDesk:
    """Tickets as messages to ADMIN_IDS (what /paysupport does with a typed question)."""

    def __init__(self, alerts: AdminAlerts, messenger: Messenger) -> None:
        self._alerts = alerts
        self._messenger = messenger

    async def open(self, ticket: SupportTicket) -> None:
        # admin_text() escapes every value itself: its markup is sent as it is.
        await self._alerts.alert(self._messenger, alert_markup(ticket.admin_text()))


class SupportDesk:
    """Tickets in the support ticket store (answered by replying to the admins' copy); past the
    store's hourly limit for the user, the operators are still told, as an alert."""

    def __init__(self, tickets: SupportTickets, fallback: AdminAlertDesk) -> None:
        self._tickets = tickets
        self._fallback = fallback

    async def open(self, ticket: SupportTicket) -> None:
        asker = Asker(
            ticket.user_id, ticket.user_id, ticket.user_name, ticket.username, ticket.language
        )
        opened = await self._tickets.open(asker, ticket.admin_text(), None)
        if opened.outcome is Opened.RATE_LIMITED:
            await self._fallback.open(ticket)
