"""Gifts: an eSIM bought for someone else, handed over by a single-use claim link.

The link carries a random token (144 bits); only its SHA-256 is stored and neither is logged. A
new link replaces the old one. Claiming moves the eSIM and the paid orders on it to the claimant
in one transaction, guarded on the gift still being pending: a second claimant, or a claim racing
the buyer taking the gift back, finds it settled. The gift row keeps who claimed it and when.
"""

from __future__ import annotations

import enum
import hashlib
import html
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import Gift, GiftStatus, Order, OrderStatus, User
from db.models.events import USER
from db.repositories.gifts import GiftRepository
from db.repositories.orders import OrderRepository
from services.i18n import N_, Translator, normalize_language
from services.messenger import Messenger
from services.notifications import Notifier
from services.orders import NEW
from services.pricing import Price

log = logging.getLogger(__name__)

TOKEN_BYTES = 18  # 144 bits, 24 characters of A–Z a–z 0–9 _ -
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{24}")

GIFT_CLAIMED_TEXT = N_("🎁 Your gift {plan} has been claimed by {name}. It is theirs now.")
GIFT_CLAIMED_ANONYMOUS_TEXT = N_("🎁 Your gift {plan} has been claimed. It is theirs now.")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ClaimOutcome(enum.StrEnum):
    CLAIMED = "claimed"  # the eSIM is the claimant's now: send them the QR
    ALREADY_YOURS = "already_yours"  # this user claimed it before
    TAKEN = "taken"  # someone else claimed it first
    TAKEN_BACK = "taken_back"  # the buyer kept it
    OWN_GIFT = "own_gift"  # the buyer opened their own link
    NOT_READY = "not_ready"  # its eSIM is not delivered yet, or was deleted
    REFUNDED = "refunded"  # its sender's money went back (or is owed back): never claimable
    UNKNOWN = "unknown"  # no such link: forged, mistyped, or replaced by a newer one


class TakeBackOutcome(enum.StrEnum):
    KEPT = "kept"  # the gift is the buyer's own eSIM again: send them the QR
    ALREADY_KEPT = "already_kept"
    ALREADY_CLAIMED = "already_claimed"  # too late: someone claimed it
    NOT_FOUND = "not_found"  # no such gift of this buyer


@dataclass(frozen=True, slots=True)
class GiftedEsim:
    """What the QR and the manual codes are made of."""

    esim_id: int
    iccid: str
    lpa: str | None
    smdp_address: str | None
    matching_id: str | None


@dataclass(frozen=True, slots=True)
class GiftView:
    id: int
    order_id: int
    order_public_id: str
    buyer_id: int
    status: GiftStatus
    bundle_name: str
    country_code: str | None
    country_name: str | None
    price: Price
    claimed_by: int | None
    claimed_at: datetime | None
    esim: GiftedEsim | None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    outcome: ClaimOutcome
    gift: GiftView | None = None


@dataclass(frozen=True, slots=True)
class TakeBackResult:
    outcome: TakeBackOutcome
    gift: GiftView | None = None


def _settled(gift: Gift, user_id: int) -> ClaimOutcome | None:
    """How a claim of a gift that is not open to this user ends; None when it is open."""
    if gift.status == GiftStatus.CLAIMED.value:
        return ClaimOutcome.ALREADY_YOURS if gift.claimed_by == user_id else ClaimOutcome.TAKEN
    if gift.status == GiftStatus.TAKEN_BACK.value:
        return ClaimOutcome.TAKEN_BACK
    if gift.buyer_id == user_id:
        return ClaimOutcome.OWN_GIFT
    return None


