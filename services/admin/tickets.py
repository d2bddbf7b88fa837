"""Support that talks back: a /paysupport question becomes a ticket; an admin's Telegram reply
to its copy reaches the user as the support team's answer, and the user's reply goes back to
the admins in the same thread.

Every message the bot sends about a ticket is remembered by (chat, message id), which is all a
Telegram reply carries. Texts are HTML as their authors formatted them (aiogram's html_text).
"""

from __future__ import annotations

import enum
import html
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Order, SupportTicket, TicketMessage
from db.repositories.tickets import OPEN, TicketRepository
from services.i18n import N_, Translator
from services.messenger import Keyboard, Messenger, MessengerError, RecipientUnavailableError
from services.pricing import Price, format_price

log = logging.getLogger(__name__)

TICKETS_PER_HOUR = 3
# Telegram's limits (4096 for a text, 1024 for a caption) less room for our header.
TEXT_LIMIT = 3800
CAPTION_LIMIT = 850
USER = "user"
ADMIN = "admin"

ANSWER_HEADER = N_("💬 <b>Answer from our support team</b> (request #{ticket})")
ANSWER_FOOTER = N_("<i>To write back, just send your reply here.</i>")
CLOSED_TEXT = N_(
    "✅ Your support request #{ticket} is closed. Send /paysupport if you need more help."
)


class Opened(enum.StrEnum):
    OPENED = "opened"
    RATE_LIMITED = "rate_limited"  # too many tickets this hour: wait for the answer


class Answered(enum.StrEnum):
    ANSWERED = "answered"
    NOT_A_TICKET = "not_a_ticket"  # the replied message is no ticket's
    CLOSED = "closed"
    TOO_LONG = "too_long"
    UNREACHABLE = "unreachable"  # the user blocked the bot
    FAILED = "failed"  # Telegram did not take it; try again


@dataclass(frozen=True, slots=True)
class TicketAnswer:
    """What became of an admin's reply; whom it reached when it was ANSWERED."""

    outcome: Answered
    ticket_id: int | None = None
    user_id: int | None = None
    chat_id: int | None = None


@dataclass(frozen=True, slots=True)
class Asker:
    user_id: int
    chat_id: int
    name: str
    username: str | None
    language: str


@dataclass(frozen=True, slots=True)
class TicketOpened:
    outcome: Opened
    ticket_id: int | None = None


@dataclass(frozen=True, slots=True)
class TicketLine:
    ticket_id: int
    user_id: int
    language: str
    order_public_id: str | None
    awaiting: str  # "admin": the user waits for an answer; "user": answered
    messages: int
    created_at: datetime
    updated_at: datetime


def _who(asker: Asker) -> str:
    who = html.escape(asker.name or "?")
    if asker.username:
        who += f" (@{html.escape(asker.username)})"
    return f"{who}, id <code>{asker.user_id}</code>"


def _order_lines(order: Order) -> list[str]:
    price = format_price(Price(order.price, order.price_currency), "en")
    lines = [
        f"Order: <code>{html.escape(order.public_id)}</code> · {order.status} · "
        f"{html.escape(order.bundle_name)} · {price}"
    ]
    if order.iccid:
        lines.append(f"ICCID: <code>{html.escape(order.iccid)}</code>")
    if order.failure_reason:
        lines.append(f"Last error: {html.escape(order.failure_reason[:300])}")
    return lines


async def _take_turn(
    repo: TicketRepository,
    ticket_id: int,
    author: str,
    author_id: int,
    text: str,
    photo: str | None,
) -> None:
    """One side's message on an open ticket; the other side speaks next."""
    message = TicketMessage(
        ticket_id=ticket_id, author=author, author_id=author_id, text=text, photo_file_id=photo
    )
    await repo.add_message(message)
    await repo.set_awaiting(ticket_id, USER if author == ADMIN else ADMIN)


