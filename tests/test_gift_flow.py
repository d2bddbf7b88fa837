"""Buying an eSIM for someone else, through the real dispatcher: "Buy as a gift", the claim link
delivered instead of the QR, claimed by another user (who then owns it in /myesims and gets its
notifications), a second claim refused, the buyer taking a gift back; refunds go to the payer."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from aiogram.types import User
from sqlalchemy import select, update

from bot.app import create_fulfilment_worker
from db.base import utcnow
from db.models import Esim, Order, OrderEvent, OrderStatus
from handlers.callbacks import BundleCallback
from services.admin.order_rules import OrderAction
from services.self_refund import CLAIM_PREFIX, RefundVerdict, SelfRefunds
from tests.fakes.telegram import ApiCall, StoredMessage
from tests.helpers import (
    ADMIN_ID,
    BotEnv,
    make_user,
    pre_checkout_update,
    successful_payment_update,
)

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL.
ON_EVERY_DATABASE = True

GB = "esim_1GB_7D_GB_V2"
ANNA = make_user(1001, first_name="Anna", username="anna")
BORIS = make_user(2002, language_code="ru", first_name="Борис", username="boris")
CAROL = make_user(3003, first_name="Carol", username="carol")
LINK = re.compile(r"https://t\.me/esim_test_bot\?start=(g[A-Za-z0-9_-]{24})")


async def buy_as_gift(env: BotEnv, buyer: User, charge_id: str = "charge-gift-1") -> str:
    """The buyer pays for a UK eSIM as a gift and the worker delivers it; returns the start
    parameter of the claim link the buyer got."""
    await env.send(buyer, "/start")
    await env.press(buyer, BundleCallback(action="show", bundle=GB, iso="GB"))
    await env.tap(buyer, "🛒")
    await env.tap(buyer, "Buy as a gift")
    gift_screen = env.screen(buyer).text or ""
    assert "Buy as a gift" in gift_screen and "a link instead of the QR code" in gift_screen
    calls = await env.tap(buyer, "💳")
    (invoice,) = [c for c in calls if c.method == "sendInvoice"]
    await _pay(env, buyer, invoice, charge_id)
    assert await create_fulfilment_worker(env.deps).run_once() >= 1
    found = LINK.search(env.screen(buyer).text or "")
    assert found, env.screen(buyer).text
    return found.group(1)


async def _pay(env: BotEnv, user: User, invoice: ApiCall, charge_id: str) -> None:
    payload = str(invoice.params["payload"])
    amount = sum(int(p["amount"]) for p in invoice.params["prices"])
    await env.feed(pre_checkout_update(user, payload=payload, total_amount=amount))
    await env.feed(
        successful_payment_update(user, payload=payload, total_amount=amount, charge_id=charge_id)
    )


def photos_to(env: BotEnv, user: User) -> list[ApiCall]:
    return [c for c in env.fake_telegram.calls_to("sendPhoto") if c.params["chat_id"] == user.id]


def copy_texts(markup: Any) -> list[str]:
    rows = (markup or {}).get("inline_keyboard") or []
    return [b["copy_text"]["text"] for row in rows for b in row if "copy_text" in b]


async def the_esim(env: BotEnv) -> Esim:
    async with env.deps.session_factory() as session:
        return (await session.execute(select(Esim))).scalar_one()


async def open_my_esim(env: BotEnv, user: User) -> StoredMessage:
    await env.send(user, "/myesims")
    esim = await the_esim(env)
    await env.tap(user, "United Kingdom" if user.language_code == "en" else "Великобритания")
    assert esim.iccid in (env.screen(user).text or "")
    return env.screen(user)


async def test_a_gift_is_paid_shared_claimed_and_then_its_claimants(bot_env: BotEnv) -> None:
    env = bot_env
    parameter = await buy_as_gift(env, ANNA)

    # The buyer got a claim link and a share button, not the QR.
    assert photos_to(env, ANNA) == []
    delivered = env.screen(ANNA)
    assert "Your gift is ready" in (delivered.text or "")
    share = urlparse(delivered.button("Share the gift")["url"])
    assert (share.netloc, share.path) == ("t.me", "/share/url")
    assert parse_qs(share.query)["url"] == [f"https://t.me/esim_test_bot?start={parameter}"]
    # Until it is claimed it sits in the buyer's /myesims, marked, its QR kept back.
    await env.send(ANNA, "/myesims")
    assert "a gift, not claimed yet" in (env.screen(ANNA).text or "")
    card = await open_my_esim(env, ANNA)
    assert "nobody has claimed yet" in (card.text or "")
    assert not any("Show QR" in t for t in card.button_texts())
    assert card.button("Share link again") and card.button("Take back")

    # Boris opens the link in his own chat: the eSIM is his, QR and install help included.
    await env.send(BORIS, f"/start {parameter}")
    claimed = [m for m in env.fake_telegram.chat(BORIS.id) if m.from_bot]
    assert "Теперь эта eSIM ваша" in (claimed[0].text or "")
    (photo,) = photos_to(env, BORIS)
    esim = await the_esim(env)
    assert esim.telegram_user_id == BORIS.id and esim.iccid in str(photo.params["caption"])
    assert copy_texts(photo.params["reply_markup"]) == [esim.smdp_address, esim.matching_id]
    assert "инструкция" in str(photo.params["reply_markup"])  # the install steps, in Russian
    told = env.fake_telegram.last_bot_message(ANNA.id).text or ""
    assert told.startswith("🎁 Your gift 🇬🇧 United Kingdom · 1 GB · 7 days has been claimed")

    # It is in Boris's /myesims, gone from Anna's.
    await open_my_esim(env, BORIS)
    await env.tap(BORIS, "Показать QR")
    again = photos_to(env, BORIS)[-1]
    assert copy_texts(again.params["reply_markup"]) == [esim.smdp_address, esim.matching_id]
    await env.send(ANNA, "/myesims")
    assert "no eSIMs yet" in (env.screen(ANNA).text or "")

    # Its notifications reach Boris now, in Russian.
    env.fake_esimgo.install(esim.iccid)
    assert await env.deps.tracking.poll_esim(esim.iccid, env.deps.messenger)
    installed = env.fake_telegram.last_bot_message(BORIS.id).text or ""
    assert installed.startswith("✅ Ваша eSIM установлена")
    assert not env.error_logs


async def test_a_second_claim_is_refused_and_the_first_claimant_keeps_it(bot_env: BotEnv) -> None:
    env = bot_env
    parameter = await buy_as_gift(env, ANNA)
    await env.send(BORIS, f"/start {parameter}")

    await env.send(CAROL, f"/start {parameter}")
    assert "already claimed this gift" in (env.screen(CAROL).text or "")
    assert photos_to(env, CAROL) == []
    await env.send(BORIS, f"/start {parameter}")
    assert "уже ваш" in (env.screen(BORIS).text or "")
    assert len(photos_to(env, BORIS)) == 1
    # A forged or mistyped link claims nothing.
    await env.send(CAROL, "/start g" + "A" * 24)
    assert "does not work" in (env.screen(CAROL).text or "")
    assert (await the_esim(env)).telegram_user_id == BORIS.id


async def test_the_buyer_takes_a_gift_back_and_the_link_stops_working(bot_env: BotEnv) -> None:
    env = bot_env
    old = await buy_as_gift(env, ANNA)
    # A new link replaces the old one.
    await open_my_esim(env, ANNA)
    await env.tap(ANNA, "Share link again")
    new = LINK.search(env.screen(ANNA).text or "")
    assert new and new.group(1) != old

    await env.tap(ANNA, "Take it back")
    assert "Take the gift back?" in (env.screen(ANNA).text or "")
    await env.tap(ANNA, "Yes, take it back")

    assert len(photos_to(env, ANNA)) == 1  # now the QR, for her own phone
    await env.send(BORIS, f"/start {new.group(1)}")
    assert "отправитель оставил его себе" in (env.screen(BORIS).text or "")
    await env.send(BORIS, f"/start {old}")
    assert "не работает" in (env.screen(BORIS).text or "")
    card = await open_my_esim(env, ANNA)
    assert card.button("Show QR again")
    assert (await the_esim(env)).telegram_user_id == ANNA.id


async def test_the_doctor_never_hands_an_unclaimed_gifts_install_links_to_its_buyer(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    await buy_as_gift(env, ANNA)
    await open_my_esim(env, ANNA)

    await env.tap(ANNA, "It doesn't work")  # the eSIM is not installed: the doctor says so

    screen = env.screen(ANNA)
    urls = [str(b.get("url")) for b in screen.buttons() if b.get("url")]
    assert not [u for u in urls if "esimsetup" in u], f"install links (with the LPA): {urls}"
    assert not any("QR" in text for text in screen.button_texts())
    assert "gift waiting to be claimed" in (screen.text or "")
    esim = await the_esim(env)
    assert esim.matching_id not in (screen.text or "")


async def _self_refund(env: BotEnv) -> None:
    await open_my_esim(env, ANNA)
    await env.tap(ANNA, "Refund")
    await env.tap(ANNA, "Yes, refund")
    assert "Refunded." in (env.screen(ANNA).text or "")


async def _admin_refund(env: BotEnv) -> None:
    async with env.deps.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
    actions = env.deps.admin.actions
    assert (await actions.perform(OrderAction.REFUND, order.public_id, ADMIN_ID)).done


@pytest.mark.parametrize("refund", [_self_refund, _admin_refund], ids=["buyer", "admin"])
async def test_a_refunded_gift_can_no_longer_be_claimed(
    bot_env: BotEnv, refund: Callable[[BotEnv], Awaitable[None]]
) -> None:
    env = bot_env
    parameter = await buy_as_gift(env, ANNA)
    await refund(env)

    await env.send(CAROL, f"/start {parameter}")

    answer = env.screen(CAROL).text or ""
    assert "no longer available" in answer and "refunded" in answer, answer
    assert photos_to(env, CAROL) == []
    assert (await the_esim(env)).telegram_user_id == ANNA.id


async def hold_by_a_self_refund(env: BotEnv, name: str, runs_out_in: timedelta) -> None:
    """Every order under a self-refund's claim `name`, running out `runs_out_in` from now."""
    async with env.deps.session_factory() as session:
        await session.execute(
            update(Order).values(
                lease_owner=f"{CLAIM_PREFIX}{name}", lease_until=utcnow() + runs_out_in
            )
        )
        await session.commit()


