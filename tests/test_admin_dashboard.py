"""/admin's figures: exact sales, refunds, margin and conversion for today / 7 / 30 days, the
chart, the supplier balance and its daily alert, the attention list and the daily report."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from db.models import AdminAction, OrderStatus
from services.admin.daily_report import DailyReport, next_report_at
from services.admin.dashboard import AttentionReason, Dashboard
from services.admin.supplier import SupplierService
from services.admin_alerts import AdminAlerts
from services.catalogue import CatalogueService
from services.esimgo.client import EsimGoClient
from services.metrics import Metrics
from services.orders import OrderService
from services.pricing import Price, PricingService
from tests.admin_helpers import ADMINS, Clock, add, load, make_order
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
STAR = Decimal("0.013")


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def dashboard(session_factory: async_sessionmaker[AsyncSession]) -> Dashboard:
    return Dashboard(
        session_factory,
        usd_per_star=STAR,
        fulfilment_deadline=timedelta(minutes=15),
        clock=lambda: NOW,
    )


async def add_sales(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """A known month: five paid orders (one a top-up, one in dollars), two refunds, two
    invoices never paid, and an order older than the month."""
    delivered = OrderStatus.DELIVERED.value
    await add(
        session_factory,
        # Today: a new eSIM and a top-up, both bought from eSIM Go; one unpaid invoice.
        make_order(
            public_id="A", cost=Decimal("1.25"), price=125, esimgo_order_reference="R-A",
            invoice_sent_at=ago(hours=2, minutes=1), paid_at=ago(hours=2), status=delivered,
        ),
        make_order(
            public_id="B", kind="topup", cost=Decimal("2.50"), price=250,
            esimgo_order_reference="R-B", invoice_sent_at=ago(hours=1, minutes=1),
            paid_at=ago(hours=1), status=delivered,
        ),
        make_order(
            public_id="E", status=OrderStatus.AWAITING_PAYMENT.value,
            invoice_sent_at=ago(minutes=30),
        ),
        # 3 days ago: paid, never reached eSIM Go, refunded the same day.
        make_order(
            public_id="C", invoice_sent_at=ago(days=3, minutes=1), paid_at=ago(days=3),
            refunded_at=ago(days=3) + timedelta(minutes=20), status=OrderStatus.REFUNDED.value,
        ),
        # 5 days ago, in dollars (499 cents).
        make_order(
            public_id="H", cost=Decimal("3.00"), price=499, price_currency="USD",
            esimgo_order_reference="R-H", invoice_sent_at=ago(days=5, minutes=1),
            paid_at=ago(days=5), status=delivered,
        ),
        # 10 days ago: delivered, then refunded 2 days ago (its eSIM Go cost stays spent).
        make_order(
            public_id="D", cost=Decimal("5.00"), price=500, esimgo_order_reference="R-D",
            invoice_sent_at=ago(days=10, minutes=1), paid_at=ago(days=10),
            refunded_at=ago(days=2), status=OrderStatus.REFUNDED.value,
        ),
        # 20 days ago: an invoice never paid. 40 days ago: outside every period.
        make_order(
            public_id="F", status=OrderStatus.CANCELLED.value, invoice_sent_at=ago(days=20)
        ),
        make_order(
            public_id="G", esimgo_order_reference="R-G", invoice_sent_at=ago(days=40),
            paid_at=ago(days=40), status=delivered,
        ),
    )  # fmt: skip


async def test_dashboard_figures_are_exact(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await add_sales(session_factory)
    figures = await dashboard(session_factory).periods()

    today = figures.today
    assert (today.paid_orders, today.new_esims, today.topups) == (2, 1, 1)
    assert today.revenue == (Price(375, "XTR"),)
    assert today.revenue_usd == Decimal("4.875")
    assert today.esimgo_cost == Decimal("3.75")
    assert (today.refunds, today.refunded, today.refunded_usd) == (0, (), Decimal(0))
    assert today.margin_usd == Decimal("1.125")
    assert (today.invoices_sent, today.invoices_paid) == (3, 2)
    assert today.conversion == Decimal(2) / Decimal(3)

    week = figures.week
    assert (week.paid_orders, week.new_esims, week.topups) == (4, 3, 1)
    assert week.revenue == (Price(499, "USD"), Price(500, "XTR"))
    assert week.revenue_usd == Decimal("11.49")  # 500 × 0.013 + 4.99
    assert week.esimgo_cost == Decimal("6.75")  # C never reached eSIM Go
    assert (week.refunds, week.refunded) == (2, (Price(625, "XTR"),))
    assert week.refunded_usd == Decimal("8.125")
    assert week.margin_usd == Decimal("-3.385")
    assert (week.invoices_sent, week.invoices_paid) == (5, 4)

    month = figures.month
    assert (month.paid_orders, month.new_esims, month.topups) == (5, 4, 1)
    assert month.revenue == (Price(499, "USD"), Price(1000, "XTR"))
    assert month.revenue_usd == Decimal("17.99")
    assert month.esimgo_cost == Decimal("11.75")
    assert (month.refunds, month.refunded_usd) == (2, Decimal("8.125"))
    assert month.margin_usd == Decimal("-1.885")
    assert (month.invoices_sent, month.invoices_paid) == (7, 5)


async def test_no_sales_give_zeros_not_errors(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    board = dashboard(session_factory)
    figures = (await board.periods()).month
    assert (figures.paid_orders, figures.revenue, figures.revenue_usd) == (0, (), Decimal(0))
    assert figures.conversion is None and figures.margin_usd == 0
    assert await board.attention() == []
    assert Image.open(io.BytesIO(await board.chart_png())).format == "PNG"


async def test_sales_per_day_and_the_chart_png(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await add_sales(session_factory)
    board = dashboard(session_factory)
    days = await board.sales_by_day()
    assert len(days) == 30 and days[-1].day == date(2026, 3, 15)
    by_day = {d.day: (d.orders, d.revenue_usd) for d in days if d.orders}
    assert by_day == {
        date(2026, 3, 15): (2, Decimal("4.875")),
        date(2026, 3, 12): (1, Decimal("1.625")),
        date(2026, 3, 10): (1, Decimal("4.99")),
        date(2026, 3, 5): (1, Decimal("6.5")),
    }

    png = await board.chart_png()
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG" and image.size == (900, 450)


async def test_attention_lists_stuck_orders_oldest_first(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    never_received = make_order(
        public_id="NR", created_at=ago(hours=5), failure_reason="recipient unavailable"
    )
    resolved = make_order(public_id="NR2", created_at=ago(hours=5, minutes=1))
    await add(
        session_factory,
        make_order(public_id="DUE", status="refund_due", created_at=ago(hours=9)),
        make_order(public_id="FAIL", status="failed", created_at=ago(hours=8)),
        make_order(public_id="LATE", status="fulfilling", created_at=ago(minutes=20)),
        make_order(public_id="SLOW", status="fulfilling", created_at=ago(minutes=10)),
        make_order(public_id="WAIT", status="paid", created_at=ago(minutes=6)),
        make_order(public_id="NEW", status="paid", created_at=ago(minutes=1)),
        make_order(public_id="OK", created_at=ago(hours=7), delivered_at=ago(hours=7)),
        make_order(public_id="SENDING", created_at=ago(hours=7), next_attempt_at=ago(minutes=1)),
        never_received,
        resolved,
        make_order(public_id="OLD", status="refunded", created_at=ago(days=1)),
    )
    await add(
        session_factory,
        AdminAction(order_id=resolved.id, admin_id=1, action="resolve", outcome="done"),
    )
    items = await dashboard(session_factory).attention()
    assert [(i.public_id, i.reason) for i in items] == [
        ("DUE", AttentionReason.REFUND_DUE),
        ("FAIL", AttentionReason.FAILED),
        ("NR", AttentionReason.NOT_RECEIVED),
        ("LATE", AttentionReason.FULFILLING_LATE),
        ("WAIT", AttentionReason.PAID_WAITING),
    ]
    assert items[2].failure_reason == "recipient unavailable"


async def test_supplier_balance_runway_and_a_daily_low_balance_alert(
    session_factory: async_sessionmaker[AsyncSession],
    fake_esimgo: FakeEsimGo,
    fake_telegram: FakeTelegram,
    esimgo_client: EsimGoClient,
    messenger: AiogramMessenger,
) -> None:
    clock = Clock(NOW)
    await add(
        session_factory,
        make_order(cost=Decimal("10.00"), esimgo_order_reference="S1", paid_at=ago(days=1)),
        make_order(cost=Decimal("4.00"), esimgo_order_reference="S2", paid_at=ago(days=6)),
        make_order(cost=Decimal("99.00"), esimgo_order_reference="S3", paid_at=ago(days=8)),
        make_order(cost=Decimal("5.00"), paid_at=ago(days=2), status="refunded"),  # not bought
    )
    fake_esimgo.balance = Decimal("40.00")
    metrics = Metrics()
    supplier = SupplierService(
        session_factory, esimgo_client, warn_below=Decimal("50"), metrics=metrics, clock=clock
    )
    alerts = AdminAlerts(session_factory, ADMINS)

    status = await supplier.check(messenger, alerts)
    assert (status.balance, status.currency, status.spend_7d) == (
        Decimal("40.00"), "USD", Decimal("14.00")
    )  # fmt: skip
    assert status.runway_days == Decimal(20)  # 40 / (14 / 7)
    assert status.low
    assert metrics.registry.get_sample_value("esimbot_esimgo_balance", {"currency": "USD"}) == 40

    await supplier.check(messenger, alerts)  # the same day: no second alert
    clock.advance(days=1)
    await supplier.check(messenger, alerts)
    for admin in ADMINS:
        warnings = [m for m in fake_telegram.chat(admin) if "below 50.00 USD" in (m.text or "")]
        assert len(warnings) == 2
        assert "about 20.0 days" in (warnings[0].text or "")

    fake_esimgo.balance = Decimal("60")
    clock.advance(days=1)
    assert not (await supplier.check(messenger, alerts)).low
    assert len(fake_telegram.chat(ADMINS[0])) == 2


async def test_supplier_without_a_warning_level_or_without_esimgo(
    session_factory: async_sessionmaker[AsyncSession],
    fake_esimgo: FakeEsimGo,
    esimgo_client: EsimGoClient,
) -> None:
    supplier = SupplierService(session_factory, esimgo_client, warn_below=None)
    status = await supplier.status()
    assert status.balance == Decimal("1000.00") and not status.low
    assert status.runway_days is None  # nothing spent: no runway to speak of
    fake_esimgo.fail_next("GET /organisation", status=503, times=10)
    status = await supplier.status()
    assert status.balance is None and status.error and not status.low


def test_next_report_time() -> None:
    assert next_report_at(datetime(2026, 3, 15, 7, 59, tzinfo=UTC), 8) == datetime(
        2026, 3, 15, 8, tzinfo=UTC
    )
    assert next_report_at(datetime(2026, 3, 15, 8, 0, tzinfo=UTC), 8) == datetime(
        2026, 3, 16, 8, tzinfo=UTC
    )


async def test_daily_report_has_yesterdays_numbers_and_the_attention_list_once(
    session_factory: async_sessionmaker[AsyncSession],
    fake_telegram: FakeTelegram,
    messenger: AiogramMessenger,
) -> None:
    await add_sales(session_factory)
    await add(session_factory, make_order(public_id="STUCK", status="refund_due"))
    report = DailyReport(dashboard(session_factory), AdminAlerts(session_factory, ADMINS), hour=8)
    day = date(2026, 3, 12)  # C: paid 125 Stars, refunded the same day

    assert await report.send(messenger, day)
    assert not await report.send(messenger, day)
    (message,) = fake_telegram.chat(ADMINS[0])
    text = message.text or ""
    assert "Daily report for 2026-03-12" in text
    assert "Paid orders: 1 (1 new eSIMs, 0 top-ups)" in text
    assert "Revenue: 125 ⭐ ≈ $1.62" in text  # 1.625, rounded half to even
    assert "Refunds: 1 · 125 ⭐" in text
    assert "Conversion: 1 of 1 invoices paid (100%)" in text
    assert "STUCK refund due by hand" in text


async def test_an_invoice_sent_is_recorded_once_for_the_conversion(
    session_factory: async_sessionmaker[AsyncSession], esimgo_client: EsimGoClient
) -> None:
    clock = Clock(ago(minutes=5))
    orders = OrderService(
        esimgo_client,
        CatalogueService(esimgo_client, session_factory),
        PricingService(Decimal(30), STAR, "XTR"),
        clock=clock,
    )
    order = make_order(public_id="INVOICED01", status=OrderStatus.AWAITING_PAYMENT.value)
    await add(session_factory, order)
    async with session_factory() as session:
        await orders.invoice_sent(session, "INVOICED01", order.telegram_user_id + 1)
    assert (await load(session_factory, "INVOICED01")).invoice_sent_at is None  # not theirs
    async with session_factory() as session:
        await orders.invoice_sent(session, "INVOICED01", order.telegram_user_id)
    clock.advance(minutes=3)  # the user asked for the invoice again
    async with session_factory() as session:
        await orders.invoice_sent(session, "INVOICED01", order.telegram_user_id)
    assert (await load(session_factory, "INVOICED01")).invoice_sent_at == ago(minutes=5)
    today = (await dashboard(session_factory).periods()).today
    assert (today.invoices_sent, today.invoices_paid, today.conversion) == (1, 0, 0)
