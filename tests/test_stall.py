"""One user pressing Pay over and over while eSIM Go hangs must not stall anyone else.

No database connection is held across a call to eSIM Go (or Telegram): a hanging supplier costs
one waiting user their own wait, never the connection pool everyone's pre-checkout needs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from db.engine import create_engine
from db.models import Order, OrderStatus
from handlers.callbacks import OrderCallback
from tests.conftest import prepare_database
from tests.helpers import (
    BotEnv,
    answers,
    callback_update,
    make_user,
    pre_checkout_update,
    successful_payment_update,
)
from tests.test_purchase import get_invoice, invoice_amount, open_confirmation

# Telegram cancels a pre-checkout query that is not answered within 10 s and takes no money.
TELEGRAM_PRE_CHECKOUT_LIMIT = 10.0
PRESSES = 30
# A pool far smaller than the presses: with a connection held per waiting Pay, it runs dry.
POOL_SIZE = 4


@pytest.fixture
async def bot_env_database(tmp_path: Path) -> str:
    """PostgreSQL only: the pool and its waiting are what this file is about."""
    return await prepare_database("postgres", tmp_path)


@pytest.fixture
def bot_env_settings() -> dict[str, Any]:
    return {"database_pool_size": POOL_SIZE}


async def test_a_hanging_validate_pressed_30_times_stalls_no_one_else(bot_env: BotEnv) -> None:
    env = bot_env
    alice, bob = make_user(5001), make_user(5002, username="bob")
    await open_confirmation(env, bob)
    invoice = await get_invoice(env, bob)
    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)

    # From now on every validate hangs (for longer than this test runs).
    env.fake_esimgo.fail_next("POST /orders:validate", status=200, times=PRESSES, delay=120)
    await open_confirmation(env, alice)
    pay = OrderCallback.unpack(str(env.screen(alice).button("Pay")["callback_data"]))
    message_id = env.screen(alice).message_id
    presses = [
        asyncio.create_task(
            env.feed(callback_update(alice, pay, message_id, query_id=f"press-{n}"))
        )
        for n in range(PRESSES)
    ]
    try:
        await env.fake_esimgo.wait_for_requests(len(env.fake_esimgo.requests) + 1)
        # A bound on behaviour, not a measure of speed: past Telegram's 10 s the query is void
        # and Bob cannot pay at all. The answer takes milliseconds when nothing waits for a
        # connection; on the old code it waited for the pool until this bound ran out.
        async with asyncio.timeout(TELEGRAM_PRE_CHECKOUT_LIMIT):
            calls = await env.feed(pre_checkout_update(bob, payload=payload, total_amount=amount))
            (answer,) = [c for c in calls if c.method == "answerPreCheckoutQuery"]
            assert answer.params.get("ok") is True
            await env.feed(
                successful_payment_update(
                    bob, payload=payload, total_amount=amount, charge_id="bob-1"
                )
            )
        async with env.deps.session_factory() as session:
            order = await session.scalar(select(Order).where(Order.public_id == payload))
        assert order is not None and order.status == OrderStatus.PAID

        # Alice hears once that the supplier did not answer, and to try again.
        await asyncio.gather(*presses)
        told = [
            str(c.params.get("text"))
            for c in answers(env.fake_telegram.calls)
            if str(c.params["callback_query_id"]).startswith("press-")
        ]
        assert len(told) == PRESSES
        assert sum("try again" in text for text in told) == 1, told
        assert env.fake_telegram.calls_to("sendInvoice") == [invoice]
        validates = env.fake_esimgo.calls("POST /orders")
        assert len(validates) <= 2  # Bob's, and one of hers
    finally:
        for task in presses:
            task.cancel()
        await asyncio.gather(*presses, return_exceptions=True)


async def test_the_bot_runs_on_a_pool_of_the_configured_size(bot_env: BotEnv) -> None:
    assert bot_env.deps.engine.pool.size() == POOL_SIZE  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [3, 7])
async def test_either_database_takes_the_pool_size(database_url: str, size: int) -> None:
    engine = create_engine(database_url, pool_size=size)
    try:
        assert engine.pool.size() == size  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
