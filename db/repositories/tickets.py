"""Support tickets, their messages, and the bot's copies of them in Telegram chats."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Order, SupportTicket, TicketMessage, TicketMessageCopy

OPEN = "open"
CLOSED = "closed"


class OpenTicketRow(NamedTuple):
    ticket: SupportTicket
    order_public_id: str | None
    messages: int


class TicketRepository:
    """Never commits: the calling service owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, ticket: SupportTicket) -> SupportTicket:
        self.session.add(ticket)
        await self.session.flush()
        return ticket

    async def get(self, ticket_id: int) -> SupportTicket | None:
        return await self.session.get(SupportTicket, ticket_id, populate_existing=True)

    async def opened_since(self, user_id: int, since: datetime) -> int:
        count = await self.session.scalar(
            select(func.count()).where(
                SupportTicket.telegram_user_id == user_id, SupportTicket.created_at >= since
            )
        )
        return int(count or 0)

    async def by_copy(self, chat_id: int, message_id: int) -> SupportTicket | None:
        """The ticket a message the bot sent in this chat belongs to."""
        return await self.session.scalar(
            select(SupportTicket)
            .join(TicketMessageCopy, TicketMessageCopy.ticket_id == SupportTicket.id)
            .where(
                TicketMessageCopy.chat_id == chat_id, TicketMessageCopy.message_id == message_id
            )
        )

    async def latest_open(self, user_id: int) -> SupportTicket | None:
        return await self.session.scalar(
            select(SupportTicket)
            .where(SupportTicket.telegram_user_id == user_id, SupportTicket.status == OPEN)
            .order_by(SupportTicket.created_at.desc(), SupportTicket.id.desc())
            .limit(1)
        )

    async def add_message(self, message: TicketMessage) -> None:
        self.session.add(message)
        await self.session.flush()

    async def add_copies(self, ticket_id: int, copies: Iterable[tuple[int, int]]) -> None:
        self.session.add_all(
            TicketMessageCopy(ticket_id=ticket_id, chat_id=chat_id, message_id=message_id)
            for chat_id, message_id in copies
        )
        await self.session.flush()

    async def last_copy(self, ticket_id: int, chat_id: int) -> int | None:
        """The ticket's latest message in this chat: the next one is sent as its reply."""
        return await self.session.scalar(
            select(func.max(TicketMessageCopy.message_id)).where(
                TicketMessageCopy.ticket_id == ticket_id, TicketMessageCopy.chat_id == chat_id
            )
        )

    async def set_awaiting(self, ticket_id: int, awaiting: str) -> bool:
        """Who speaks next, on an open ticket; False when it is closed."""
        return await self._update_open(ticket_id, awaiting=awaiting)

    async def close(self, ticket_id: int, admin_id: int, now: datetime) -> bool:
        return await self._update_open(ticket_id, status=CLOSED, closed_at=now, closed_by=admin_id)

    async def _update_open(self, ticket_id: int, **values: object) -> bool:
        result = await self.session.execute(
            update(SupportTicket)
            .where(SupportTicket.id == ticket_id, SupportTicket.status == OPEN)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def open_tickets(self, limit: int) -> list[OpenTicketRow]:
        """Open tickets, the longest-waiting first."""
        messages = (
            select(func.count())
            .where(TicketMessage.ticket_id == SupportTicket.id)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(SupportTicket, Order.public_id, messages)
            .outerjoin(Order, Order.id == SupportTicket.order_id)
            .where(SupportTicket.status == OPEN)
            .order_by(SupportTicket.updated_at, SupportTicket.id)
            .limit(limit)
        )
        return [OpenTicketRow(row[0], row[1], int(row[2])) for row in rows.all()]
