"""The eSIM Go budget serves paid orders first, as seen in the fake eSIM Go's request log."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import utcnow
from db.models import OrderStatus
from services.budget import Priority, RequestBudget, background_work
from services.catalogue import CatalogueService
from services.esimgo.client import EsimGoClient
from services.tracking import TrackingService
from tests.fakes.esimgo import FakeEsimGo, RecordedRequest
from tests.helpers import BotEnv, make_user
from tests.test_fulfilment import Clock, make_worker, paid_order
from tests.test_purchase import load_order
from tests.tracking_helpers import seed_esim

RATE = 20.0  # requests/s for these tests: one second of budget is 20 requests


def _is_transaction(request: RecordedRequest) -> bool:
    return request.route == "POST /orders" and (request.json or {}).get("type") == "transaction"


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_paid_order_is_not_queued_behind_a_burst_of_pay_presses(
    fake_esimgo: FakeEsimGo,
) -> None:
    async with EsimGoClient(
        fake_esimgo.base_url, fake_esimgo.api_key, max_requests_per_second=RATE
    ) as esimgo:
        presses = [
            asyncio.create_task(esimgo.validate_order("esim_1GB_7D_GB_V2")) for _ in range(60)
        ]
        await fake_esimgo.wait_for_requests()  # every press is now waiting for the budget
        result = await esimgo.create_order("esim_1GB_7D_GB_V2")
        await _cancel(presses)
    assert result.esims
    position = next(i for i, r in enumerate(fake_esimgo.requests) if _is_transaction(r))
    assert position <= RATE, f"the paid order waited behind {position} validates"


class Spent:
    """A client whose budget reports the class of every request it lets out."""

    def __init__(self, fake: FakeEsimGo, rate: float = RATE) -> None:
        self.classes: list[Priority] = []
        budget = RequestBudget(rate, on_wait=lambda priority, _: self.classes.append(priority))
        self.client = EsimGoClient(fake.base_url, fake.api_key, budget=budget)


async def test_a_users_call_goes_before_background_polls_and_paid_stays_paid_in_them(
    fake_esimgo: FakeEsimGo,
) -> None:
    iccid = fake_esimgo.add_esim()["iccid"]
    async with EsimGoClient(
        fake_esimgo.base_url, fake_esimgo.api_key, max_requests_per_second=RATE
    ) as esimgo:
        with background_work():
            polls = [asyncio.create_task(esimgo.get_esim(iccid)) for _ in range(60)]
        await fake_esimgo.wait_for_requests()
        validation = await esimgo.validate_order("esim_1GB_7D_GB_V2")
        with background_work():  # e.g. a reconciliation started from a background loop
            result = await esimgo.create_order("esim_1GB_7D_GB_V2")
        await _cancel(polls)
    assert validation.valid and result.esims
    validated = [r.route for r in fake_esimgo.requests].index("POST /orders")
    bought = next(i for i, r in enumerate(fake_esimgo.requests) if _is_transaction(r))
    # Behind only the polls already on their way, never behind the 60 queued.
    assert validated <= 5, f"the validate waited behind {validated} polls"
    assert bought <= validated + 5, f"the paid order waited behind {bought} polls"


async def test_the_status_poll_is_background_and_opening_an_esim_is_not(
    bot_env: BotEnv,
) -> None:
    spent = Spent(bot_env.fake_esimgo)
    for iccid in ("8944000000000000011", "8944000000000000029"):
        bot_env.fake_esimgo.add_esim(iccid)
        await seed_esim(bot_env.deps.session_factory, user_id=4242, iccid=iccid)
    deps = bot_env.deps
    now = [utcnow()]
    tracking = TrackingService(
        spent.client, deps.session_factory, deps.notifier, deps.catalogue, clock=lambda: now[0]
    )
    try:
        assert await tracking.poll_once(None) == 2
        assert spent.classes == [Priority.BACKGROUND] * 4
        spent.classes.clear()
        now[0] += timedelta(minutes=5)  # the last poll is too old to show
        assert await tracking.refresh("8944000000000000011", None)
        assert spent.classes == [Priority.INTERACTIVE] * 2
    finally:
        await spent.client.close()


async def test_the_scheduled_catalogue_refresh_is_background_and_the_first_sync_is_not(
    sqlite_session_factory: async_sessionmaker[AsyncSession], fake_esimgo: FakeEsimGo
) -> None:
    spent = Spent(fake_esimgo, rate=1000)
    catalogue = CatalogueService(spent.client, sqlite_session_factory)
    try:
        await catalogue.sync()  # at start, or `esimbot sync-catalogue`: someone waits for it
        assert set(spent.classes) == {Priority.INTERACTIVE}
        spent.classes.clear()
        fake_esimgo.requests.clear()
        catalogue = CatalogueService(spent.client, sqlite_session_factory)  # no catalogue yet
        loop = asyncio.create_task(catalogue.run_refresh_loop())
        await fake_esimgo.wait_for_requests(2)  # both catalogue pages
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        assert spent.classes and set(spent.classes) == {Priority.BACKGROUND}
    finally:
        await spent.client.close()


async def test_a_paid_orders_purchase_and_its_reconciliation_are_paid_throughout(
    bot_env: BotEnv,
) -> None:
    spent = Spent(bot_env.fake_esimgo)
    public_id = await paid_order(bot_env, make_user(4343))
    # The transaction goes through at eSIM Go but the worker is told it failed: it looks for it.
    bot_env.fake_esimgo.fail_next("POST /orders:transaction", status=500, create_then_fail=True)
    worker = make_worker(bot_env, esimgo=spent.client, clock=(clock := Clock()))
    try:
        await worker.run_once()
        clock.advance(seconds=30)
        await worker.run_once()
    finally:
        await spent.client.close()
    assert (await load_order(bot_env, public_id)).status == OrderStatus.DELIVERED
    ours = [r.route for r in bot_env.fake_esimgo.requests][-len(spent.classes) :]
    assert ours == ["POST /orders", "GET /orders", "GET /esims/{iccid}", "PUT /esims"]
    # Buying, finding the order and reading the found eSIM's tag: all for money already taken.
    assert spent.classes[:3] == [Priority.PAID] * 3
