"""Refund of an unused eSIM as the user meets it in /myesims, through the real dispatcher (on
SQLite and PostgreSQL: money moves): allowed, refused after install, after start, past the
window, revoked but the Stars refund failing, pressed twice — in English and Russian."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from aiogram.types import User
from sqlalchemy import select

from db.base import utcnow
from db.models import Esim, Order
from handlers.callbacks import RefundCallback
from tests.doctor_world import (
    ALICE,
    BOB,
    TH_1GB,
    TH_5GB,
    Purchase,
    bought,
    open_card,
    world_of,
)
from tests.fakes.telegram import StoredMessage
from tests.helpers import ADMIN_ID, BotEnv, answers, make_user

ON_EVERY_DATABASE = True
REVOKE = "DELETE /esims/{iccid}/bundles/{name}/assignments/{assignmentId}"
LANGUAGES = pytest.mark.parametrize("language", ["en", "ru"])
WORDS = {
    "en": {
        "refund": "Refund · 450 ⭐",
        "refund top-up": "Refund top-up · 450 ⭐",
        "yes": "Yes, refund 450 ⭐",
        "no": "No, keep it",
        "doctor": "It doesn't work",
        "my esims": "My eSIMs",
        "confirm": ("Refund this eSIM?", "never installed", "450 ⭐ can be refunded"),
        "confirm top-up": ("Refund this top-up?", "The plan has not started"),
        "refunded": ("Refunded.", "450 ⭐ is back on your Telegram balance."),
        "left list": "The eSIM has left your list.",
        "left esim": "The plan has left your eSIM.",
        "installed": "This eSIM has been installed on a phone, so it cannot be refunded",
        "started": "This plan has already started, so it cannot be refunded.",
        "past": ("An unused eSIM can be refunded until", "that time has passed"),
        "pending": "Our team will return 450 ⭐ to you shortly",
        "already": "This order has already been refunded.",
    },
    "ru": {
        "refund": "Вернуть деньги · 450 ⭐",
        "refund top-up": "Вернуть пополнение · 450 ⭐",
        "yes": "Да, вернуть 450 ⭐",
        "no": "Нет, оставить",
        "doctor": "Не работает",
        "my esims": "Мои eSIM",
        "confirm": ("Вернуть деньги за eSIM?", "ни разу не устанавливалась", "вернуть 450 ⭐"),
        "confirm top-up": ("Вернуть деньги за пополнение?", "Тариф не начался"),
        "refunded": ("Деньги возвращены.", "450 ⭐ снова на вашем балансе в Telegram."),
        "left list": "eSIM удалена из вашего списка.",
        "left esim": "Тариф снят с вашей eSIM.",
        "installed": "Эта eSIM уже установлена на телефон",
        "started": "Этот тариф уже начался, поэтому вернуть деньги нельзя.",
        "past": ("Неиспользованную eSIM можно было вернуть до", "этот срок прошёл"),
        "pending": "Наша команда скоро вернёт вам 450 ⭐",
        "already": "Деньги за этот заказ уже возвращены.",
    },
}


def said(screen: StoredMessage, *texts: str) -> bool:
    return all(text in (screen.text or "") for text in texts)


def star_refunds(env: BotEnv) -> list[tuple[int, str]]:
    return [
        (int(c.params["user_id"]), str(c.params["telegram_payment_charge_id"]))
        for c in env.fake_telegram.calls_to("refundStarPayment")
        if c.ok
    ]


async def order_status(env: BotEnv, order_id: int) -> str:
    async with env.deps.session_factory() as session:
        status = await session.scalar(select(Order.status).where(Order.id == order_id))
    return str(status)


async def ask(env: BotEnv, user: User, purchase: Purchase, language: str, button: str) -> int:
    """Open the eSIM's card and tap its Refund button; returns the message id."""
    screen_id = await open_card(env, user, purchase)
    await env.tap(user, WORDS[language][button], screen_id)
    return screen_id


