"""Messages to the operators (ADMIN_IDS); keyed alerts go out once (deduplicated in the DB)."""

from __future__ import annotations

import logging
from collections.abc import Collection

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import NotificationSent
from services.messenger import Messenger, MessengerError

log = logging.getLogger(__name__)


class AdminAlerts:
    """Admin alerts in English (operators' language); never raises on a failed send."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], admin_ids: Collection[int]
    ) -> None:
        self._session_factory = session_factory
        self._admin_ids = sorted(admin_ids)

    async def alert(self, messenger: Messenger, text: str) -> None:
        """Send `text` to every admin now."""
        log.warning("admin alert: %s", text)
        for admin_id in self._admin_ids:
            try:
                await messenger.send_text(admin_id, text)
            except MessengerError as exc:
                log.warning("admin alert to %s not delivered: %s", admin_id, exc)

    async def alert_once(self, messenger: Messenger, key: str, text: str) -> bool:
        """Send `text` unless an alert with this key already went out; True if sent now."""
        async with self._session_factory() as session:
            session.add(NotificationSent(dedup_key=f"admin:{key}"[:255]))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                log.info("admin alert %s already sent", key)
                return False
        await self.alert(messenger, text)
        return True
