"""Tell users what matters about their eSIMs, each thing once, in their language."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import EsimBundle, NotificationSent, User
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.formatting import bundle_title, data_amount, day_and_full_month
from services.i18n import Translator, normalize_language
from services.messenger import (
    Button,
    Keyboard,
    Messenger,
    MessengerError,
    RecipientUnavailableError,
)
from services.usage import FINISHED_STATES, BundleLike, is_installed, used_fraction

log = logging.getLogger(__name__)

EXPIRY_WARNING = timedelta(hours=24)
USED_WARNING = Decimal("0.8")

# Builds the callback data of a "Top up" button for an eSIM (by id); the handler layer's.
TopUpCallback = Callable[[int], str]


class NotifiedEsim(Protocol):
    """What notifications need of an eSIM (db Esim and the /myesims view fit)."""

    @property
    def id(self) -> int: ...
    @property
    def iccid(self) -> str: ...
    @property
    def telegram_user_id(self) -> int: ...
    @property
    def profile_status(self) -> str | None: ...
    @property
    def first_installed_at(self) -> datetime | None: ...


class NotifiedBundle(BundleLike, Protocol):
    """What notifications need of a plan on an eSIM (db EsimBundle and its view fit)."""

    @property
    def assignment_key(self) -> str: ...
    @property
    def bundle_name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: int
    language: str
    blocked: bool


class Notifier:
    """Sends user notifications deduplicated by `notifications_sent.dedup_key`, and admin alerts.

    The key is stored before sending, so a crash between the two loses a message rather than
    repeating it; a send that fails for a passing reason removes the key so it is tried again.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        translator: Translator,
        catalogue: CatalogueService,
        alerts: AdminAlerts,
        *,
        default_language: str = "en",
        topup_callback: TopUpCallback | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._translator = translator
        self._catalogue = catalogue
        self._admin = alerts
        self._default_language = default_language
        self._topup_callback = topup_callback
        self._clock = clock

    # -- plumbing ----------------------------------------------------------------------------

    def _(self, message: str, lang: str) -> str:
        return self._translator.gettext(message, lang)

    async def recipient(self, user_id: int) -> Recipient:
        async with self._session_factory() as session:
            user = await session.get(User, user_id)
        if user is None:
            return Recipient(user_id, self._default_language, blocked=False)
        language = user.language or normalize_language(
            user.telegram_language, self._default_language
        )
        return Recipient(user_id, language, blocked=user.blocked_at is not None)

    async def _claim(self, session: AsyncSession, key: str, user_id: int | None) -> bool:
        session.add(NotificationSent(dedup_key=key[:255], telegram_user_id=user_id))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return False
        return True

    async def send_once(
        self,
        messenger: Messenger,
        *,
        key: str,
        recipient: Recipient,
        text: str,
        keyboard: Keyboard | None = None,
    ) -> bool:
        """Send unless `key` was sent before (or the user blocked the bot); True if sent now."""
        if recipient.blocked:
            log.debug("not notifying %s (%s): the user blocked the bot", recipient.user_id, key)
            return False
        async with self._session_factory() as session:
            if not await self._claim(session, key, recipient.user_id):
                return False
            try:
                await messenger.send_text(recipient.user_id, text, keyboard)
            except RecipientUnavailableError:
                log.info("user %s blocked the bot; notifications stop", recipient.user_id)
                await session.execute(
                    update(User)
                    .where(User.telegram_id == recipient.user_id, User.blocked_at.is_(None))
                    .values(blocked_at=self._clock())
                )
                await session.commit()
                return False
            except MessengerError as exc:
                log.warning("notification %s not sent, will retry: %s", key, exc)
                await session.execute(
                    delete(NotificationSent).where(NotificationSent.dedup_key == key[:255])
                )
                await session.commit()
                return False
        log.info("notified %s: %s", recipient.user_id, key)
        return True

    def _topup_keyboard(self, esim: NotifiedEsim, label: str) -> Keyboard | None:
        if self._topup_callback is None:
            return None
        return [[Button(text=label, callback_data=self._topup_callback(esim.id))]]

    def bundle_label(self, bundle_name: str, lang: str) -> str:
        """A plan as the screens call it: `🇬🇧 United Kingdom · 1 GB · 7 days` (HTML-escaped)."""
        found = self._catalogue.catalogue.by_name(bundle_name)
        if found is None:
            return html.escape(bundle_name)
        return html.escape(bundle_title(found, lang, self._translator))

    # -- user notifications ------------------------------------------------------------------

    async def evaluate(
        self, messenger: Messenger, esim: NotifiedEsim, bundles: Sequence[NotifiedBundle]
    ) -> list[str]:
        """Send every notification the eSIM's stored state now calls for; returns the keys sent."""
        who = await self.recipient(esim.telegram_user_id)
        sent: list[str] = []
        now = self._clock()
        lang = who.language

        if is_installed(esim.profile_status, esim.first_installed_at):
            key = f"esim:{esim.iccid}:installed"
            text = self._(
                "✅ Your eSIM is installed. It connects when you arrive; "
                "the plan starts with the first use of data.",
                lang,
            )
            if await self.send_once(messenger, key=key, recipient=who, text=text):
                sent.append(key)

        for bundle in bundles:
            sent.extend(await self._evaluate_bundle(messenger, esim, bundle, who, now))
        return sent

    async def _evaluate_bundle(
        self,
        messenger: Messenger,
        esim: NotifiedEsim,
        bundle: NotifiedBundle,
        who: Recipient,
        now: datetime,
    ) -> list[str]:
        lang = who.language
        base = f"bundle:{esim.iccid}:{bundle.assignment_key}"
        topup = self._topup_keyboard(esim, self._("Top up", lang))
        sent: list[str] = []
        for kind, text, offers_topup in self._bundle_news(bundle, lang, now):
            key = f"{base}:{kind}"
            keyboard = topup if offers_topup else None
            if await self.send_once(
                messenger, key=key, recipient=who, text=text, keyboard=keyboard
            ):
                sent.append(key)
        return sent

    def _bundle_news(
        self, bundle: NotifiedBundle, lang: str, now: datetime
    ) -> list[tuple[str, str, bool]]:
        """What the plan's state calls for: (kind, text, with a Top up button)."""
        state = bundle.state.lower()
        plan = self.bundle_label(bundle.bundle_name, lang)
        end = bundle.end_at
        until = day_and_full_month(end, lang) if end is not None else ""
        fraction = used_fraction(bundle)
        used_up = state == "depleted" or (fraction is not None and fraction >= 1)
        live = state == "active" and not used_up
        news: list[tuple[str, str, bool]] = []
        if live and end is not None:
            text = self._("🚀 Your plan {plan} has started. It is valid until {date}.", lang)
            news.append(("started", text.format(plan=plan, date=until), False))
        elif live:
            text = self._("🚀 Your plan {plan} has started.", lang)
            news.append(("started", text.format(plan=plan), False))
        if used_up and state not in {"expired", "revoked", "lapsed"}:
            text = self._(
                "⛔ Your plan {plan} is used up. Top up to stay online — "
                "the new plan goes onto the same eSIM, nothing to install.",
                lang,
            )
            news.append(("used100", text.format(plan=plan), True))
        elif fraction is not None and fraction >= USED_WARNING and state == "active":
            left = data_amount(max((bundle.remaining_bytes or 0), 0), lang, self._translator)
            text = self._("⚠️ You have used 80 % of your plan {plan}: {left} left.", lang)
            news.append(("used80", text.format(plan=plan, left=left), True))
        if live and end is not None and now < end <= now + EXPIRY_WARNING:
            text = self._("⏰ Your plan {plan} ends in less than 24 hours, on {date}.", lang)
            news.append(("expiry24h", text.format(plan=plan, date=until), True))
        return news

    async def deletion_scheduled(
        self, messenger: Messenger, esim: NotifiedEsim, when: datetime
    ) -> bool:
        """The eSIM had no plan for months and eSIM Go will delete it unless it is topped up."""
        who = await self.recipient(esim.telegram_user_id)
        lang = who.language
        deadline = when + timedelta(days=7)
        text = self._(
            "🗑 Your eSIM ending in {tail} has had no active plan for a long time and will be "
            "deleted around {date}. Top up to keep it.",
            lang,
        ).format(tail=html.escape(esim.iccid[-4:]), date=day_and_full_month(deadline, lang))
        keyboard = self._topup_keyboard(esim, self._("Top up to keep it", lang))
        key = f"esim:{esim.iccid}:deletion:{when.date().isoformat()}"
        return await self.send_once(
            messenger, key=key, recipient=who, text=text, keyboard=keyboard
        )

    # -- admin alerts ------------------------------------------------------------------------

    async def admin_alert_once(self, messenger: Messenger, key: str, text: str) -> bool:
        """Operators' alerts are in English; `key` makes each go out once."""
        return await self._admin.alert_once(messenger, key, text)


def finished(bundles: Sequence[EsimBundle]) -> bool:
    """True when the eSIM has bundles and none can be used any more."""
    return bool(bundles) and all(b.state.lower() in FINISHED_STATES for b in bundles)


async def load_bundles(session: AsyncSession, iccid: str) -> list[EsimBundle]:
    result = await session.scalars(
        select(EsimBundle).where(EsimBundle.iccid == iccid).order_by(EsimBundle.id)
    )
    return list(result)