class SupportTickets:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        messenger: Messenger,
        translator: Translator,
        admin_ids: Collection[int],
        *,
        close_keyboard: Callable[[int], Keyboard] | None = None,
        per_hour: int = TICKETS_PER_HOUR,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._messenger = messenger
        self._translator = translator
        self._admin_ids = sorted(admin_ids)
        # The buttons under an admin's copy (Close), given the ticket id; built by handlers.
        self._close_keyboard = close_keyboard
        self._per_hour = per_hour
        self._clock = clock

    async def open(self, asker: Asker, question: str, order_id: int | None) -> TicketOpened:
        """A ticket for the question (about one of the asker's orders, if given), copied to
        every admin; refused past `per_hour` tickets in the last hour."""
        now = self._clock()
        async with self._session_factory() as session:
            repo = TicketRepository(session)
            if await repo.opened_since(asker.user_id, now - timedelta(hours=1)) >= self._per_hour:
                return TicketOpened(Opened.RATE_LIMITED)
            order = await session.get(Order, order_id) if order_id is not None else None
            if order is not None and order.telegram_user_id != asker.user_id:
                order = None
            ticket = await repo.add(
                SupportTicket(
                    telegram_user_id=asker.user_id,
                    chat_id=asker.chat_id,
                    language=asker.language,
                    order_id=order.id if order is not None else None,
                    status=OPEN,
                    awaiting=ADMIN,
                    created_at=now,
                    updated_at=now,
                )
            )
            await repo.add_message(
                TicketMessage(
                    ticket_id=ticket.id, author=USER, author_id=asker.user_id, text=question
                )
            )
            await session.commit()
        lines = [
            f"🆘 <b>Support ticket #{ticket.id}</b>",
            f"From: {_who(asker)}, language {asker.language}",
            *(_order_lines(order) if order is not None else ["Order: none chosen"]),
            "",
            question,
            "",
            "<i>Reply to this message to answer the user.</i>",
        ]
        await self._to_admins(ticket.id, "\n".join(lines), None, first=True)
        log.info("support ticket #%s opened by %s", ticket.id, asker.user_id)
        return TicketOpened(Opened.OPENED, ticket.id)

    async def answer(
        self, admin_id: int, replied_message_id: int, text: str, photo: str | None = None
    ) -> TicketAnswer:
        """An admin replied (in their chat with the bot) to one of a ticket's messages: send
        the reply to the user as the support team's answer."""
        async with self._session_factory() as session:
            ticket = await TicketRepository(session).by_copy(admin_id, replied_message_id)
        if ticket is None:
            return TicketAnswer(Answered.NOT_A_TICKET)
        if ticket.status != OPEN:
            return TicketAnswer(Answered.CLOSED, ticket.id)
        if len(text) > (CAPTION_LIMIT if photo else TEXT_LIMIT):
            return TicketAnswer(Answered.TOO_LONG, ticket.id)
        lang = ticket.language
        body = "\n\n".join(
            [
                self._translator.gettext(ANSWER_HEADER, lang).format(ticket=ticket.id),
                text,
                self._translator.gettext(ANSWER_FOOTER, lang),
            ]
        )
        try:
            sent = await self._messenger.send(ticket.chat_id, body, photo=photo)
        except RecipientUnavailableError:
            return TicketAnswer(Answered.UNREACHABLE, ticket.id)
        except MessengerError as exc:
            log.warning("ticket #%s: answer not delivered: %s", ticket.id, exc)
            return TicketAnswer(Answered.FAILED, ticket.id)
        async with self._session_factory() as session:
            repo = TicketRepository(session)
            await repo.add_copies(ticket.id, [(ticket.chat_id, sent)])
            await _take_turn(repo, ticket.id, ADMIN, admin_id, text, photo)
            await session.commit()
        log.info("ticket #%s answered by admin %s", ticket.id, admin_id)
        return TicketAnswer(Answered.ANSWERED, ticket.id, ticket.telegram_user_id, ticket.chat_id)

    async def relay_from_user(
        self,
        user_id: int,
        text: str,
        photo: str | None = None,
        replied_message_id: int | None = None,
    ) -> bool:
        """Relay the user's reply to the support team (a Telegram reply to a ticket's message,
        or the next message after an answer); False when it is no part of a ticket."""
        async with self._session_factory() as session:
            repo = TicketRepository(session)
            ticket = None
            if replied_message_id is not None:
                ticket = await repo.by_copy(user_id, replied_message_id)
            # A copy in this chat may be an admin's copy of another user's ticket.
            if ticket is None or ticket.status != OPEN or ticket.telegram_user_id != user_id:
                ticket = await repo.latest_open(user_id)
                if ticket is None or ticket.awaiting != USER:
                    return False
            await _take_turn(repo, ticket.id, USER, user_id, text, photo)
            await session.commit()
        header = f"💬 <b>Ticket #{ticket.id}</b>: the user (id <code>{user_id}</code>) writes"
        if photo is not None and len(text) > CAPTION_LIMIT:
            # Too long for a caption: the photo, then the words as a reply to it.
            await self._to_admins(ticket.id, header, photo, first=False)
            photo, header = None, f"💬 <b>Ticket #{ticket.id}</b>"
        await self._to_admins(ticket.id, f"{header}\n\n{text}", photo, first=False)
        return True

    async def close(self, ticket_id: int, admin_id: int) -> bool:
        """Close an open ticket and tell the user; False when it was closed already."""
        async with self._session_factory() as session:
            repo = TicketRepository(session)
            closed = await repo.close(ticket_id, admin_id, self._clock())
            await session.commit()
            ticket = await repo.get(ticket_id) if closed else None
        if ticket is None:
            return False
        text = self._translator.gettext(CLOSED_TEXT, ticket.language).format(ticket=ticket_id)
        try:
            await self._messenger.send_text(ticket.chat_id, text)
        except MessengerError as exc:
            log.info("ticket #%s closed; the user was not told: %s", ticket_id, exc)
        return True

    async def open_tickets(self, limit: int = 50) -> list[TicketLine]:
        async with self._session_factory() as session:
            rows = await TicketRepository(session).open_tickets(limit)
        return [
            TicketLine(
                ticket_id=row.ticket.id,
                user_id=row.ticket.telegram_user_id,
                language=row.ticket.language,
                order_public_id=row.order_public_id,
                awaiting=row.ticket.awaiting,
                messages=row.messages,
                created_at=row.ticket.created_at,
                updated_at=row.ticket.updated_at,
            )
            for row in rows
        ]

    async def _to_admins(self, ticket_id: int, text: str, photo: str | None, first: bool) -> None:
        """Send to every admin, each time as a reply to the ticket's last message in their
        chat (the thread); remember the copies."""
        keyboard = self._close_keyboard(ticket_id) if self._close_keyboard else None
        copies: list[tuple[int, int]] = []
        for admin_id in self._admin_ids:
            reply_to = None
            if not first:
                async with self._session_factory() as session:
                    reply_to = await TicketRepository(session).last_copy(ticket_id, admin_id)
            try:
                sent = await self._messenger.send(
                    admin_id, text, photo=photo, reply_to=reply_to, keyboard=keyboard
                )
            except MessengerError as exc:
                log.warning("ticket #%s: copy to admin %s not sent: %s", ticket_id, admin_id, exc)
                continue
            copies.append((admin_id, sent))
        if not copies:
            log.warning("ticket #%s reached no admin (ADMIN_IDS: %s)", ticket_id, self._admin_ids)
            return
        async with self._session_factory() as session:
            await TicketRepository(session).add_copies(ticket_id, copies)
            await session.commit()