@LANGUAGES
async def test_an_unused_esim_is_refunded_in_seconds(bot_env: BotEnv, language: str) -> None:
    words = WORDS[language]
    alice, purchase = await bought(bot_env, language)
    balance = bot_env.fake_esimgo.balance
    screen_id = await ask(bot_env, alice, purchase, language, "refund")
    assert said(bot_env.message(alice, screen_id), *words["confirm"])

    await bot_env.tap(alice, words["yes"], screen_id)

    screen = bot_env.message(alice, screen_id)
    assert said(screen, *words["refunded"], words["left list"])
    assert star_refunds(bot_env) == [(ALICE, purchase.charge)]
    bundle = bot_env.fake_esimgo.bundle(TH_5GB)
    assert bundle is not None
    assert bot_env.fake_esimgo.balance == balance + Decimal(str(bundle["price"]))
    assert await order_status(bot_env, purchase.order_id) == "refunded"
    body, _type = bot_env.deps.metrics.exposition()
    assert b'esimbot_orders_total{status="refunded"} 1.0' in body
    await bot_env.tap(alice, words["my esims"], screen_id)
    assert purchase.iccid not in (bot_env.message(alice, screen_id).text or "")
    assert not bot_env.error_logs


@LANGUAGES
async def test_keeping_it_changes_nothing(bot_env: BotEnv, language: str) -> None:
    alice, purchase = await bought(bot_env, language)
    screen_id = await ask(bot_env, alice, purchase, language, "refund")

    await bot_env.tap(alice, WORDS[language]["no"], screen_id)

    card = bot_env.message(alice, screen_id)
    assert purchase.iccid in (card.text or "") and card.button(WORDS[language]["refund"])
    assert bot_env.fake_esimgo.calls(REVOKE) == [] and star_refunds(bot_env) == []


@LANGUAGES
async def test_refused_once_the_esim_was_installed(bot_env: BotEnv, language: str) -> None:
    words = WORDS[language]
    alice, purchase = await bought(bot_env, language)
    screen_id = await ask(bot_env, alice, purchase, language, "refund")
    bot_env.fake_esimgo.install(purchase.iccid)  # while the confirmation was on the screen

    await bot_env.tap(alice, words["yes"], screen_id)

    assert said(bot_env.message(alice, screen_id), words["installed"])
    assert bot_env.fake_esimgo.calls(REVOKE) == [] and star_refunds(bot_env) == []
    assert await order_status(bot_env, purchase.order_id) == "delivered"
    await bot_env.tap(alice, words["doctor"], screen_id)  # the way to help from here
    assert f"…{purchase.iccid[-4:]}" in (bot_env.message(alice, screen_id).text or "")
    await age_last_read(bot_env, purchase)  # the card reads eSIM Go again: installed
    await open_card(bot_env, alice, purchase)
    assert words["refund"] not in " ".join(bot_env.screen(alice).button_texts())


async def age_last_read(env: BotEnv, purchase: Purchase) -> None:
    """The card's last read of eSIM Go is over a minute old: opening it reads again."""
    async with env.deps.session_factory() as session:
        esim = await session.get(Esim, purchase.esim_id)
        assert esim is not None and esim.last_polled_at is not None
        esim.last_polled_at -= timedelta(minutes=2)
        await session.commit()


@LANGUAGES
async def test_refused_once_the_top_ups_plan_started(bot_env: BotEnv, language: str) -> None:
    words = WORDS[language]
    alice, first = await bought(bot_env, language)
    fake = bot_env.fake_esimgo
    fake.install(first.iccid)
    fake.attach(first.iccid, "TH")
    fake.start_bundle(first.iccid, TH_5GB)
    topup = await world_of(bot_env).buy(TH_1GB, topup_of=first.iccid)
    screen_id = await ask(bot_env, alice, first, language, "refund top-up")
    assert said(bot_env.message(alice, screen_id), *words["confirm top-up"])
    fake.start_bundle(first.iccid, TH_1GB)

    await bot_env.tap(alice, words["yes"], screen_id)

    assert said(bot_env.message(alice, screen_id), words["started"])
    assert fake.calls(REVOKE) == [] and star_refunds(bot_env) == []
    assert await order_status(bot_env, topup.order_id) == "delivered"


