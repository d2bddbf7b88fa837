"""Refunds when Telegram's refundStarPayment fails: refused, a server error, a flood wait, already
done before a crash, failing for a day. Each goes to the user who paid, once."""

from __future__ import annotations

from aiogram.types import User

from db.models import OrderStatus
from tests.fakes.telegram import ApiCall
from tests.helpers import ADMIN_ID, BotEnv, make_user
from tests.test_fulfilment import Clock, make_worker, messages_to, paid_order
from tests.test_purchase import GB, load_order

# Refunds, adoption and leases move money: they run on PostgreSQL too (tests/helpers.py).
ON_EVERY_DATABASE = True

BUYER = 8001


async def unfulfillable_order(env: BotEnv, user: User) -> str:
    """A paid order whose plan eSIM Go no longer sells: the worker can only refund it."""
    public_id = await paid_order(env, user)
    env.fake_esimgo.catalogue = [b for b in env.fake_esimgo.catalogue if b["name"] != GB]
    return public_id


def refunds(env: BotEnv) -> list[ApiCall]:
    return env.fake_telegram.calls_to("refundStarPayment")


def told(env: BotEnv, words: str) -> list[str]:
    texts = [str(c.params["text"]) for c in messages_to(env, BUYER)]
    return [t for t in texts if words in t]


async def test_a_refused_refund_is_left_to_the_admins_and_the_user_told(bot_env: BotEnv) -> None:
    env, clock = bot_env, Clock()
    public_id = await unfulfillable_order(env, make_user(BUYER))
    env.fake_telegram.fail_next(
        "refundStarPayment", error_code=400, description="Bad Request: CHARGE_NOT_FOUND"
    )
    worker = make_worker(env, clock=clock)
    await worker.run_once()
    clock.advance(hours=2)
    await worker.run_once()

    order = await load_order(env, public_id)
    assert order.status == OrderStatus.REFUND_DUE
    [refund] = refunds(env)
    assert refund.params["user_id"] == BUYER and not refund.ok
    assert len(told(env, "will be refunded by our team")) == 1
    alerts = [str(c.params["text"]) for c in messages_to(env, ADMIN_ID)]
    assert any(public_id in a and f"charge-{BUYER}" in a for a in alerts)


async def test_a_refund_that_meets_a_server_error_is_retried_and_made_once(
    bot_env: BotEnv,
) -> None:
    env, clock = bot_env, Clock()
    public_id = await unfulfillable_order(env, make_user(BUYER))
    env.fake_telegram.fail_next(
        "refundStarPayment", error_code=500, description="Internal Server Error"
    )
    worker = make_worker(env, clock=clock)
    await worker.run_once()
    assert (await load_order(env, public_id)).status == OrderStatus.FAILED
    assert not told(env, "refunded")
    clock.advance(minutes=1)
    await worker.run_once()
    await worker.run_once()

    assert (await load_order(env, public_id)).status == OrderStatus.REFUNDED
    assert [(r.ok, r.params["user_id"]) for r in refunds(env)] == [(False, BUYER), (True, BUYER)]
    assert len(told(env, "has been refunded")) == 1


async def test_a_flood_wait_on_a_refund_is_waited_out_then_refunded(bot_env: BotEnv) -> None:
    env, clock = bot_env, Clock()
    public_id = await unfulfillable_order(env, make_user(BUYER))
    env.fake_telegram.fail_next("refundStarPayment", retry_after=40)
    worker = make_worker(env, clock=clock)
    await worker.run_once()
    clock.advance(seconds=20)
    await worker.run_once()
    assert len(refunds(env)) == 1, "not asked again before Telegram's retry_after"
    clock.advance(seconds=25)
    await worker.run_once()

    assert (await load_order(env, public_id)).status == OrderStatus.REFUNDED
    assert [(r.ok, r.params["user_id"]) for r in refunds(env)] == [(False, BUYER), (True, BUYER)]
    assert len(told(env, "has been refunded")) == 1


async def test_a_refund_made_just_before_a_crash_is_recorded_not_repeated(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    public_id = await unfulfillable_order(env, make_user(BUYER))
    # Telegram refunded; the process died before it wrote that down.
    env.fake_telegram.refunded_charges.add(f"charge-{BUYER}")
    await make_worker(env).run_once()

    order = await load_order(env, public_id)
    assert order.status == OrderStatus.REFUNDED and order.refunded_at is not None
    [refund] = refunds(env)
    assert refund.params["user_id"] == BUYER
    assert refund.description == "Bad Request: CHARGE_ALREADY_REFUNDED"
    assert len(told(env, "has been refunded")) == 1


async def test_a_refund_telegram_keeps_failing_goes_to_the_admins_after_a_day(
    bot_env: BotEnv,
) -> None:
    env, clock = bot_env, Clock()
    public_id = await unfulfillable_order(env, make_user(BUYER))
    env.fake_telegram.fail_next(
        "refundStarPayment", error_code=502, description="Bad Gateway", times=1_000
    )
    worker = make_worker(env, clock=clock)
    for _ in range(15):
        await worker.run_once()
        clock.advance(hours=2)

    order = await load_order(env, public_id)
    assert order.status == OrderStatus.REFUND_DUE
    assert all(r.params["user_id"] == BUYER for r in refunds(env))
    assert len(told(env, "will be refunded by our team")) == 1
    alerts = [str(c.params["text"]) for c in messages_to(env, ADMIN_ID)]
    assert any(public_id in a and "Refund due by hand" in a for a in alerts)