class GiftService:
    """Register, link, claim and take back gifts; every change commits here."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        translator: Translator,
        *,
        default_language: str = "en",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._notifier = notifier
        self._translator = translator
        self._default_language = default_language
        self._clock = clock

    async def register(self, order_id: int, buyer_id: int) -> GiftView | None:
        """Mark the buyer's order for a new eSIM as a gift (again: no change); None for someone
        else's order or a top-up."""
        async with self._session_factory() as session:
            order = await OrderRepository(session).get(order_id)
            if order is None or order.telegram_user_id != buyer_id or order.kind != NEW:
                return None
            repo = GiftRepository(session)
            gift = await repo.by_order(order_id)
            if gift is None:
                try:
                    gift = await repo.add(order_id, buyer_id, self._clock())
                    await session.commit()
                except IntegrityError:  # registered at the same moment (a double tap)
                    await session.rollback()
                    gift = await repo.by_order(order_id)
                    assert gift is not None
            return await _view(session, gift)

    async def register_order(self, public_id: str, buyer_id: int) -> GiftView | None:
        """`register` for the order a button names by its public id; None when it is not the
        buyer's new-eSIM order still awaiting payment."""
        async with self._session_factory() as session:
            order = await OrderRepository(session).by_public_id(public_id)
        if order is None or order.status != OrderStatus.AWAITING_PAYMENT.value:
            return None
        return await self.register(order.id, buyer_id)

    async def pending_gift(self, buyer_id: int, iccid: str | None) -> GiftView | None:
        """The buyer's unclaimed gift on this eSIM, if it is one (its QR stays hidden)."""
        if not iccid:
            return None
        pending = await self.pending_of(buyer_id)
        return next((g for g in pending if g.esim is not None and g.esim.iccid == iccid), None)

    async def for_order(self, order_id: int) -> GiftView | None:
        """The gift an order was bought as, if any (delivery asks this)."""
        async with self._session_factory() as session:
            gift = await GiftRepository(session).by_order(order_id)
            return await _view(session, gift) if gift is not None else None

    async def pending_of(self, buyer_id: int) -> list[GiftView]:
        """The buyer's gifts nobody has claimed yet, newest first (for /myesims)."""
        async with self._session_factory() as session:
            gifts = await GiftRepository(session).pending_of(buyer_id)
            return [await _view(session, gift) for gift in gifts]

    async def issue_link(self, order_id: int) -> str | None:
        """A new claim token for a delivered, pending gift (any older link stops working)."""
        token = new_token()
        async with self._session_factory() as session:
            repo = GiftRepository(session)
            gift = await repo.by_order(order_id)
            order = await OrderRepository(session).get(order_id)
            if gift is None or order is None or not _delivered(order):
                return None
            if not await repo.set_token_hash(gift.id, token_hash(token), self._clock()):
                return None
            await session.commit()
        log.info("gift %s (order %s): claim link issued", gift.id, order.public_id)
        return token

    async def claim(
        self, token: str, claimant_id: int, language: str | None = None
    ) -> ClaimResult:
        """Give the gift behind `token` to the claimant, unless it is settled already;
        `language` is theirs when the bot has not stored them yet (a first /start)."""
        if not TOKEN_PATTERN.fullmatch(token):
            return ClaimResult(ClaimOutcome.UNKNOWN)
        async with self._session_factory() as session:
            repo = GiftRepository(session)
            gift = await repo.by_token_hash(token_hash(token))
            if gift is None:
                return ClaimResult(ClaimOutcome.UNKNOWN)
            if settled := _settled(gift, claimant_id):
                return ClaimResult(settled, await _view(session, gift))
            order = await OrderRepository(session).get(gift.order_id)
            if order is not None and order.status in _REFUND_STATES:
                return ClaimResult(ClaimOutcome.REFUNDED, await _view(session, gift))
            if order is None or not _delivered(order):
                return ClaimResult(ClaimOutcome.NOT_READY, await _view(session, gift))
            # A rollback expires every loaded object: keep the ids apart.
            gift_id, public_id = gift.id, order.public_id
            outcome = await self._move(
                session, gift_id, gift.buyer_id, order, claimant_id, language
            )
            if outcome is ClaimOutcome.CLAIMED:
                await session.commit()
                log.info("gift %s (order %s) claimed by %s", gift_id, public_id, claimant_id)
            else:
                await session.rollback()
            fresh = await repo.by_id(gift_id)
            assert fresh is not None
            return ClaimResult(outcome, await _view(session, fresh))

    async def _move(
        self,
        session: AsyncSession,
        gift_id: int,
        buyer_id: int,
        order: Order,
        claimant_id: int,
        known_language: str | None,
    ) -> ClaimOutcome:
        """The one transition: gift pending → claimed, then the eSIM and its paid orders."""
        repo = GiftRepository(session)
        now = self._clock()
        iccid, order_id = order.iccid, order.id
        assert iccid is not None
        through = await repo.last_paid_order_id(iccid, buyer_id) or order_id
        won = await repo.finish(
            gift_id, GiftStatus.CLAIMED, by=claimant_id, at=now, iccid=iccid, moved_through=through
        )
        if not won:
            await session.rollback()
            fresh = await repo.by_id(gift_id)
            assert fresh is not None
            return _settled(fresh, claimant_id) or ClaimOutcome.NOT_READY
        if not await repo.move_esim(iccid, buyer_id, claimant_id, now):
            log.warning("gift %s: eSIM %s is not the buyer's any more", gift_id, iccid)
            return ClaimOutcome.NOT_READY
        claimant = await session.get(User, claimant_id)
        chosen = (claimant.language or claimant.telegram_language) if claimant else known_language
        language = normalize_language(chosen, self._default_language)
        moved = await repo.move_orders(
            iccid,
            buyer_id,
            through,
            claimant_id,
            username=claimant.username if claimant is not None else None,
            language=language,
            now=now,
        )
        if moved is None:
            return ClaimOutcome.NOT_READY  # the caller rolls the whole claim back
        # The change of owner is in each order's history (its status stays as it was).
        steps = [(moved_id, status, status) for moved_id, status in moved]
        await OrderRepository(session).add_events(steps, USER, f"gift claimed by {claimant_id}")
        return ClaimOutcome.CLAIMED

    async def take_back(self, gift_id: int, buyer_id: int) -> TakeBackResult:
        """The buyer keeps a gift nobody has claimed: its link stops working."""
        async with self._session_factory() as session:
            repo = GiftRepository(session)
            gift = await repo.by_id(gift_id)
            if gift is None or gift.buyer_id != buyer_id:
                return TakeBackResult(TakeBackOutcome.NOT_FOUND)
            order = await OrderRepository(session).get(gift.order_id)
            assert order is not None  # a foreign key
            now = self._clock()
            won = await repo.finish(
                gift.id,
                GiftStatus.TAKEN_BACK,
                by=buyer_id,
                at=now,
                iccid=order.iccid,
                moved_through=None,
            )
            await session.commit()
            fresh = await repo.by_id(gift.id)
            assert fresh is not None
            view = await _view(session, fresh)
        if won:
            log.info("gift %s (order %s) taken back by its buyer", gift.id, order.public_id)
            return TakeBackResult(TakeBackOutcome.KEPT, view)
        if fresh.status == GiftStatus.CLAIMED.value:
            return TakeBackResult(TakeBackOutcome.ALREADY_CLAIMED, view)
        return TakeBackResult(TakeBackOutcome.ALREADY_KEPT, view)

    async def payer_of(self, order: Order) -> int:
        """Who paid for the order: a Stars refund must go to them, not to a gift's claimant."""
        async with self._session_factory() as session:
            return await GiftRepository(session).payer_id(order)

    async def tell_buyer(self, messenger: Messenger, gift: GiftView) -> bool:
        """Tell the buyer, once, that their gift was claimed (and by whom, if we know a name)."""
        if gift.status != GiftStatus.CLAIMED or gift.claimed_by is None:
            return False
        who = await self._notifier.recipient(gift.buyer_id)
        async with self._session_factory() as session:
            claimant = await session.get(User, gift.claimed_by)
        name = claimant.first_name if claimant is not None else None
        plan = self._notifier.bundle_label(gift.bundle_name, who.language)
        if name:
            text = self._translator.gettext(GIFT_CLAIMED_TEXT, who.language)
            text = text.format(plan=plan, name=html.escape(name))
        else:
            text = self._translator.gettext(GIFT_CLAIMED_ANONYMOUS_TEXT, who.language)
            text = text.format(plan=plan)
        key = f"gift:{gift.id}:claimed"
        return await self._notifier.send_once(messenger, key=key, recipient=who, text=text)