@LANGUAGES
async def test_an_unused_top_up_is_refunded_and_the_esim_stays(
    bot_env: BotEnv, language: str
) -> None:
    words = WORDS[language]
    alice, first = await bought(bot_env, language)
    fake = bot_env.fake_esimgo
    fake.install(first.iccid)
    fake.attach(first.iccid, "TH")
    fake.start_bundle(first.iccid, TH_5GB)
    topup = await world_of(bot_env).buy(TH_1GB, topup_of=first.iccid)
    screen_id = await ask(bot_env, alice, first, language, "refund top-up")

    await bot_env.tap(alice, words["yes"], screen_id)

    assert said(bot_env.message(alice, screen_id), *words["refunded"], words["left esim"])
    assert star_refunds(bot_env) == [(ALICE, topup.charge)]
    await open_card(bot_env, alice, first)  # the eSIM is still there, its first plan in use
    assert first.iccid in (bot_env.screen(alice).text or "")
    assert not any("450" in text for text in bot_env.screen(alice).button_texts())


async def plan_states(env: BotEnv, iccid: str) -> dict[str, str]:
    """Each copy of a plan on the eSIM at eSIM Go, by its assignment reference."""
    return {a.reference: a.state for a in await env.deps.esimgo.get_esim_bundles(iccid)}


async def test_two_copies_of_one_plan_each_refund_revokes_its_own(bot_env: BotEnv) -> None:
    """A new eSIM with a plan, topped up with the same plan before either was used: refunding
    the top-up takes back the top-up's copy (not the oldest one, which a revoke by name takes),
    and refunding the eSIM then takes back the other: two revokes for two Stars refunds."""
    words = WORDS["en"]
    alice, first = await bought(bot_env)
    fake = bot_env.fake_esimgo
    topup = await world_of(bot_env).buy(TH_5GB, topup_of=first.iccid)
    balance = fake.balance
    mine, its = f"{first.reference}-0", f"{topup.reference}-0"

    screen_id = await ask(bot_env, alice, first, "en", "refund top-up")
    await bot_env.tap(alice, words["yes"], screen_id)

    assert said(bot_env.message(alice, screen_id), *words["refunded"], words["left esim"])
    assert await plan_states(bot_env, first.iccid) == {mine: "queued", its: "revoked"}, (
        "the top-up's refund revoked another order's copy of the plan"
    )
    screen_id = await ask(bot_env, alice, first, "en", "refund")
    await bot_env.tap(alice, words["yes"], screen_id)

    assert said(bot_env.message(alice, screen_id), *words["refunded"], words["left list"])
    assert await plan_states(bot_env, first.iccid) == {mine: "revoked", its: "revoked"}
    assert star_refunds(bot_env) == [(ALICE, topup.charge), (ALICE, first.charge)]
    bundle = fake.bundle(TH_5GB)
    assert bundle is not None
    assert fake.balance == balance + 2 * Decimal(str(bundle["price"]))
    assert len(fake.calls(REVOKE)) == 2
    assert await order_status(bot_env, topup.order_id) == "refunded"
    assert await order_status(bot_env, first.order_id) == "refunded"


