"""Delivering gifts: the claim link in place of the QR, and the QR to whoever ends up with it.

The fulfilment worker asks `deliver` before it sends a new eSIM's QR: the buyer of a pending gift
gets `https://t.me/<bot>?start=g<token>` and a share button instead. A claim (`/start g<token>`)
or the buyer taking the gift back ends in `hand_over`: the QR and install help in that user's
private chat (the QR is a bearer credential), and the buyer told of a claim.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from db.models import GiftStatus, Order
from services.catalogue import CatalogueService
from services.deeplinks import gift_parameter, start_link
from services.formatting import order_title
from services.gifts import GiftService, GiftView
from services.i18n import N_, Translator
from services.messenger import Button, Keyboard, Messenger, MessengerError
from services.myesims import MyEsimsService

log = logging.getLogger(__name__)

SHARE_URL = "https://t.me/share/url"
GIFT_READY_TEXT = N_(
    "🎁 <b>Your gift is ready:</b> {plan}\n\n"
    "Send this link to the person it is for. Whoever opens it first gets the eSIM, with its "
    "QR code and install help, in their own chat:\n{link}\n\n"
    "The link works once. Until it is claimed the gift waits in /myesims, where you can send "
    "the link again or take the gift back."
)
SHARE_BUTTON = N_("📤 Share the gift")
SHARE_TEXT = N_("🎁 A travel eSIM for you: open the link to get it in Telegram.")
TAKE_BACK_BUTTON = N_("↩️ Take it back")


class GiftDelivery:
    """Sends gift links and gifts' QR codes; the gift's state changes in GiftService."""

    def __init__(
        self,
        gifts: GiftService,
        myesims: MyEsimsService,
        catalogue: CatalogueService,
        translator: Translator,
        messenger: Messenger,
        *,
        bot_username: Callable[[], Awaitable[str]],
        take_back_callback: Callable[[int], str],
    ) -> None:
        self._gifts = gifts
        self._myesims = myesims
        self._catalogue = catalogue
        self._translator = translator
        self._messenger = messenger
        self._bot_username = bot_username
        # Callback data of "Take it back" under a link (a gift's id → the confirmation).
        self._take_back_callback = take_back_callback

    def _(self, message: str, lang: str) -> str:
        return self._translator.gettext(message, lang)

    async def deliver(self, order: Order) -> bool:
        """For a pending gift, the claim link instead of the QR; False when the order is no
        pending gift (send the QR). A failed send raises MessengerError, as the QR's would."""
        gift = await self._gifts.for_order(order.id)
        if gift is None or gift.status is not GiftStatus.PENDING:
            return False
        if not await self.send_link(gift, order.chat_id, order.language):
            # Not delivered after all (taken back meanwhile): the QR goes out as for any order.
            return False
        log.info("order %s: gift link sent to the buyer", order.public_id)
        return True

    async def send_link(self, gift: GiftView, chat_id: int, lang: str) -> bool:
        """A new claim link (the old one stops working) with a share button; False when the
        gift cannot be claimed (not delivered, settled)."""
        token = await self._gifts.issue_link(gift.order_id)
        if token is None:
            return False
        link = start_link(await self._bot_username(), gift_parameter(token))
        bundle = self._catalogue.catalogue.by_name(gift.bundle_name)
        plan = order_title(gift, bundle, lang, self._translator)
        text = self._(GIFT_READY_TEXT, lang).format(
            plan=f"<b>{html.escape(plan)}</b>", link=html.escape(link)
        )
        await self._messenger.send_text(chat_id, text, self._link_keyboard(gift, link, lang))
        return True

    def _link_keyboard(self, gift: GiftView, link: str, lang: str) -> Keyboard:
        share = f"{SHARE_URL}?url={quote(link, safe='')}&text={quote(self._(SHARE_TEXT, lang))}"
        return [
            [Button(self._(SHARE_BUTTON, lang), url=share)],
            [
                Button(
                    self._(TAKE_BACK_BUTTON, lang),
                    callback_data=self._take_back_callback(gift.id),
                )
            ],
        ]

    async def share_again(self, gift_id: int, buyer_id: int, lang: str) -> bool:
        """A new link for the buyer's pending gift, in their private chat; False when it is
        not theirs, not pending, or could not be sent."""
        pending = await self._gifts.pending_of(buyer_id)
        gift = next((g for g in pending if g.id == gift_id), None)
        if gift is None:
            return False
        try:
            return await self.send_link(gift, buyer_id, lang)
        except MessengerError as exc:
            log.warning("gift %s: link not sent again: %s", gift_id, exc)
            return False

    async def hand_over(self, gift: GiftView, user_id: int, lang: str) -> bool:
        """The QR of a gift that is now `user_id`'s (claimed, or kept by its buyer), in their
        private chat; the buyer hears of a claim. False when the QR could not be sent (it
        stays in /myesims)."""
        sent = await self._send_qr(gift, user_id, lang)
        if gift.status is GiftStatus.CLAIMED:
            await self._gifts.tell_buyer(self._messenger, gift)
        return sent

    async def _send_qr(self, gift: GiftView, user_id: int, lang: str) -> bool:
        esim = await self._myesims.esim(gift.esim.esim_id, user_id) if gift.esim else None
        photo = await self._myesims.qr_photo(esim, lang) if esim is not None else None
        if photo is None:
            log.warning("gift %s: no QR to send to user %s", gift.id, user_id)
            return False
        try:
            await self._messenger.send_photo(user_id, photo.png, photo.caption, photo.keyboard)
        except MessengerError as exc:
            log.warning("gift %s: QR not sent to user %s: %s", gift.id, user_id, exc)
            return False
        return True