@dataclass(frozen=True, slots=True)
class Payer:
    """Who paid for an order, where to tell them and in which language."""

    user_id: int
    chat_id: int
    language: str


async def order_payer(session: AsyncSession, order: Order) -> Payer:
    """The payer of an order: its owner, unless a claimed gift moved it to its claimant; then
    the buyer, told in their own private chat and language (refunds go back to them)."""
    gift = await GiftRepository(session).payer_gift(order)
    if gift is None:
        return Payer(order.telegram_user_id, order.chat_id, order.language)
    buyer = await session.get(User, gift.buyer_id)
    chosen = (buyer.language or buyer.telegram_language) if buyer is not None else None
    return Payer(gift.buyer_id, gift.buyer_id, normalize_language(chosen))


# A gift whose sender's money went back (or is owed back by hand) is gone for good.
_REFUND_STATES = frozenset({OrderStatus.REFUNDED.value, OrderStatus.REFUND_DUE.value})


def _delivered(order: Order) -> bool:
    return order.status == OrderStatus.DELIVERED.value and order.iccid is not None


async def _view(session: AsyncSession, gift: Gift) -> GiftView:
    repo = OrderRepository(session)
    order = await repo.get(gift.order_id)
    assert order is not None  # a foreign key
    esim = await repo.esim_by_iccid(order.iccid) if order.iccid else None
    codes = (
        GiftedEsim(esim.id, esim.iccid, esim.lpa, esim.smdp_address, esim.matching_id)
        if esim is not None
        else None
    )
    return GiftView(
        id=gift.id,
        order_id=order.id,
        order_public_id=order.public_id,
        buyer_id=gift.buyer_id,
        status=GiftStatus(gift.status),
        bundle_name=order.bundle_name,
        country_code=order.country_code,
        country_name=order.country_name,
        price=Price(order.price, order.price_currency),
        claimed_by=gift.claimed_by,
        claimed_at=gift.claimed_at,
        esim=codes,
    )
