"""/order through the dispatcher: finding orders, one order's story, and the four actions —
each confirmed first, done with the same money rules as the automatic path, and refused with
its reason when it no longer fits (also when the button is pressed from an old screen)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from db.models import AdminAction, Esim, Order, OrderStatus
from db.repositories.orders import OrderRepository
from handlers.callbacks import AdminOrderCallback
from services.admin.order_rules import TAKEN_BACK
from tests.admin_chat import ADMIN, buy, fulfil
from tests.admin_helpers import add, make_order
from tests.helpers import BotEnv, answers, make_user

# Money moves here: SQLite and PostgreSQL.
ON_EVERY_DATABASE = True

REVOKE = "DELETE /esims/{iccid}/bundles/{name}/assignments/{assignmentId}"
ALICE = make_user(1001, username="alice_t")
BOB = make_user(1002, username="bob_b", language_code="ru")


async def status(env: BotEnv, public_id: str) -> str:
    async with env.deps.session_factory() as session:
        found = await session.scalar(select(Order.status).where(Order.public_id == public_id))
        assert found is not None
        return found


async def recorded(env: BotEnv) -> list[tuple[str, int, str]]:
    async with env.deps.session_factory() as session:
        rows = await session.scalars(select(AdminAction).order_by(AdminAction.id))
        return [(a.action, a.admin_id, a.outcome) for a in rows]


def story(env: BotEnv) -> str:
    return env.screen(ADMIN).text or ""


def photos_to(env: BotEnv, chat_id: int) -> int:
    calls = env.fake_telegram.calls_to("sendPhoto")
    return len([c for c in calls if c.ok and c.params["chat_id"] == chat_id])


async def test_finding_orders_by_id_iccid_user_and_username(bot_env: BotEnv) -> None:
    first = await buy(bot_env, ALICE, "charge-1")
    second = await buy(bot_env, ALICE, "charge-2")
    async with bot_env.deps.session_factory() as session:
        iccid = await session.scalar(select(Order.iccid).where(Order.public_id == first))

    await bot_env.send(ADMIN, f"/order {first.lower()}")
    assert f"Order {first} · delivered" in story(bot_env)
    assert "Buyer: user 1001 (@alice_t)" in story(bot_env)
    assert f"ICCID: {iccid}" in story(bot_env) and "Telegram charge: charge-1" in story(bot_env)
    assert "Profile: " in story(bot_env)  # asked eSIM Go for the eSIM's state now

    await bot_env.send(ADMIN, f"/order {iccid}")
    assert f"Order {first}" in story(bot_env)
    for query in ("@Alice_T", "1001"):
        await bot_env.send(ADMIN, f"/order {query}")
        assert "2 orders for" in story(bot_env)
        labels = bot_env.screen(ADMIN).button_texts()
        assert [label.split(" · ")[0] for label in labels] == [second, first]
    await bot_env.tap(ADMIN, first)
    assert f"Order {first} · delivered" in story(bot_env)

    await bot_env.send(ADMIN, "/order @nobody")
    assert "Nothing found for @nobody" in story(bot_env)
    await bot_env.send(ADMIN, "/order")
    assert story(bot_env).startswith("Usage: /order <public id | ICCID")
    assert not bot_env.error_logs


async def test_refund_is_confirmed_done_once_and_then_refused(bot_env: BotEnv) -> None:
    bobs = await buy(bot_env, BOB, "charge-bob")
    await bot_env.send(ADMIN, f"/order {bobs}")
    await bot_env.tap(ADMIN, "Refund")
    assert "Refund 165 ⭐ to user 1002?" in story(bot_env)
    await bot_env.tap(ADMIN, "Cancel")  # changed their mind: nothing happens
    assert f"Order {bobs} · delivered" in story(bot_env)
    assert bot_env.fake_telegram.calls_to("refundStarPayment") == []

    await bot_env.tap(ADMIN, "Refund")
    await bot_env.tap(ADMIN, "Yes")
    (refund,) = bot_env.fake_telegram.calls_to("refundStarPayment")
    assert refund.params == {"user_id": BOB.id, "telegram_payment_charge_id": "charge-bob"}
    assert await status(bot_env, bobs) == OrderStatus.REFUNDED
    assert story(bot_env).startswith(f"Refunded in Stars. {TAKEN_BACK} The buyer was told.")
    assert f"Ваш платёж 165 ⭐ за заказ {bobs} возвращён" in (bot_env.screen(BOB).text or "")
    # Now every action but Mark resolved says why not, and has no button.
    assert "✖️ Refund: Already refunded on " in story(bot_env)
    assert "✖️ Resend the eSIM: Refunded: the eSIM must not be handed over." in story(bot_env)
    assert "✖️ Retry fulfilment: Already refunded on " in story(bot_env)
    assert bot_env.screen(ADMIN).button_texts() == ["✅ Mark resolved", "🔄 Refresh"]

    # The confirmation screen of before, pressed again: refused, no second refund.
    calls = await bot_env.press(ADMIN, AdminOrderCallback(step="do", order=bobs, action="refund"))
    (answer,) = answers(calls)
    assert answer.params["text"].startswith("Already refunded on ")
    assert answer.params["show_alert"] is True
    assert story(bot_env).startswith("Not done: Already refunded on ")
    assert len(bot_env.fake_telegram.calls_to("refundStarPayment")) == 1
    calls = await bot_env.press(ADMIN, AdminOrderCallback(step="ask", order=bobs, action="resend"))
    assert answers(calls)[0].params["text"] == "Refunded: the eSIM must not be handed over."
    assert await recorded(bot_env) == [
        ("refund", ADMIN.id, "done"),
        ("refund", ADMIN.id, "refused"),
    ]
    assert not bot_env.error_logs


async def test_a_refund_telegram_refuses_leaves_the_order_as_it_was(bot_env: BotEnv) -> None:
    alices = await buy(bot_env, ALICE, "charge-alice")
    order, _ = await plan_of(bot_env, alices)
    bot_env.fake_esimgo.install(order.iccid or "")  # the plan stays: only money would move
    await bot_env.send(ADMIN, f"/order {alices}")
    bot_env.fake_telegram.fail_next("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    await bot_env.tap(ADMIN, "Refund")
    calls = await bot_env.tap(ADMIN, "Yes")
    assert "Telegram refused the refund" in answers(calls)[0].params["text"]
    assert story(bot_env).startswith("Not done: Telegram refused the refund: ")
    assert await status(bot_env, alices) == OrderStatus.DELIVERED
    assert "↩️ Refund" in bot_env.screen(ADMIN).button_texts()  # it may be tried again


async def test_retry_sends_a_stuck_order_back_to_fulfilment(bot_env: BotEnv) -> None:
    await add(
        bot_env.deps.session_factory,
        make_order(public_id="STUCK00001", telegram_user_id=ALICE.id, chat_id=ALICE.id,
                   status=OrderStatus.REFUND_DUE.value, failure_reason="eSIM Go: out of stock",
                   bundle_name="esim_1GB_7D_GB_V2"),
    )  # fmt: skip
    await bot_env.send(ADMIN, "/order STUCK00001")
    assert "Last error: eSIM Go: out of stock" in story(bot_env)
    await bot_env.tap(ADMIN, "Retry")
    assert "Send it back to fulfilment?" in story(bot_env)
    await bot_env.tap(ADMIN, "Yes")
    assert story(bot_env).startswith("Sent back to fulfilment")
    assert await status(bot_env, "STUCK00001") == OrderStatus.PAID

    shown = bot_env.screen(ADMIN).message_id
    await fulfil(bot_env)
    assert await status(bot_env, "STUCK00001") == OrderStatus.DELIVERED
    assert photos_to(bot_env, ALICE.id) == 1  # the eSIM reached Alice
    await bot_env.tap(ADMIN, "Refresh", shown)  # (the worker may have alerted the admin since)
    refreshed = bot_env.message(ADMIN, shown).text or ""
    assert "✖️ Retry fulfilment: Already delivered" in refreshed
    assert await recorded(bot_env) == [("retry", ADMIN.id, "done")]


async def test_resend_and_mark_resolved(bot_env: BotEnv) -> None:
    alices = await buy(bot_env, ALICE, "charge-alice")
    assert photos_to(bot_env, ALICE.id) == 1
    await bot_env.send(ADMIN, f"/order {alices}")
    await bot_env.tap(ADMIN, "Resend")
    await bot_env.tap(ADMIN, "Yes")
    assert story(bot_env).startswith("The eSIM is being sent to the buyer again.")
    await fulfil(bot_env)
    assert photos_to(bot_env, ALICE.id) == 2
    assert await status(bot_env, alices) == OrderStatus.DELIVERED

    await bot_env.send(ADMIN, f"/order {alices}")
    await bot_env.tap(ADMIN, "Mark resolved")
    assert "Mark it resolved?" in story(bot_env)
    await bot_env.tap(ADMIN, "Yes")
    assert story(bot_env).startswith("Marked resolved.")
    assert "✖️ Mark resolved: Already marked resolved." in story(bot_env)
    assert await recorded(bot_env) == [("resend", ADMIN.id, "done"), ("resolve", ADMIN.id, "done")]
    assert not bot_env.error_logs


async def test_retry_of_a_charge_telegram_already_refunded_marks_it_refunded(
    bot_env: BotEnv,
) -> None:
    """Telegram refunded the Stars (the refund's answer was lost, or an admin refunded by hand
    in Telegram) but the order still says failed: a Retry must not deliver it too."""
    await add(
        bot_env.deps.session_factory,
        make_order(public_id="GONE000001", telegram_user_id=ALICE.id, chat_id=ALICE.id,
                   status=OrderStatus.FAILED.value, failure_reason="eSIM Go: out of stock"),
    )  # fmt: skip
    fake = bot_env.fake_telegram
    fake.add_star_payment(ALICE.id, "GONE000001", 125, charge_id="charge-GONE000001")
    assert await bot_env.bot.refund_star_payment(ALICE.id, "charge-GONE000001")

    await bot_env.send(ADMIN, "/order GONE000001")
    await bot_env.tap(ADMIN, "Retry")
    calls = await bot_env.tap(ADMIN, "Yes")
    assert "already refunded in Telegram" in answers(calls)[0].params["text"]
    assert story(bot_env).startswith("Not done: Telegram's Stars ledger shows this charge")
    assert await status(bot_env, "GONE000001") == OrderStatus.REFUNDED
    assert "by admin" in story(bot_env)  # the event names the admin

    await fulfil(bot_env)
    assert photos_to(bot_env, ALICE.id) == 0 and bot_env.fake_esimgo.orders == []
    assert len(fake.calls_to("refundStarPayment")) == 1  # and no second refund
    assert await recorded(bot_env) == [("retry", ADMIN.id, "refused")]


async def test_retry_waits_when_the_stars_ledger_cannot_be_read(bot_env: BotEnv) -> None:
    await add(
        bot_env.deps.session_factory,
        make_order(public_id="DARK000001", telegram_user_id=ALICE.id, chat_id=ALICE.id,
                   status=OrderStatus.REFUND_DUE.value),
    )  # fmt: skip
    await bot_env.send(ADMIN, "/order DARK000001")
    await bot_env.tap(ADMIN, "Retry")
    bot_env.fake_telegram.fail_next("getStarTransactions", 500, "Internal Server Error")
    await bot_env.tap(ADMIN, "Yes")
    assert story(bot_env).startswith("Not done: Telegram's Stars ledger could not be read")
    assert await status(bot_env, "DARK000001") == OrderStatus.REFUND_DUE
    await bot_env.tap(ADMIN, "Retry")
    await bot_env.tap(ADMIN, "Yes")
    assert story(bot_env).startswith("Sent back to fulfilment")
    assert await status(bot_env, "DARK000001") == OrderStatus.PAID


async def plan_of(env: BotEnv, public_id: str) -> tuple[Order, dict[str, Any]]:
    """The order and its copy of the plan at eSIM Go (an assignment carries its reference)."""
    async with env.deps.session_factory() as session:
        order = await session.scalar(select(Order).where(Order.public_id == public_id))
    assert order is not None and order.iccid and order.esimgo_order_reference
    (assignment,) = env.fake_esimgo.esim_bundles[order.iccid]
    assert str(assignment["assignmentReference"]).startswith(order.esimgo_order_reference)
    return order, assignment


async def event_notes(env: BotEnv, order: Order) -> list[str]:
    async with env.deps.session_factory() as session:
        events = await OrderRepository(session).events(order.id)
    return [f"{e.from_status} → {e.to_status} by {e.actor}: {e.note}" for e in events]


def star_refunds(env: BotEnv) -> list[tuple[int, str]]:
    calls = env.fake_telegram.calls_to("refundStarPayment")
    return [(c.params["user_id"], c.params["telegram_payment_charge_id"]) for c in calls if c.ok]


async def test_a_refund_of_an_unused_esim_takes_its_plan_back_first(bot_env: BotEnv) -> None:
    alices = await buy(bot_env, ALICE, "charge-alice")
    order, assignment = await plan_of(bot_env, alices)
    fake = bot_env.fake_esimgo
    balance = fake.balance
    await bot_env.send(ADMIN, f"/order {alices}")
    await bot_env.tap(ADMIN, "Refund")
    assert TAKEN_BACK in story(bot_env)  # the confirmation says what happens

    await bot_env.tap(ADMIN, "Yes")

    (revoke,) = fake.calls(REVOKE)
    assert revoke.path == (
        f"/esims/{order.iccid}/bundles/{order.bundle_name}/assignments/{assignment['id']}"
    )
    assert revoke.param("refundToBalance") == "true"
    assert assignment["bundleState"] == "revoked"
    bundle = fake.bundle(order.bundle_name)
    assert bundle is not None and fake.balance == balance + Decimal(str(bundle["price"]))
    assert star_refunds(bot_env) == [(ALICE.id, "charge-alice")]
    assert await status(bot_env, alices) == OrderStatus.REFUNDED
    assert story(bot_env).startswith(f"Refunded in Stars. {TAKEN_BACK} The buyer was told.")
    assert (await event_notes(bot_env, order))[-1] == (
        f"delivered → refunded by admin:{ADMIN.id}: refunded by an admin; the plan revoked to "
        f"the eSIM Go balance (assignment {assignment['id']})"
    )
    async with bot_env.deps.session_factory() as session:
        esim = await session.scalar(select(Esim).where(Esim.iccid == order.iccid))
        assert esim is not None and esim.deleted_at is not None  # off Alice's list
        assert not esim.tracking
    assert not bot_env.error_logs


async def test_a_refund_of_an_installed_esim_returns_the_money_only(bot_env: BotEnv) -> None:
    alices = await buy(bot_env, ALICE, "charge-alice")
    order, assignment = await plan_of(bot_env, alices)
    assert order.iccid is not None
    bot_env.fake_esimgo.install(order.iccid)
    await bot_env.send(ADMIN, f"/order {alices}")
    await bot_env.tap(ADMIN, "Refund")
    assert "The eSIM and its plan stay active" in story(bot_env)

    await bot_env.tap(ADMIN, "Yes")

    assert bot_env.fake_esimgo.calls(REVOKE) == []
    assert assignment["bundleState"] == "queued"
    assert star_refunds(bot_env) == [(ALICE.id, "charge-alice")]
    assert await status(bot_env, alices) == OrderStatus.REFUNDED
    assert story(bot_env).startswith(
        "Refunded in Stars. The eSIM stays active (the plan not revoked: the eSIM was "
        "installed). The buyer was told."
    )
    assert (await event_notes(bot_env, order))[-1].endswith(
        "refunded by an admin; the eSIM stays active (its plan not revoked: the eSIM was "
        "installed)"
    )

    await add(
        bot_env.deps.session_factory,
        make_order(public_id="NEVER00001", telegram_user_id=ALICE.id, chat_id=ALICE.id,
                   status=OrderStatus.FAILED.value),
    )  # fmt: skip
    await bot_env.send(ADMIN, "/order NEVER00001")
    await bot_env.tap(ADMIN, "Refund")
    assert "No eSIM was delivered for it: only the money goes back." in story(bot_env)


async def test_when_esim_go_cannot_be_reached_the_admin_may_refund_the_money_only(
    bot_env: BotEnv,
) -> None:
    alices = await buy(bot_env, ALICE, "charge-alice")
    order, assignment = await plan_of(bot_env, alices)
    await bot_env.send(ADMIN, f"/order {alices}")
    await bot_env.tap(ADMIN, "Refund")
    bot_env.fake_esimgo.fail_next(REVOKE, status=502)  # no answer, and nothing revoked

    calls = await bot_env.tap(ADMIN, "Yes")

    assert "eSIM Go could not be reached" in answers(calls)[0].params["text"]
    assert story(bot_env).startswith("Not done: eSIM Go could not be reached")
    assert star_refunds(bot_env) == [] and assignment["bundleState"] == "queued"
    assert await status(bot_env, alices) == OrderStatus.DELIVERED
    buttons = bot_env.screen(ADMIN).button_texts()
    assert "↩️ Refund the money only" in buttons and "↩️ Refund" in buttons  # or try later

    await bot_env.tap(ADMIN, "Refund the money only")

    assert len(bot_env.fake_esimgo.calls(REVOKE)) == 1  # not asked again
    assert star_refunds(bot_env) == [(ALICE.id, "charge-alice")]
    assert await status(bot_env, alices) == OrderStatus.REFUNDED
    assert story(bot_env).startswith("Refunded in Stars. The eSIM stays active")
    assert (await event_notes(bot_env, order))[-1].endswith(
        "the eSIM stays active (its plan not revoked: the admin refunded the money only)"
    )
    assert await recorded(bot_env) == [
        ("refund", ADMIN.id, "refused"),
        ("refund", ADMIN.id, "done"),
    ]


async def test_a_plan_taken_back_whose_stars_refund_fails_leaves_the_money_due(
    bot_env: BotEnv,
) -> None:
    alices = await buy(bot_env, ALICE, "charge-alice")
    _, assignment = await plan_of(bot_env, alices)
    await bot_env.send(ADMIN, f"/order {alices}")
    await bot_env.tap(ADMIN, "Refund")
    bot_env.fake_telegram.fail_next("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")

    await bot_env.tap(ADMIN, "Yes")

    assert assignment["bundleState"] == "revoked" and star_refunds(bot_env) == []
    assert await status(bot_env, alices) == OrderStatus.REFUND_DUE
    assert story(bot_env).startswith(f"Not done: {TAKEN_BACK} But Telegram refused the refund")
    # Refund again: the money only, the plan is not asked for twice.
    await bot_env.tap(ADMIN, "Refund")
    await bot_env.tap(ADMIN, "Yes")
    assert len(bot_env.fake_esimgo.calls(REVOKE)) == 1
    assert star_refunds(bot_env) == [(ALICE.id, "charge-alice")]
    assert await status(bot_env, alices) == OrderStatus.REFUNDED
