"""The Prometheus metrics the bot exposes: names, labels and values moving as events are
reported, in the text format prometheus-client writes."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from services.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_every_metric_is_exposed_from_the_start() -> None:
    values = samples(Metrics())
    for status in ("delivered", "refunded", "refund_due", "cancelled"):
        assert values[("esimbot_orders_total", (("status", status),))] == 0
    assert values[("esimbot_payment_to_delivery_seconds_count", ())] == 0
    assert values[("esimbot_esimgo_budget_wait_seconds_count", ())] == 0


def test_reported_events_move_the_values() -> None:
    metrics = Metrics()
    metrics.update("message")
    metrics.update("message")
    metrics.update("callback_query")
    metrics.order_finished("delivered")
    metrics.delivered_after(4.2)
    metrics.esimgo_request("GET /esims/{iccid}", 200)
    metrics.esimgo_request("POST /orders", 503)
    metrics.esimgo_budget_wait(0.07)
    metrics.callback_event("processed")
    metrics.esimgo_balance(Decimal("123.45"), "USD")

    values = samples(metrics)
    assert values[("esimbot_updates_total", (("type", "message"),))] == 2
    assert values[("esimbot_updates_total", (("type", "callback_query"),))] == 1
    assert values[("esimbot_orders_total", (("status", "delivered"),))] == 1
    assert values[("esimbot_payment_to_delivery_seconds_count", ())] == 1
    assert values[("esimbot_payment_to_delivery_seconds_bucket", (("le", "5.0"),))] == 1
    assert values[("esimbot_payment_to_delivery_seconds_bucket", (("le", "2.0"),))] == 0
    requests = "esimbot_esimgo_requests_total"
    assert values[(requests, (("endpoint", "GET /esims/{iccid}"), ("status", "200")))] == 1
    assert values[(requests, (("endpoint", "POST /orders"), ("status", "503")))] == 1
    assert values[("esimbot_esimgo_budget_wait_seconds_sum", ())] == 0.07
    assert values[("esimbot_callback_events_total", (("outcome", "processed"),))] == 1
    assert values[("esimbot_esimgo_balance", (("currency", "USD"),))] == 123.45


def test_each_registry_counts_on_its_own() -> None:
    first, second = Metrics(), Metrics()
    first.update("message")
    assert ("esimbot_updates_total", (("type", "message"),)) not in samples(second)
