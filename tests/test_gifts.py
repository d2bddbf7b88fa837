"""Gifts: a single-use claim link moves the eSIM (with its orders and notifications) to whoever
opens it first; a second claimant is refused; the buyer can take it back until it is claimed."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from db.models import Esim, Gift, GiftStatus, Order, OrderStatus
from db.repositories.esims import MyEsimsRepository
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.gifts import TOKEN_PATTERN, ClaimOutcome, GiftService, TakeBackOutcome
from services.i18n import Translator
from services.notifications import Notifier
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram
from tests.reach_helpers import (
    Seeded,
    add_order,
    add_user,
    synced_catalogue,
    telegram_messenger,
)

BUYER, BOB, CAROL = 1001, 2002, 3003
ICCID = "8944538532008160555"


@pytest.fixture
async def messenger(fake_telegram: FakeTelegram) -> AsyncIterator[AiogramMessenger]:
    async with telegram_messenger(fake_telegram) as messenger:
        yield messenger


@pytest.fixture
async def catalogue(
    fake_esimgo: FakeEsimGo, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[CatalogueService]:
    async with synced_catalogue(fake_esimgo, session_factory) as catalogue:
        yield catalogue


@pytest.fixture
def notifier(
    session_factory: async_sessionmaker[AsyncSession], catalogue: CatalogueService
) -> Notifier:
    return Notifier(session_factory, Translator(), catalogue, AdminAlerts(session_factory, ()))


@pytest.fixture
def gifts(session_factory: async_sessionmaker[AsyncSession], notifier: Notifier) -> GiftService:
    return GiftService(session_factory, notifier, Translator())


@pytest.fixture
async def gift_order(session_factory: async_sessionmaker[AsyncSession]) -> Seeded:
    """Anna bought a UK eSIM as a gift and it was delivered; Bob and Carol have used the bot."""
    await add_user(session_factory, BUYER, language="en", first_name="Anna")
    await add_user(session_factory, BOB, language="ru", first_name="Борис", username="bob")
    await add_user(session_factory, CAROL, language="en", first_name="Carol")
    return await add_order(session_factory, user_id=BUYER, iccid=ICCID)


async def _owner(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        esim = (await session.execute(select(Esim).where(Esim.iccid == ICCID))).scalar_one()
        return esim.telegram_user_id


async def test_a_claimed_gift_becomes_the_claimants_with_its_history_and_notifications(
    session_factory: async_sessionmaker[AsyncSession],
    gifts: GiftService,
    notifier: Notifier,
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
    gift_order: Seeded,
) -> None:
    registered = await gifts.register(gift_order.order_id, BUYER)
    assert registered is not None and registered.status is GiftStatus.PENDING
    token = await gifts.issue_link(gift_order.order_id)
    assert token is not None and TOKEN_PATTERN.fullmatch(token)

    claimed = await gifts.claim(token, BOB)

    assert claimed.outcome is ClaimOutcome.CLAIMED
    gift = claimed.gift
    assert gift is not None and gift.claimed_by == BOB and gift.claimed_at is not None
    assert gift.esim is not None and gift.esim.lpa == f"LPA:1$rsp.fake-esimgo.test$M-{ICCID}"
    async with session_factory() as session:
        mine = MyEsimsRepository(session)
        assert [e.iccid for e in await mine.esims(BOB)] == [ICCID]
        assert await mine.esims(BUYER) == []
        (order,) = await mine.orders(BOB)
        assert await mine.orders(BUYER) == []
        row = (await session.execute(select(Gift))).scalar_one()
    assert (order.chat_id, order.language, order.telegram_username) == (BOB, "ru", "bob")
    # Who claimed it and when stays on record; a Stars refund would still go to the buyer.
    assert (row.status, row.claimed_by, row.claimed_at) == ("claimed", BOB, gift.claimed_at)
    assert await gifts.payer_of(order) == BUYER

    # The buyer is told once; the eSIM's notifications now reach Bob, in Russian.
    assert await gifts.tell_buyer(messenger, gift)
    assert not await gifts.tell_buyer(messenger, gift)
    told = fake_telegram.last_bot_message(BUYER)
    assert (
        told.text == "🎁 Your gift 🇬🇧 United Kingdom · 1 GB · 7 days has been claimed by Борис. "
        "It is theirs now."
    )
    async with session_factory() as session:
        esim = (await session.execute(select(Esim).where(Esim.iccid == ICCID))).scalar_one()
    esim.profile_status = "Installed"
    assert await notifier.evaluate(messenger, esim, []) == [f"esim:{ICCID}:installed"]
    assert (fake_telegram.last_bot_message(BOB).text or "").startswith("✅ Ваша eSIM установлена")


async def test_a_second_claimant_is_told_the_gift_was_taken(
    session_factory: async_sessionmaker[AsyncSession], gifts: GiftService, gift_order: Seeded
) -> None:
    await gifts.register(gift_order.order_id, BUYER)
    token = await gifts.issue_link(gift_order.order_id)
    assert token is not None
    assert (await gifts.claim(token, BOB)).outcome is ClaimOutcome.CLAIMED

    assert (await gifts.claim(token, CAROL)).outcome is ClaimOutcome.TAKEN
    assert (await gifts.claim(token, BOB)).outcome is ClaimOutcome.ALREADY_YOURS
    assert (await gifts.claim(token, BUYER)).outcome is ClaimOutcome.TAKEN
    assert await _owner(session_factory) == BOB
    taken_back = await gifts.take_back(gift_order.order_id, BUYER)
    assert taken_back.outcome is TakeBackOutcome.ALREADY_CLAIMED


async def test_two_claims_at_the_same_moment_have_one_winner(
    session_factory: async_sessionmaker[AsyncSession], gifts: GiftService, gift_order: Seeded
) -> None:
    await gifts.register(gift_order.order_id, BUYER)
    token = await gifts.issue_link(gift_order.order_id)
    assert token is not None

    results = await asyncio.gather(gifts.claim(token, BOB), gifts.claim(token, CAROL))

    outcomes = sorted(r.outcome for r in results)
    assert outcomes == sorted([ClaimOutcome.CLAIMED, ClaimOutcome.TAKEN])
    winner = next(r for r in results if r.outcome is ClaimOutcome.CLAIMED)
    assert winner.gift is not None
    assert await _owner(session_factory) == winner.gift.claimed_by


async def test_the_buyer_can_take_a_gift_back_until_it_is_claimed(
    session_factory: async_sessionmaker[AsyncSession], gifts: GiftService, gift_order: Seeded
) -> None:
    gift = await gifts.register(gift_order.order_id, BUYER)
    assert gift is not None
    token = await gifts.issue_link(gift_order.order_id)
    assert token is not None
    assert [g.id for g in await gifts.pending_of(BUYER)] == [gift.id]
    # Opening their own link changes nothing: it is still to be shared (or taken back).
    assert (await gifts.claim(token, BUYER)).outcome is ClaimOutcome.OWN_GIFT
    assert (await gifts.take_back(gift.id, BOB)).outcome is TakeBackOutcome.NOT_FOUND

    kept = await gifts.take_back(gift.id, BUYER)

    assert kept.outcome is TakeBackOutcome.KEPT
    assert kept.gift is not None and kept.gift.esim is not None  # the QR to send the buyer
    assert (await gifts.claim(token, BOB)).outcome is ClaimOutcome.TAKEN_BACK
    assert await _owner(session_factory) == BUYER
    assert await gifts.pending_of(BUYER) == []
    assert (await gifts.take_back(gift.id, BUYER)).outcome is TakeBackOutcome.ALREADY_KEPT
    assert await gifts.issue_link(gift_order.order_id) is None


async def test_a_new_link_replaces_the_old_and_no_token_reaches_the_logs(
    session_factory: async_sessionmaker[AsyncSession],
    gifts: GiftService,
    gift_order: Seeded,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await gifts.register(gift_order.order_id, BUYER)
    old = await gifts.issue_link(gift_order.order_id)
    new = await gifts.issue_link(gift_order.order_id)
    assert old is not None and new is not None and old != new

    assert (await gifts.claim(old, BOB)).outcome is ClaimOutcome.UNKNOWN
    for forged in ("A" * 24, "short", "", "x" * 200, new[:-1] + "!"):
        assert (await gifts.claim(forged, BOB)).outcome is ClaimOutcome.UNKNOWN
    assert (await gifts.claim(new, BOB)).outcome is ClaimOutcome.CLAIMED

    async with session_factory() as session:
        row = (await session.execute(select(Gift))).scalar_one()
    assert row.token_hash == hashlib.sha256(new.encode()).hexdigest()
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "claimed by" in logged  # the claim is logged, by gift id
    assert old not in logged and new not in logged


async def test_a_gift_not_delivered_yet_has_no_link_and_can_be_kept(
    session_factory: async_sessionmaker[AsyncSession], gifts: GiftService
) -> None:
    await add_user(session_factory, BUYER)
    paid = await add_order(session_factory, user_id=BUYER, status=OrderStatus.PAID)
    gift = await gifts.register(paid.order_id, BUYER)
    assert gift is not None and gift.esim is None
    assert await gifts.register(paid.order_id, BOB) is None  # not Bob's order
    assert (await gifts.register(paid.order_id, BUYER)) == gift  # a double tap: the same gift
    top_up = await add_order(session_factory, user_id=BUYER, kind="topup", iccid="8944")
    assert await gifts.register(top_up.order_id, BUYER) is None  # a plan for one's own eSIM

    assert await gifts.issue_link(paid.order_id) is None
    assert (await gifts.for_order(paid.order_id)) == gift
    assert (await gifts.take_back(gift.id, BUYER)).outcome is TakeBackOutcome.KEPT


async def test_paid_top_ups_follow_the_gift_and_unpaid_ones_stay_with_the_buyer(
    session_factory: async_sessionmaker[AsyncSession], gifts: GiftService, gift_order: Seeded
) -> None:
    topped = await add_order(
        session_factory,
        user_id=BUYER,
        kind="topup",
        iccid=ICCID,
        bundle="esim_2GB_15D_GB_V2",
        status=OrderStatus.DELIVERED,
    )
    unpaid = await add_order(
        session_factory,
        user_id=BUYER,
        kind="topup",
        iccid=ICCID,
        status=OrderStatus.AWAITING_PAYMENT,
    )
    await gifts.register(gift_order.order_id, BUYER)
    token = await gifts.issue_link(gift_order.order_id)
    assert token is not None
    assert (await gifts.claim(token, BOB)).outcome is ClaimOutcome.CLAIMED

    async with session_factory() as session:
        owners = {
            order.id: order.telegram_user_id for order in (await session.scalars(select(Order)))
        }
        top_up = await session.get(Order, topped.order_id)
    assert owners == {gift_order.order_id: BOB, topped.order_id: BOB, unpaid.order_id: BUYER}
    assert top_up is not None
    assert await gifts.payer_of(top_up) == BUYER
