"""The eSIM Go client against the fake eSIM Go server over loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest

from services.esimgo.client import EsimGoClient, RetryPolicy, Timeouts
from services.esimgo.errors import (
    AuthError,
    BadRequestError,
    InsufficientBalanceError,
    NotFoundError,
    OrderOutcomeUnknownError,
    RateLimitedError,
    SupplierUnavailableError,
)
from services.qr import lpa_string
from tests.fakes.esimgo import FakeEsimGo

FAST_TIMEOUTS = Timeouts(catalogue=2.0, orders=0.4, default=0.4)
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=2.0)


def make_client(
    fake: FakeEsimGo, *, api_key: str | None = None, rps: float = 1000.0
) -> EsimGoClient:
    return EsimGoClient(
        fake.base_url,
        api_key if api_key is not None else fake.api_key,
        max_requests_per_second=rps,
        timeouts=FAST_TIMEOUTS,
        retry=FAST_RETRY,
    )


@pytest.fixture
async def client(fake_esimgo: FakeEsimGo) -> AsyncIterator[EsimGoClient]:
    async with make_client(fake_esimgo) as esimgo:
        yield esimgo


# -- catalogue -------------------------------------------------------------------------------


async def test_catalogue_wrapped_pages_are_all_fetched_in_few_requests(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    items = await client.fetch_catalogue_raw()
    assert len(items) == 1500
    assert {i["name"] for i in items} == {b["name"] for b in fake_esimgo.catalogue}
    calls = fake_esimgo.calls("GET /catalogue")
    assert [c.param("page") for c in calls] == ["1", "2"]
    assert {c.param("perPage") for c in calls} == {"1000"}


async def test_catalogue_uses_page_count_without_an_extra_request(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    items = await client.fetch_catalogue_raw(per_page=500)
    assert len(items) == 1500
    assert len(fake_esimgo.calls("GET /catalogue")) == 3


async def test_catalogue_as_bare_list_stops_at_a_short_or_empty_page(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.catalogue_shape = "list"
    assert len(await client.fetch_catalogue_raw()) == 1500
    assert len(fake_esimgo.calls("GET /catalogue")) == 2  # the second page is short
    fake_esimgo.requests.clear()
    assert len(await client.fetch_catalogue_raw(per_page=500)) == 1500
    assert len(fake_esimgo.calls("GET /catalogue")) == 4  # three full pages, then an empty one


async def test_catalogue_wrapper_without_page_count_stops_at_a_short_page(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.catalogue_page_count = False
    assert len(await client.fetch_catalogue_raw(per_page=400)) == 1500
    assert len(fake_esimgo.calls("GET /catalogue")) == 4


async def test_get_bundle_parses_decimal_price_and_coverage(client: EsimGoClient) -> None:
    bundle = await client.get_bundle("esim_1GB_7D_TH_V2")
    assert bundle.name == "esim_1GB_7D_TH_V2"
    assert bundle.data_mb == 1000 and bundle.duration_days == 7
    assert isinstance(bundle.price, Decimal) and bundle.price > 0
    assert [c.iso for c in bundle.coverage] == ["TH"]
    with pytest.raises(NotFoundError):
        await client.get_bundle("esim_1GB_7D_XX_V2")


async def test_organisation_balance_is_decimal(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.balance = Decimal("1234.56")
    org = await client.get_organisation()
    assert org.balance == Decimal("1234.56")
    assert org.currency == "USD"
    request = fake_esimgo.requests[-1]
    assert request.headers["X-API-Key"] == fake_esimgo.api_key
    assert request.headers["Accept"] == "application/json"


# -- errors and retries ----------------------------------------------------------------------


async def test_wrong_key_is_an_auth_error_and_not_retried(fake_esimgo: FakeEsimGo) -> None:
    async with make_client(fake_esimgo, api_key="wrong") as esimgo:
        with pytest.raises(AuthError) as info:
            await esimgo.get_organisation()
    assert info.value.status == 401
    assert info.value.message == "Unauthorized"
    assert len(fake_esimgo.requests) == 1


async def test_429_waits_for_retry_after_then_succeeds(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.fail_next(
        "GET /organisation",
        429,
        headers={"Retry-After": "0.3"},
        body={"message": "Rate limit exceeded"},
    )
    org = await client.get_organisation()
    assert org.currency == "USD"
    first, second = fake_esimgo.calls("GET /organisation")
    assert second.at - first.at >= 0.28


async def test_429_with_a_long_retry_after_is_left_to_the_caller(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.fail_next("GET /organisation", 429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitedError) as info:
        await client.get_organisation()
    assert info.value.retry_after == 3600
    assert len(fake_esimgo.requests) == 1


async def test_503_is_retried_then_succeeds(fake_esimgo: FakeEsimGo, client: EsimGoClient) -> None:
    fake_esimgo.fail_next("GET /catalogue/bundle/{name}", 503, times=2)
    bundle = await client.get_bundle("esim_1GB_7D_GB_V2")
    assert bundle.name == "esim_1GB_7D_GB_V2"
    assert len(fake_esimgo.requests) == 3


async def test_503_that_persists_is_supplier_unavailable(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.fail_next("GET /organisation", 503, times=10, body="")
    with pytest.raises(SupplierUnavailableError) as info:
        await client.get_organisation()
    assert info.value.status == 503
    assert not isinstance(info.value, OrderOutcomeUnknownError)
    assert len(fake_esimgo.requests) == FAST_RETRY.attempts


async def test_a_get_that_times_out_is_retried(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.fail_next("GET /organisation", delay=5)
    org = await client.get_organisation()
    assert org.name
    assert len(fake_esimgo.calls("GET /organisation")) == 2


async def test_a_transaction_that_times_out_is_not_retried_and_its_outcome_is_unknown(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    fake_esimgo.fail_next("POST /orders", delay=5, create_then_fail=True)
    with pytest.raises(OrderOutcomeUnknownError):
        await client.create_order("esim_1GB_7D_GB_V2")
    assert len(fake_esimgo.calls("POST /orders")) == 1
    # The order was placed although the answer was lost: reconciliation finds it.
    found = await client.list_orders(since)
    assert [o.reference for o in found] == [fake_esimgo.orders[0]["orderReference"]]
    assert found[0].items[0].bundle_name == "esim_1GB_7D_GB_V2"
    assert found[0].iccids == tuple(fake_esimgo.orders[0]["order"][0]["iccids"])


async def test_a_transaction_answered_500_is_not_retried_and_can_be_reconciled(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    fake_esimgo.fail_next("POST /orders", 500, create_then_fail=True)
    with pytest.raises(OrderOutcomeUnknownError) as info:
        await client.create_order("esim_1GB_7D_TH_V2")
    assert info.value.status == 500
    assert len(fake_esimgo.calls("POST /orders")) == 1
    assert len(await client.list_orders(since)) == 1


async def test_a_transaction_refused_before_processing_is_a_plain_500_unknown_outcome(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.fail_next("POST /orders", 502)
    with pytest.raises(OrderOutcomeUnknownError):
        await client.create_order("esim_1GB_7D_TH_V2")
    assert fake_esimgo.orders == []
    assert await client.list_orders(datetime.now(UTC) - timedelta(minutes=1)) == []


async def test_validate_is_retried_because_it_charges_nothing(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.fail_next("POST /orders:validate", 503)
    validation = await client.validate_order("esim_1GB_7D_DE_V2")
    assert validation.valid
    assert len(fake_esimgo.calls("POST /orders")) == 2


async def test_bad_request_carries_esimgo_message(client: EsimGoClient) -> None:
    with pytest.raises(BadRequestError) as info:
        await client.create_order("esim_NOPE_V2")
    assert info.value.status == 400
    assert "esim_NOPE_V2" in info.value.message
    assert not isinstance(info.value, InsufficientBalanceError)


async def test_plain_text_and_empty_error_bodies_still_give_a_message(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.fail_next("GET /esims/{iccid}", 400, body="Invalid ICCID format")
    with pytest.raises(BadRequestError, match="Invalid ICCID format"):
        await client.get_esim("123")
    fake_esimgo.fail_next("GET /esims/{iccid}", 400, body="")
    with pytest.raises(BadRequestError, match="HTTP 400"):
        await client.get_esim("123")


async def test_insufficient_balance(fake_esimgo: FakeEsimGo, client: EsimGoClient) -> None:
    fake_esimgo.balance = Decimal("0.10")
    validation = await client.validate_order("esim_1GB_7D_GB_V2")
    assert validation.valid is False
    assert validation.total > Decimal("0.10")
    with pytest.raises(InsufficientBalanceError) as info:
        await client.create_order("esim_1GB_7D_GB_V2")
    assert "balance" in info.value.message.lower()
    assert fake_esimgo.orders == []


# -- orders ----------------------------------------------------------------------------------


async def test_validate_prices_from_the_catalogue(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    expected = Decimal(str(fake_esimgo.bundle("esim_1GB_7D_AE_V2")["price"]))  # type: ignore[index]
    validation = await client.validate_order("esim_1GB_7D_AE_V2")
    assert validation.valid
    assert validation.total == validation.unit_price == expected
    assert validation.currency == "USD"
    body = fake_esimgo.requests[-1].json
    assert body == {
        "type": "validate",
        "assign": True,
        "order": [{"type": "bundle", "item": "esim_1GB_7D_AE_V2", "quantity": 1}],
    }


async def test_create_order_returns_credentials_and_charges_the_balance(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    price = Decimal(str(fake_esimgo.bundle("esim_1GB_7D_TH_V2")["price"]))  # type: ignore[index]
    result = await client.create_order("esim_1GB_7D_TH_V2")
    assert result.status == "completed"
    assert result.total == price
    assert fake_esimgo.balance == Decimal("1000.00") - price
    (esim,) = result.esims
    assert esim.iccid.startswith("8944") and len(esim.iccid) in (19, 20)
    assert esim.smdp_address == "rsp.fake-esimgo.test"
    assert (
        lpa_string(esim.smdp_address, esim.matching_id)
        == f"LPA:1$rsp.fake-esimgo.test${esim.matching_id}"
    )
    assert result.items[0].iccids == (esim.iccid,)
    assert result.created_at is not None and result.created_at.tzinfo is not None
    again = await client.get_order(result.reference)
    assert again.esims == result.esims


async def test_smdp_address_with_scheme_is_stripped_for_the_lpa(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.smdp_http_prefix = True
    (esim,) = (await client.create_order("esim_1GB_7D_US_V2")).esims
    assert esim.smdp_address == "http://rsp.fake-esimgo.test"
    assert lpa_string(esim.smdp_address, esim.matching_id).startswith(
        "LPA:1$rsp.fake-esimgo.test$"
    )


async def test_order_without_esims_falls_back_to_assignments(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.omit_esims_in_order_response = True
    result = await client.create_order("esim_1GB_7D_TR_V2")
    (esim,) = result.esims
    assert esim.iccid in fake_esimgo.esims
    (lookup,) = fake_esimgo.calls("GET /esims/assignments")
    assert lookup.param("reference") == result.reference
    assert lookup.headers["Accept"] == "application/json"


async def test_top_up_orders_onto_the_existing_iccid_without_reassignment(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    iccid = fake_esimgo.add_esim()["iccid"]
    result = await client.create_order("esim_1GB_7D_TH_V2", iccid=iccid)
    assert result.iccids == (iccid,)
    line = fake_esimgo.calls("POST /orders")[-1].json["order"][0]
    assert line["iccids"] == [iccid] and line["allowReassign"] is False


async def test_incompatible_bundle_is_reported_and_refused(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    iccid = fake_esimgo.add_esim()["iccid"]
    fake_esimgo.incompatible.add((iccid, "esim_1GB_7D_DE_V2"))
    assert await client.is_compatible(iccid, "esim_1GB_7D_GB_V2") is True
    assert await client.is_compatible(iccid, "esim_1GB_7D_DE_V2") is False
    with pytest.raises(BadRequestError, match="not compatible"):
        await client.create_order("esim_1GB_7D_DE_V2", iccid=iccid)
    assert fake_esimgo.orders == []


async def test_list_orders_filters_by_creation_time_and_reads_every_page(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    old = await client.create_order("esim_1GB_7D_GB_V2")
    fake_esimgo.orders[0]["createdDate"] = "2020-01-01T00:00:00.000Z"
    since = datetime.now(UTC) - timedelta(minutes=1)
    new = [await client.create_order("esim_1GB_7D_GB_V2") for _ in range(3)]
    template = fake_esimgo.orders[-1]
    fake_esimgo.orders.extend({**template, "orderReference": f"bulk-{i}"} for i in range(230))
    found = await client.list_orders(since)
    assert len(found) == 233
    assert old.reference not in {o.reference for o in found}
    assert [o.reference for o in found[:3]] == [o.reference for o in new]
    calls = fake_esimgo.calls("GET /orders")
    # Three pages; a safe GET may be retried after a dropped keep-alive connection.
    assert sorted({int(c.param("page") or 0) for c in calls}) == [1, 2, 3]
    first = calls[0]
    assert first.param("createdAt") == (
        "gte:" + since.strftime("%Y-%m-%dT%H:%M:%S.") + f"{since.microsecond // 1000:03d}Z"
    )
    assert first.param("includeIccids") == "true"


async def test_list_orders_accepts_a_bare_list(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.orders_shape = "list"
    placed = await client.create_order("esim_1GB_7D_GB_V2")
    found = await client.list_orders(datetime.now(UTC) - timedelta(minutes=5))
    assert [o.reference for o in found] == [placed.reference]


# -- eSIMs -----------------------------------------------------------------------------------


async def test_assignments_as_json(fake_esimgo: FakeEsimGo, client: EsimGoClient) -> None:
    fake_esimgo.omit_esims_in_order_response = True
    reference = (await client.create_order("esim_1GB_7D_GB_V2")).reference
    (esim,) = await client.get_assignments(reference)
    record = fake_esimgo.esims[esim.iccid]
    assert (esim.matching_id, esim.smdp_address) == (record["matchingId"], record["smdpAddress"])


async def test_assignments_as_csv_when_the_server_ignores_accept(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    reference = (await client.create_order("esim_1GB_7D_GB_V2")).reference
    fake_esimgo.assignments_csv_always = True
    (esim,) = await client.get_assignments(reference)
    record = fake_esimgo.esims[esim.iccid]
    assert (esim.matching_id, esim.smdp_address) == (record["matchingId"], record["smdpAddress"])


async def test_iccid_sent_as_json_number_stays_an_exact_string(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    fake_esimgo.iccids_as_numbers = True
    iccid = "89445385320081602229"  # 20 digits: a float would round it
    fake_esimgo.add_esim(iccid)
    result = await client.create_order("esim_1GB_7D_GB_V2", iccid=iccid)
    assert result.iccids == (iccid,)
    assert result.esims[0].iccid == iccid
    assert (await client.get_esim(iccid)).iccid == iccid


async def test_esim_details_with_ms_epoch_install_time(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    iccid = fake_esimgo.add_esim()["iccid"]
    details = await client.get_esim(iccid)
    assert details.profile_status == "Released"
    assert details.first_installed_at is None
    fake_esimgo.set_profile_status(iccid, "Installed", installed_ms=1_686_839_400_000)
    details = await client.get_esim(iccid)
    assert details.profile_status == "Installed"
    assert details.first_installed_at == datetime(2023, 6, 15, 14, 30, tzinfo=UTC)
    with pytest.raises(NotFoundError):
        await client.get_esim("8944000000000000000")


async def test_esim_bundles_state_is_case_insensitive(
    fake_esimgo: FakeEsimGo, client: EsimGoClient
) -> None:
    result = await client.create_order("esim_1GB_7D_GB_V2")
    iccid = result.iccids[0]
    fake_esimgo.bundle_state_case = "title"
    fake_esimgo.set_usage(iccid, remaining_bytes=250_000_000, state="ACTIVE")
    (assignment,) = await client.get_esim_bundles(iccid)
    assert assignment.bundle_name == "esim_1GB_7D_GB_V2"
    assert assignment.state == "active"
    assert assignment.initial_bytes == 1_000_000_000
    assert assignment.remaining_bytes == 250_000_000
    assert assignment.reference.startswith(result.reference)
    assert assignment.assigned_at is not None and assignment.assigned_at.tzinfo is not None


# -- transport -------------------------------------------------------------------------------


async def test_limiter_keeps_under_10_requests_per_second_under_50_concurrent_calls(
    fake_esimgo: FakeEsimGo,
) -> None:
    async with make_client(fake_esimgo, rps=9.0) as esimgo:
        results = await asyncio.gather(*(esimgo.get_organisation() for _ in range(50)))
    assert len(results) == 50
    assert fake_esimgo.max_requests_in_window(1.0) <= 10
    assert max(fake_esimgo.requests_per_second().values()) <= 10


async def test_an_injected_session_is_used_and_left_open(fake_esimgo: FakeEsimGo) -> None:
    async with aiohttp.ClientSession() as session:
        esimgo = EsimGoClient(fake_esimgo.base_url, fake_esimgo.api_key, session=session)
        await esimgo.get_organisation()
        await esimgo.close()
        assert not session.closed


async def test_the_api_key_never_reaches_the_logs(
    fake_esimgo: FakeEsimGo, client: EsimGoClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_esimgo.fail_next("GET /organisation", 503)
    fake_esimgo.fail_next("POST /orders", 500)
    await client.get_organisation()
    with pytest.raises(OrderOutcomeUnknownError):
        await client.create_order("esim_1GB_7D_GB_V2")
    async with make_client(fake_esimgo, api_key="sk-live-wrong-key") as wrong:
        with pytest.raises(AuthError):
            await wrong.get_organisation()
    assert "GET /organisation" in caplog.text  # the calls were logged...
    assert fake_esimgo.api_key not in caplog.text  # ...without the key
    assert "sk-live-wrong-key" not in caplog.text
    assert "sk-live-wrong-key" not in repr(wrong)


async def test_the_fake_answers_429_above_the_accounts_10_requests_a_second(
    fake_esimgo: FakeEsimGo,
) -> None:
    fake_esimgo.limit_requests(10, window=1.0)
    headers = {"X-API-Key": fake_esimgo.api_key}
    url = f"{fake_esimgo.base_url}/organisation"
    async with aiohttp.ClientSession() as http:

        async def get() -> tuple[int, str | None]:
            async with http.get(url, headers=headers) as response:
                return response.status, response.headers.get("Retry-After")

        # Twelve at once land well within one second of each other.
        answers = await asyncio.gather(*(get() for _ in range(12)))
    assert sorted(answers, key=lambda a: a[0]) == [(200, None)] * 10 + [(429, "1")] * 2
    assert fake_esimgo.rate_limited == 2
