"""GET /metrics on the bot's HTTP server: Prometheus text whose values move as the bot works
(updates, a purchase, a cancelled order, eSIM Go requests and callbacks, the balance), behind
METRICS_TOKEN when it is set and for loopback only when it is not."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bot.server import create_web_app, start_bot_server
from handlers.callbacks import OrderCallback
from tests.admin_chat import ADMIN, buy, fulfil, invoice, pay
from tests.helpers import BotEnv, make_user
from tests.tracking_helpers import ServerEnv

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ALICE, BOB, CAROL = make_user(1001), make_user(1002), make_user(1003)
TOKEN = "scrape-me-0123456789"


async def scrape(server: ServerEnv, **headers: str) -> Samples:
    async with server.http.get(f"{server.base_url}/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        body = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_values_move_after_a_purchase(server_env: ServerEnv) -> None:
    env = server_env.env
    before = await scrape(server_env)
    assert value(before, "esimbot_orders_total", status="delivered") == 0
    assert value(before, "esimbot_payment_to_delivery_seconds_count") == 0

    await buy(env, ALICE, "charge-alice")
    sent = await invoice(env, BOB)
    await env.press(BOB, OrderCallback(action="cancel", order=str(sent.params["payload"])))
    # Carol pays, and eSIM Go refuses the order for good: the worker refunds her.
    await pay(env, CAROL, await invoice(env, CAROL), "charge-carol")
    env.fake_esimgo.fail_next("POST /orders", 400, body={"message": "Bundle not available"})
    await fulfil(env)
    await server_env.post_callback({"alertType": "LowBalance", "balance": 5})
    await server_env.post_callback({"alertType": "LowBalance"}, signature="forged")
    await env.send(ADMIN, "/admin")  # reads the eSIM Go balance
    after = await scrape(server_env)

    moved = {
        ("esimbot_orders_total", "delivered"): 1,
        ("esimbot_orders_total", "cancelled"): 1,
        ("esimbot_orders_total", "refunded"): 1,
        ("esimbot_payment_to_delivery_seconds_count", None): 1,
        ("esimbot_callback_events_total", "accepted"): 1,
        ("esimbot_callback_events_total", "unauthorized"): 1,
    }
    for (name, label), count in moved.items():
        key = "status" if name == "esimbot_orders_total" else "outcome"
        labels = {key: label} if label else {}
        assert value(after, name, **labels) - value(before, name, **labels) == count, name
    for kind in ("message", "callback_query", "pre_checkout_query"):
        assert value(after, "esimbot_updates_total", type=kind) > 0, kind
    # Three invoices validated, one transaction, one refused: by the documented route, never a
    # concrete path.
    requests = "esimbot_esimgo_requests_total"
    assert value(after, requests, endpoint="POST /orders", status="200") == 4
    assert value(after, requests, endpoint="POST /orders", status="400") == 1
    assert value(
        after, "esimbot_esimgo_requests_total", endpoint="GET /organisation", status="200"
    )
    assert not [key for key in after if "8944" in str(key)]  # no ICCID became a label
    assert value(after, "esimbot_esimgo_budget_wait_seconds_count") >= 3
    assert value(after, "esimbot_esimgo_balance", currency="USD") == 998.36  # 1000 − 1.64


@pytest.fixture
async def token_server(bot_env: BotEnv) -> AsyncIterator[ServerEnv]:
    """The server of a bot whose METRICS_TOKEN is set."""
    settings = bot_env.deps.settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    deps = dataclasses.replace(bot_env.deps, settings=settings)
    async for server in _serve(dataclasses.replace(bot_env, deps=deps), "127.0.0.1"):
        yield server


async def test_with_a_token_only_its_bearer_may_scrape(token_server: ServerEnv) -> None:
    url = f"{token_server.base_url}/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        async with token_server.http.get(url, headers=headers) as response:
            assert response.status == 401, headers
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "esimbot" not in await response.text()
    samples = await scrape(token_server, Authorization=f"Bearer {TOKEN}")
    assert ("esimbot_orders_total", (("status", "delivered"),)) in samples


def _outward_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


async def test_without_a_token_only_loopback_may_scrape(bot_env: BotEnv) -> None:
    address = _outward_address()
    if address is None:
        pytest.skip("no network address besides loopback")
    async for server in _serve(bot_env, "0.0.0.0"):
        port = server.base_url.rsplit(":", 1)[1]
        async with server.http.get(f"http://{address}:{port}/metrics") as response:
            assert response.status == 403
            assert "esimbot" not in await response.text()
        async with server.http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200


async def _serve(env: BotEnv, host: str) -> AsyncIterator[ServerEnv]:
    app = create_web_app(env.deps, env.dispatcher, env.bot)
    runner = await start_bot_server(app, host, 0)
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        try:
            yield ServerEnv(env, app, runner, f"http://127.0.0.1:{port}", http)
        finally:
            await runner.cleanup()