async def test_a_gift_its_buyer_is_refunding_cannot_be_claimed_meanwhile(bot_env: BotEnv) -> None:
    env = bot_env
    parameter = await buy_as_gift(env, ANNA)
    # Anna's self-refund is under way (revoking the plan): its claim holds the order.
    await hold_by_a_self_refund(env, "under-way", timedelta(minutes=5))

    await env.send(CAROL, f"/start {parameter}")

    assert "cannot be claimed right now" in (env.screen(CAROL).text or "")
    assert (await the_esim(env)).telegram_user_id == ANNA.id, "claimed while being refunded"
    assert photos_to(env, CAROL) == []


async def test_a_refund_that_crashed_long_ago_does_not_hold_the_gift(bot_env: BotEnv) -> None:
    env = bot_env
    parameter = await buy_as_gift(env, ANNA)
    # A self-refund's claim left by a process that died, long run out.
    await hold_by_a_self_refund(env, "crashed", -timedelta(minutes=5))

    await env.send(CAROL, f"/start {parameter}")

    assert (await the_esim(env)).telegram_user_id == CAROL.id
    assert len(photos_to(env, CAROL)) == 1


async def test_a_claim_is_in_the_orders_history_the_admin_reads(bot_env: BotEnv) -> None:
    env = bot_env
    parameter = await buy_as_gift(env, ANNA)
    await env.send(BORIS, f"/start {parameter}")
    async with env.deps.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
        events = (
            await session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id))
        ).all()
    claims = [e for e in events if e.note == f"gift claimed by {BORIS.id}"]
    assert len(claims) == 1, f"no event for the claim in {[(e.actor, e.note) for e in events]}"
    (claim,) = claims
    assert (claim.from_status, claim.to_status, claim.actor) == ("delivered", "delivered", "user")

    admin = make_user(ADMIN_ID, first_name="Admin")
    await env.send(admin, f"/order {order.public_id}")
    assert f"delivered → delivered by user — gift claimed by {BORIS.id}" in (
        env.screen(admin).text or ""
    )