async def test_a_guessed_copy_is_never_another_orders_known_copy(bot_env: BotEnv) -> None:
    """The top-up's copy can only be guessed (its eSIM Go reference is not stored); the oldest
    unused copy is the eSIM's own plan, known by its reference. The top-up's refund takes back
    the other copy, so the eSIM's own refund later revokes its own: two revokes, two refunds,
    never one revoke paid twice."""
    words = WORDS["en"]
    alice, first = await bought(bot_env)
    topup = await world_of(bot_env).buy(TH_5GB, topup_of=first.iccid)
    async with bot_env.deps.session_factory() as session:
        order = await session.get(Order, topup.order_id)
        assert order is not None
        order.esimgo_order_reference = None
        await session.commit()
    mine, its = f"{first.reference}-0", f"{topup.reference}-0"

    screen_id = await ask(bot_env, alice, first, "en", "refund top-up")
    await bot_env.tap(alice, words["yes"], screen_id)
    assert await plan_states(bot_env, first.iccid) == {mine: "queued", its: "revoked"}, (
        "the guess took the copy known to be the eSIM's own order's"
    )
    screen_id = await ask(bot_env, alice, first, "en", "refund")
    await bot_env.tap(alice, words["yes"], screen_id)

    assert await plan_states(bot_env, first.iccid) == {mine: "revoked", its: "revoked"}
    assert star_refunds(bot_env) == [(ALICE, topup.charge), (ALICE, first.charge)]
    assert len(bot_env.fake_esimgo.calls(REVOKE)) == 2


async def test_an_admins_action_that_died_long_ago_does_not_hold_the_refund(
    bot_env: BotEnv,
) -> None:
    """An admin's Refund whose process died left its lease on the order; once it has run out,
    the owner's own refund goes ahead (before, it answered "being refunded" for good)."""
    words = WORDS["en"]
    alice, purchase = await bought(bot_env)
    async with bot_env.deps.session_factory() as session:
        order = await session.get(Order, purchase.order_id)
        assert order is not None
        order.lease_owner = f"admin:{ADMIN_ID}:crashed"
        order.lease_until = utcnow() - timedelta(minutes=5)
        await session.commit()

    screen_id = await ask(bot_env, alice, purchase, "en", "refund")
    await bot_env.tap(alice, words["yes"], screen_id)

    assert said(bot_env.message(alice, screen_id), *words["refunded"])
    assert star_refunds(bot_env) == [(ALICE, purchase.charge)]
    assert await order_status(bot_env, purchase.order_id) == "refunded"


async def test_a_revoked_copy_that_may_not_be_the_orders_own_goes_to_the_operators(
    bot_env: BotEnv,
) -> None:
    """An order whose copy of the plan can only be guessed (no eSIM Go order reference) finds
    its plan already revoked: nobody can tell it was this order's, so no Stars go back
    automatically; the operators get the order."""
    words = WORDS["en"]
    alice, purchase = await bought(bot_env)
    async with bot_env.deps.session_factory() as session:
        order = await session.get(Order, purchase.order_id)
        assert order is not None
        order.esimgo_order_reference = None
        await session.commit()
    bot_env.fake_esimgo.revoke(purchase.iccid, TH_5GB, check_only=False, to_balance=True)

    screen_id = await ask(bot_env, alice, purchase, "en", "refund")
    await bot_env.tap(alice, words["yes"], screen_id)

    assert star_refunds(bot_env) == [], "paid back for a revoked copy that may be another's"
    assert said(bot_env.message(alice, screen_id), words["pending"])
    assert await order_status(bot_env, purchase.order_id) == "refund_due"
    assert bot_env.fake_esimgo.calls(REVOKE) == []
    (alert,) = [m for m in bot_env.fake_telegram.chat(ADMIN_ID) if m.from_bot]
    assert purchase.public_id in (alert.text or "") and "revoked" in (alert.text or "")


