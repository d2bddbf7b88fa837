"""Reminders, each sent once and each with a button to turn them off: an invoice left unpaid
for half an hour, an eSIM not installed a day after it was bought (or its gift claimed)."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.repositories.reminders import ReminderRepository, UninstalledEsim, UnpaidOrder
from services.i18n import N_, Translator
from services.messenger import Button, Keyboard, Messenger
from services.notifications import Notifier
from services.usage import is_installed

log = logging.getLogger(__name__)

UNPAID_AFTER = timedelta(minutes=30)
INSTALL_AFTER = timedelta(hours=24)
# Nothing older is reminded about: an unpaid order expires after a day, and an eSIM bought long
# before this feature (or this bot's downtime) would be reminded about out of the blue.
UNPAID_WINDOW = timedelta(days=1)
INSTALL_WINDOW = timedelta(days=7)
RUN_EVERY = timedelta(minutes=5)
UNPAID_KEY = "reminder:unpaid:"
INSTALL_KEY = "reminder:install:"

UNPAID_TEXT = N_(
    "🕑 You have not paid for {plan} yet. The invoice above still works: your eSIM arrives "
    "a few seconds after payment."
)
INSTALL_TEXT = N_(
    "📲 Your eSIM {plan} is not installed yet. Install it now, over Wi-Fi, so it is ready when "
    "you land: the plan starts only when you first use data in a covered country."
)
INSTALL_TEXT_NO_PLAN = N_(
    "📲 Your eSIM ending in {tail} is not installed yet. Install it now, over Wi-Fi, so it is "
    "ready when you land: the plan starts only when you first use data in a covered country."
)
PAY_BUTTON = N_("💳 Pay now")
INSTALL_BUTTON = N_("📲 How to install")
TURN_OFF_BUTTON = N_("🔕 No more reminders")
REMINDERS_ON_TEXT = N_(
    "🔔 Reminders are on: we remind you of an order left unpaid and of an eSIM not installed "
    "a day after you got it."
)
REMINDERS_OFF_TEXT = N_("🔕 Reminders are off. Turn them back on with /reminders.")
TURN_ON_BUTTON = N_("🔔 Turn reminders on")
TURN_OFF_SETTING_BUTTON = N_("🔕 Turn reminders off")


@dataclass(frozen=True, slots=True)
class ReminderButtons:
    """Callback data of the reminders' buttons, built by the handler layer."""

    turn_off: str
    pay: Callable[[str], str] | None = None  # an order's public id → "send its invoice again"
    install_help: Callable[[int], str] | None = None  # an eSIM's id → its install help


class ReminderService:
    """Finds what is due and sends it through the Notifier (once; blocked users skipped)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        translator: Translator,
        *,
        buttons: ReminderButtons | None = None,
        unpaid_after: timedelta = UNPAID_AFTER,
        install_after: timedelta = INSTALL_AFTER,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._notifier = notifier
        self._translator = translator
        self._buttons = buttons
        self._unpaid_after = unpaid_after
        self._install_after = install_after
        self._clock = clock

    def _(self, message: str, lang: str) -> str:
        return self._translator.gettext(message, lang)

    async def enabled(self, user_id: int) -> bool:
        async with self._session_factory() as session:
            return await ReminderRepository(session).enabled(user_id)

    async def set_enabled(self, user_id: int, enabled: bool) -> None:
        async with self._session_factory() as session:
            await ReminderRepository(session).set_enabled(user_id, enabled, self._clock())
            await session.commit()
        log.info("user %s turned reminders %s", user_id, "on" if enabled else "off")

    def setting_text(self, enabled: bool, lang: str) -> tuple[str, str]:
        """What the reminder setting says, and the label of the button that flips it."""
        if enabled:
            return self._(REMINDERS_ON_TEXT, lang), self._(TURN_OFF_SETTING_BUTTON, lang)
        return self._(REMINDERS_OFF_TEXT, lang), self._(TURN_ON_BUTTON, lang)

    async def run_once(self, messenger: Messenger) -> list[str]:
        """Send every reminder due now; returns the keys sent."""
        now = self._clock()
        async with self._session_factory() as session:
            repo = ReminderRepository(session)
            unpaid = await repo.unpaid(
                now - UNPAID_WINDOW, now - self._unpaid_after, now, UNPAID_KEY
            )
            uninstalled = await repo.uninstalled(
                now - INSTALL_WINDOW, now - self._install_after, INSTALL_KEY
            )
        sent = [key for order in unpaid if (key := await self._unpaid(messenger, order))]
        for esim in uninstalled:
            # eSIM Go reports some installed profiles only by status ("Enabled", "Installed").
            installed = is_installed(esim.profile_status, None)
            if not installed and (key := await self._uninstalled(messenger, esim)):
                sent.append(key)
        return sent

    async def run_loop(self, messenger: Messenger, every: timedelta = RUN_EVERY) -> None:
        """`run_once` every few minutes until cancelled; a failed round is logged, not fatal."""
        while True:
            try:
                await self.run_once(messenger)
            except Exception:
                log.exception("sending reminders failed; trying again in %s", every)
            await asyncio.sleep(every.total_seconds())

    def _keyboard(self, lang: str, first: Button | None) -> Keyboard | None:
        if self._buttons is None:
            return None
        rows = [[first]] if first is not None else []
        rows.append([Button(self._(TURN_OFF_BUTTON, lang), callback_data=self._buttons.turn_off)])
        return rows

    async def _unpaid(self, messenger: Messenger, order: UnpaidOrder) -> str | None:
        who = await self._notifier.recipient(order.user_id)
        lang = who.language
        plan = self._notifier.bundle_label(order.bundle_name, lang)
        pay = self._buttons.pay if self._buttons is not None else None
        button = (
            Button(self._(PAY_BUTTON, lang), callback_data=pay(order.public_id)) if pay else None
        )
        key = f"{UNPAID_KEY}{order.order_id}"
        text = self._(UNPAID_TEXT, lang).format(plan=plan)
        keyboard = self._keyboard(lang, button)
        if await self._notifier.send_once(
            messenger, key=key, recipient=who, text=text, keyboard=keyboard
        ):
            return key
        return None

    async def _uninstalled(self, messenger: Messenger, esim: UninstalledEsim) -> str | None:
        who = await self._notifier.recipient(esim.user_id)
        lang = who.language
        if esim.bundle_name:
            plan = self._notifier.bundle_label(esim.bundle_name, lang)
            text = self._(INSTALL_TEXT, lang).format(plan=plan)
        else:
            text = self._(INSTALL_TEXT_NO_PLAN, lang).format(tail=html.escape(esim.iccid[-4:]))
        help_for = self._buttons.install_help if self._buttons is not None else None
        button = (
            Button(self._(INSTALL_BUTTON, lang), callback_data=help_for(esim.esim_id))
            if help_for
            else None
        )
        key = f"{INSTALL_KEY}{esim.iccid}"
        keyboard = self._keyboard(lang, button)
        if await self._notifier.send_once(
            messenger, key=key, recipient=who, text=text, keyboard=keyboard
        ):
            return key
        return None
