"""The eSIM Go calls behind the eSIM doctor and self-refunds, against the fake over loopback:
history, location, network refresh and revoking a plan to our balance (v2.4 shapes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.esimgo.client import EsimGoClient, RetryPolicy, Timeouts
from services.esimgo.errors import BadRequestError, SupplierUnavailableError
from services.esimgo.models import EsimHistoryEvent, EsimLocation
from tests.fakes.esimgo import FakeEsimGo

TH = "esim_1GB_7D_TH_V2"


@pytest.fixture
async def client(fake_esimgo: FakeEsimGo) -> AsyncIterator[EsimGoClient]:
    async with EsimGoClient(
        fake_esimgo.base_url,
        fake_esimgo.api_key,
        max_requests_per_second=1000,
        timeouts=Timeouts(default=1.0),
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02),
    ) as esimgo:
        yield esimgo


async def test_history_lists_applied_plans_and_events_oldest_first(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    iccid = fake_esimgo.add_esim()["iccid"]
    fake_esimgo.assign_bundle(iccid, TH)
    fake_esimgo.attach(iccid, "TH")
    fake_esimgo.start_bundle(iccid)

    events = await client.get_esim_history(iccid)

    assert [e.kind for e in events] == [
        "bundle applied",
        "esim first attachment",
        "esim first use",
    ]
    assert events[0].bundle_name == TH and events[0].at is not None


def test_history_is_read_as_a_bare_list_a_wrapper_or_one_event() -> None:
    item = {"name": "eSIM First Use", "bundleName": TH, "date": "2023-04-07T00:50:31.618780311Z"}
    for payload in ([item], {"history": [item]}, item):
        (event,) = EsimHistoryEvent.list_from_api(payload)
        assert event.kind == "esim first use"
        assert event.at == datetime(2023, 4, 7, 0, 50, 31, 618780, tzinfo=UTC)
    assert EsimHistoryEvent.list_from_api([{"bundleName": TH}, "junk", None]) == []


async def test_location_of_an_attached_esim_and_none_before(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    iccid = fake_esimgo.add_esim()["iccid"]
    assert await client.get_esim_location(iccid) is None  # the fake answers 404 until attached

    fake_esimgo.set_location(iccid, "FR", network="Orange", brand="Orange France")
    location = await client.get_esim_location(iccid)

    assert location is not None
    assert (location.country, location.network_brand) == ("FR", "Orange France")
    assert location.last_seen is not None
    assert EsimLocation.from_api({"country": "", "networkName": ""}) is None


async def test_refresh_is_sent_once_even_when_it_fails(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    iccid = fake_esimgo.add_esim()["iccid"]
    assert await client.refresh_esim(iccid) == "Successfully refreshed SIM"
    assert fake_esimgo.refreshed == [iccid]

    fake_esimgo.fail_next(f"GET /esims/{iccid}/refresh", status=500, times=3)
    with pytest.raises(SupplierUnavailableError):
        await client.refresh_esim(iccid)
    # Each refresh disconnects the user: a failure is not retried.
    assert len(fake_esimgo.calls(f"GET /esims/{iccid}/refresh")) == 2


async def test_revoking_an_unused_plan_puts_its_price_back_on_the_balance(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    order = await client.create_order(TH)
    iccid = order.iccids[0]
    after_purchase = fake_esimgo.balance

    status = await client.revoke_bundle(iccid, TH)

    assert "refunded to balance" in status
    price = Decimal(str(fake_esimgo.bundle(TH)["price"]))  # type: ignore[index]
    assert fake_esimgo.balance == after_purchase + price
    (call,) = fake_esimgo.calls("DELETE /esims/{iccid}/bundles/{name}")
    assert call.param("refundToBalance") == "true" and call.param("type") == "transaction"
    (plan,) = await client.get_esim_bundles(iccid)
    assert plan.state == "revoked"
    assert "bundle refunded to balance" in [e.kind for e in await client.get_esim_history(iccid)]


async def test_revoking_one_assignment_takes_that_copy_not_the_oldest(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    iccid = (await client.create_order(TH)).iccids[0]
    await client.create_order(TH, iccid=iccid)  # a second unused copy of the same plan
    oldest, newest = await client.get_esim_bundles(iccid)
    fake_esimgo.fail_next(
        "DELETE /esims/{iccid}/bundles/{name}/assignments/{assignmentId}", status=500
    )
    with pytest.raises(SupplierUnavailableError):
        await client.revoke_assignment(iccid, TH, newest.assignment_id)

    status = await client.revoke_assignment(iccid, TH, newest.assignment_id)

    assert "refunded to balance" in status
    calls = fake_esimgo.calls("DELETE /esims/{iccid}/bundles/{name}/assignments/{assignmentId}")
    assert len(calls) == 2  # the failed call was not retried by the client
    assert calls[-1].path == f"/esims/{iccid}/bundles/{TH}/assignments/{newest.assignment_id}"
    assert calls[-1].param("refundToBalance") == "true"
    assert calls[-1].param("type") == "transaction"
    states = {a.assignment_id: a.state for a in await client.get_esim_bundles(iccid)}
    assert states == {oldest.assignment_id: "queued", newest.assignment_id: "revoked"}


async def test_a_started_plan_cannot_be_revoked_and_a_failed_revoke_is_not_repeated(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    order = await client.create_order(TH)
    iccid = order.iccids[0]
    fake_esimgo.start_bundle(iccid)
    with pytest.raises(BadRequestError, match="used"):
        await client.revoke_bundle(iccid, TH)

    second = (await client.create_order(TH)).iccids[0]
    fake_esimgo.fail_next("DELETE /esims/{iccid}/bundles/{name}", status=500, times=3)
    with pytest.raises(SupplierUnavailableError):
        await client.revoke_bundle(second, TH)
    # A second DELETE would revoke another unused copy: never retried.
    assert len(fake_esimgo.calls(f"DELETE /esims/{second}/bundles/{TH}")) == 1