async def test_a_claimed_gift_is_refunded_to_its_buyer_never_by_its_claimant(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    parameter = await buy_as_gift(env, ANNA, charge_id="charge-gift-7")
    await env.send(BORIS, f"/start {parameter}")
    async with env.deps.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert order.telegram_user_id == BORIS.id  # his now, but Anna's money

    # Boris cannot refund what he did not pay for.
    refunds = SelfRefunds(
        env.deps.session_factory,
        env.deps.esimgo,
        env.deps.messenger,
        env.deps.alerts,
        days=7,
    )
    esim = await the_esim(env)
    assert await refunds.offers(BORIS.id, esim.id) == []
    assert (await refunds.refund(BORIS.id, order.id)).verdict is RefundVerdict.NOT_REFUNDABLE

    # An admin's refund goes to Anna, who is told; Boris hears nothing of money.
    actions = env.deps.admin.actions
    assert (await actions.perform(OrderAction.REFUND, order.public_id, ADMIN_ID)).done
    (refund,) = env.fake_telegram.calls_to("refundStarPayment")
    assert (refund.params["user_id"], refund.params["telegram_payment_charge_id"]) == (
        ANNA.id,
        "charge-gift-7",
    )
    assert "has been refunded" in (env.fake_telegram.last_bot_message(ANNA.id).text or "")


async def test_a_failed_top_up_that_followed_a_gift_is_refunded_to_its_payer(
    bot_env: BotEnv,
) -> None:
    """Anna paid for a top-up of the gift's eSIM; Boris claimed it before the top-up was done
    (the paid order followed the eSIM to him); the top-up failed: Anna gets her Stars back."""
    env = bot_env
    parameter = await buy_as_gift(env, ANNA)
    esim = await the_esim(env)
    now = utcnow()
    async with env.deps.session_factory() as session:
        gift_order = (await session.execute(select(Order))).scalar_one()
        session.add(
            Order(
                public_id="TOPUPGIFT1",
                telegram_user_id=ANNA.id,
                chat_id=ANNA.id,
                language="en",
                kind="topup",
                bundle_name="esim_2GB_15D_GB_V2",
                country_code="GB",
                cost=gift_order.cost,
                price=80,
                price_currency="XTR",
                status=OrderStatus.PAID.value,
                iccid=esim.iccid,
                telegram_payment_charge_id="charge-topup-1",
                paid_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()
    env.fake_telegram.record_star_payment(ANNA.id, "charge-topup-1")  # Telegram took her Stars
    await env.send(BORIS, f"/start {parameter}")
    async with env.deps.session_factory() as session:
        await session.execute(
            update(Order)
            .where(Order.public_id == "TOPUPGIFT1")
            .values(status=OrderStatus.FAILED.value, next_attempt_at=now)
        )
        await session.commit()
        topup = (
            await session.execute(select(Order).where(Order.public_id == "TOPUPGIFT1"))
        ).scalar_one()
    assert topup.telegram_user_id == BORIS.id

    assert await create_fulfilment_worker(env.deps).run_once() >= 1

    (refund,) = env.fake_telegram.calls_to("refundStarPayment")
    assert refund.params["user_id"] == ANNA.id
    told = env.fake_telegram.last_bot_message(ANNA.id).text or ""
    assert "TOPUPGIFT1" in told and "has been refunded" in told
