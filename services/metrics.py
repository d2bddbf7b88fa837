"""The bot's Prometheus metrics: one registry per process, built by the app, fed by the code
that sees each event, read by GET /metrics (prometheus-client writes the text format)."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Orders end in one of these; each label exists from the start so rate() sees the zeros.
FINAL_STATUSES = ("delivered", "refunded", "refund_due", "cancelled")
# Paid → eSIM in the chat: seconds normally, up to the 15-minute deadline when eSIM Go is slow.
DELIVERY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800)
# eSIM Go allows 10 requests/s: a call waits a fraction of a second unless a burst queues up.
BUDGET_WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)


class Metrics:
    """Counters, histograms and gauges named `esimbot_*`, in a registry of their own (so
    tests and several apps in one process never share values)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._updates = Counter(
            "esimbot_updates",
            "Telegram updates handled, by type",
            ["type"],
            registry=self.registry,
        )
        self._orders = Counter(
            "esimbot_orders",
            "Orders that reached a final status",
            ["status"],
            registry=self.registry,
        )
        for status in FINAL_STATUSES:
            self._orders.labels(status=status)
        self._payment_to_delivery = Histogram(
            "esimbot_payment_to_delivery_seconds",
            "From the payment to the order delivered (its eSIM is sent to the buyer at once)",
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self._esimgo_requests = Counter(
            "esimbot_esimgo_requests",
            "Requests to eSIM Go, by endpoint (its documented path) and HTTP status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self._budget_wait = Histogram(
            "esimbot_esimgo_budget_wait_seconds",
            "How long an eSIM Go request waited for the account's request budget",
            buckets=BUDGET_WAIT_BUCKETS,
            registry=self.registry,
        )
        self._callback_events = Counter(
            "esimbot_callback_events",
            "eSIM Go callbacks received, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self._balance = Gauge(
            "esimbot_esimgo_balance",
            "The eSIM Go account balance when last read",
            ["currency"],
            registry=self.registry,
        )

    def update(self, update_type: str) -> None:
        """One Telegram update of this type (message, callback_query, pre_checkout_query…)."""
        self._updates.labels(type=update_type).inc()

    def order_finished(self, status: str, count: int = 1) -> None:
        """`count` orders reached a final status (see FINAL_STATUSES)."""
        self._orders.labels(status=status).inc(count)

    def delivered_after(self, seconds: float) -> None:
        """An order reached `delivered` this long after its payment."""
        self._payment_to_delivery.observe(max(seconds, 0.0))

    def esimgo_request(self, endpoint: str, status: int | str) -> None:
        """`endpoint` is the route as documented ("GET /esims/{iccid}"), never a concrete
        path: one label value per ICCID would grow without end."""
        self._esimgo_requests.labels(endpoint=endpoint, status=str(status)).inc()

    def esimgo_budget_wait(self, seconds: float) -> None:
        self._budget_wait.observe(max(seconds, 0.0))

    def callback_event(self, outcome: str) -> None:
        """An eSIM Go callback received: "accepted", "duplicate", "unauthorized", "malformed"."""
        self._callback_events.labels(outcome=outcome).inc()

    def esimgo_balance(self, balance: Decimal, currency: str) -> None:
        self._balance.labels(currency=currency).set(float(balance))

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of a /metrics answer."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