@LANGUAGES
async def test_refused_past_the_window(bot_env: BotEnv, language: str) -> None:
    alice, purchase = await bought(bot_env, language, paid_days_ago=8)
    screen_id = await open_card(bot_env, alice, purchase)
    card = bot_env.message(alice, screen_id)
    assert not any("450" in text for text in card.button_texts())  # no Refund offered

    # A Refund button kept on an old message.
    stale = RefundCallback(action="ask", order_id=purchase.order_id, esim_id=purchase.esim_id)
    await bot_env.press(alice, stale, screen_id)
    assert said(bot_env.message(alice, screen_id), *WORDS[language]["past"])
    await bot_env.press(alice, RefundCallback(action="do", order_id=purchase.order_id), screen_id)
    assert said(bot_env.message(alice, screen_id), *WORDS[language]["past"])
    assert bot_env.fake_esimgo.calls(REVOKE) == [] and star_refunds(bot_env) == []


@LANGUAGES
async def test_revoked_but_the_stars_refund_failing_goes_to_the_operators(
    bot_env: BotEnv, language: str
) -> None:
    words = WORDS[language]
    alice, purchase = await bought(bot_env, language)
    screen_id = await ask(bot_env, alice, purchase, language, "refund")
    bot_env.fake_telegram.fail_next("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")

    yes = str(bot_env.message(alice, screen_id).button(words["yes"])["callback_data"])
    await bot_env.press(alice, yes, screen_id)

    assert said(bot_env.message(alice, screen_id), words["pending"])
    assert len(bot_env.fake_esimgo.calls(REVOKE)) == 1 and star_refunds(bot_env) == []
    assert await order_status(bot_env, purchase.order_id) == "refund_due"
    (alert,) = [m for m in bot_env.fake_telegram.chat(ADMIN_ID) if m.from_bot]
    assert "Refund due by hand (self-refund)" in (alert.text or "")
    assert purchase.public_id in (alert.text or "")

    await bot_env.press(alice, yes, screen_id)  # pressed again: nothing more happens
    assert said(bot_env.message(alice, screen_id), words["pending"])
    assert len(bot_env.fake_esimgo.calls(REVOKE)) == 1
    assert len(bot_env.fake_telegram.calls_to("refundStarPayment")) == 1


@LANGUAGES
async def test_pressed_twice_refunds_once(bot_env: BotEnv, language: str) -> None:
    words = WORDS[language]
    alice, purchase = await bought(bot_env, language)
    screen_id = await ask(bot_env, alice, purchase, language, "refund")
    data = str(bot_env.message(alice, screen_id).button(words["yes"])["callback_data"])

    await bot_env.press(alice, data, screen_id)
    await bot_env.press(alice, data, screen_id)  # the same button, on the message it was on

    assert said(bot_env.message(alice, screen_id), words["already"])
    assert len(bot_env.fake_esimgo.calls(REVOKE)) == 1
    assert star_refunds(bot_env) == [(ALICE, purchase.charge)]


async def test_pressed_twice_at_once_refunds_once(bot_env: BotEnv) -> None:
    alice, purchase = await bought(bot_env)
    screen_id = await ask(bot_env, alice, purchase, "en", "refund")
    data = str(bot_env.message(alice, screen_id).button(WORDS["en"]["yes"])["callback_data"])

    await asyncio.gather(*(bot_env.press(alice, data, screen_id) for _ in range(2)))

    assert len(bot_env.fake_esimgo.calls(REVOKE)) == 1
    assert star_refunds(bot_env) == [(ALICE, purchase.charge)]
    assert await order_status(bot_env, purchase.order_id) == "refunded"
    assert not bot_env.error_logs


async def test_nobody_refunds_someone_elses_order(bot_env: BotEnv) -> None:
    _, purchase = await bought(bot_env)
    bob = make_user(BOB)
    await bot_env.send(bob, "/start")

    for action in ("ask", "do"):
        pressed = RefundCallback(action=action, order_id=purchase.order_id)
        (answer,) = answers(await bot_env.press(bob, pressed))
        assert "not available" in answer.params["text"] and answer.params["show_alert"]

    assert bot_env.fake_esimgo.calls(REVOKE) == [] and star_refunds(bot_env) == []
    assert await order_status(bot_env, purchase.order_id) == "delivered"
