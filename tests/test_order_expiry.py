"""Unpaid orders do not linger: the running fulfilment worker cancels them after a day."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from db.base import utcnow
from db.models import Order, OrderStatus
from tests.helpers import BotEnv, make_user
from tests.test_purchase import get_invoice, load_order, open_confirmation, worker

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True


class FreshHostLoop(asyncio.SelectorEventLoop):
    """A loop whose clock starts at zero, like the monotonic clock of a host booted just now."""

    def __init__(self) -> None:
        super().__init__()
        self._booted = super().time()

    def time(self) -> float:
        return super().time() - self._booted


# Every test here runs as on a host that booted a moment ago (tests/conftest.py reads this): the
# worker's first sweep used to wait until the monotonic clock passed five minutes.
LOOP_FACTORY = FreshHostLoop


async def test_an_invoice_left_unpaid_for_a_day_is_cancelled_by_the_running_worker(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    alice = make_user(1001)
    await open_confirmation(env, alice)
    public_id = str((await get_invoice(env, alice)).params["payload"])
    fresh = await load_order(env, public_id)
    assert fresh.expires_at is not None
    assert timedelta(hours=23) < fresh.expires_at - fresh.created_at <= timedelta(days=1)
    async with env.deps.session_factory() as session:
        await session.execute(
            update(Order)
            .where(Order.public_id == public_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()

    task = asyncio.create_task(worker(env).run())
    try:
        async with asyncio.timeout(10):
            while (await load_order(env, public_id)).status != OrderStatus.CANCELLED:  # noqa: ASYNC110 - polled state, bounded above
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (await load_order(env, public_id)).failure_reason == "expired"
    assert not env.fake_esimgo.calls("POST /orders")[1:], "nothing but the validate was ordered"
