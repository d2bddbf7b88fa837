"""/order: finding orders, one order's story, and the admin's actions on it (Retry, Refund,
Resend, Mark resolved), each refused with its reason when it no longer fits, and recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from db.models import AdminAction, Order, OrderEvent, OrderStatus
from handlers.callbacks import install_help_callback_data, open_esim_callback_data
from services.admin.dashboard import Dashboard
from services.admin.lookup import OrderLookup, QueryKind, parse_query
from services.admin.order_actions import OrderActions
from services.admin.order_rules import OrderAction
from services.admin_alerts import AdminAlerts
from services.esimgo.client import EsimGoClient
from services.fulfilment import FulfilmentWorker, create_fulfilment_worker
from services.i18n import Translator
from services.orders import OrderService
from services.plan_takeback import PlanTakeBack
from services.pricing import PricingService
from tests.admin_helpers import ADMINS, GB_BUNDLE, add, add_users, load, make_order
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram
from tests.reach_helpers import synced_catalogue

ADMIN = ADMINS[0]
ICCID = "8944500102198300001"
LPA = "LPA:1$rsp.fake-esimgo.test$K2-ABC-123"


@pytest.fixture
def order_events() -> Table:
    """The order-events table every guarded transition writes."""
    return cast(Table, OrderEvent.__table__)


@pytest.fixture
def plans(esimgo_client: EsimGoClient) -> PlanTakeBack:
    return PlanTakeBack(esimgo_client)


@pytest.fixture
def actions(
    session_factory: async_sessionmaker[AsyncSession],
    messenger: AiogramMessenger,
    plans: PlanTakeBack,
) -> OrderActions:
    return OrderActions(session_factory, messenger, Translator(), plans)


@pytest.fixture
async def worker(
    session_factory: async_sessionmaker[AsyncSession],
    esimgo_client: EsimGoClient,
    messenger: AiogramMessenger,
    fake_esimgo: FakeEsimGo,
) -> AsyncIterator[FulfilmentWorker]:
    async with synced_catalogue(fake_esimgo, session_factory) as catalogue:
        pricing = PricingService(Decimal(30), Decimal("0.013"), "XTR")
        yield create_fulfilment_worker(
            session_factory=session_factory,
            esimgo=esimgo_client,
            messenger=messenger,
            translator=Translator(),
            alerts=AdminAlerts(session_factory, ADMINS),
            orders=OrderService(esimgo_client, catalogue, pricing),
            catalogue=catalogue,
            wake_event=asyncio.Event(),
            install_help_callback=install_help_callback_data(),
            open_esim_callback=open_esim_callback_data,
        )


def refunds(fake: FakeTelegram) -> list[str]:
    return [
        str(c.params["telegram_payment_charge_id"]) for c in fake.calls_to("refundStarPayment")
    ]


def photos_to(fake: FakeTelegram, chat_id: int) -> int:
    return len([c for c in fake.calls_to("sendPhoto") if c.ok and c.params["chat_id"] == chat_id])


async def recorded(
    session_factory: async_sessionmaker[AsyncSession],
) -> list[tuple[str, int, str, str, str | None]]:
    async with session_factory() as session:
        rows = await session.execute(select(AdminAction).order_by(AdminAction.id))
        return [(a.action, a.admin_id, a.outcome, str(a.order_id), a.note) for a in rows.scalars()]


# -- finding ------------------------------------------------------------------------------------


def test_what_an_admin_types_after_order() -> None:
    assert parse_query("abcd2345ef") == (QueryKind.PUBLIC_ID, "ABCD2345EF")
    assert parse_query(f" {ICCID} ") == (QueryKind.ICCID, ICCID)
    assert parse_query("123456789") == (QueryKind.USER_ID, "123456789")
    assert parse_query("@Alice_T") == (QueryKind.USERNAME, "Alice_T")
    for nonsense in ("", "@", "a b", "<b>", "x" * 40, "-1"):
        assert parse_query(nonsense) is None


async def test_find_by_public_id_iccid_user_id_and_username(
    session_factory: async_sessionmaker[AsyncSession], esimgo_client: EsimGoClient
) -> None:
    now = datetime.now(UTC)
    await add_users(session_factory, [1001], username="Alice_T")
    await add(
        session_factory,
        make_order(public_id="AAAA2222BB", iccid=ICCID, created_at=now - timedelta(days=2)),
        make_order(public_id="AAAA3333BB", kind="topup", iccid=ICCID, created_at=now),
        # Bought under an old username; the users row no longer says so.
        make_order(public_id="CCCC4444DD", telegram_user_id=2002, telegram_username="OldName"),
        make_order(public_id="2345678923", telegram_user_id=3003),
    )
    lookup = OrderLookup(session_factory, esimgo_client)
    assert [o.public_id for o in await lookup.find("aaaa2222bb")] == ["AAAA2222BB"]
    assert [o.public_id for o in await lookup.find(ICCID)] == ["AAAA3333BB", "AAAA2222BB"]
    assert [o.public_id for o in await lookup.find("1001")] == ["AAAA3333BB", "AAAA2222BB"]
    assert len(await lookup.find("@alice_t")) == 2
    assert [o.public_id for o in await lookup.find("@oldname")] == ["CCCC4444DD"]
    assert [o.public_id for o in await lookup.find("2345678923")] == ["2345678923"]
    for nothing in ("ZZZZ9999ZZ", "@nobody", "999", "", "DROP TABLE orders;", "9" * 30):
        assert await lookup.find(nothing) == []


async def test_the_story_of_an_order(
    session_factory: async_sessionmaker[AsyncSession],
    order_events: Table,
    esimgo_client: EsimGoClient,
    fake_esimgo: FakeEsimGo,
) -> None:
    order = make_order(
        public_id="STORY00001",
        iccid=ICCID,
        qr_code=LPA,
        esimgo_order_reference="ref-9",
        provider_payment_charge_id="prov-1",
        delivered_at=datetime.now(UTC),
    )
    await add(session_factory, order)
    start = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    async with session_factory() as session:
        await session.execute(
            insert(order_events),
            [
                {"order_id": order.id, "at": start, "from_status": None,
                 "to_status": "awaiting_payment", "actor": "user", "note": None},
                {"order_id": order.id, "at": start + timedelta(minutes=2),
                 "from_status": "fulfilling", "to_status": "delivered", "actor": "worker",
                 "note": "eSIM Go ref-9"},
                {"order_id": order.id, "at": start + timedelta(minutes=1),
                 "from_status": "awaiting_payment", "to_status": "paid", "actor": "user",
                 "note": None},
            ],
        )  # fmt: skip
        await session.commit()
    fake_esimgo.add_esim(ICCID, profileStatus="Installed")
    fake_esimgo.assign_bundle(ICCID, order.bundle_name)
    lookup = OrderLookup(session_factory, esimgo_client)

    story = await lookup.story("story00001")
    assert story is not None
    assert [(e.from_status, e.to_status, e.actor) for e in story.events] == [
        (None, "awaiting_payment", "user"),
        ("awaiting_payment", "paid", "user"),
        ("fulfilling", "delivered", "worker"),
    ]
    assert story.events[0].at == start
    assert story.esimgo_order_reference == "ref-9"
    assert story.telegram_payment_charge_id == "charge-STORY00001"
    assert story.provider_payment_charge_id == "prov-1"
    assert story.live is not None and story.live.details is not None
    assert story.live.details.profile_status == "Installed"
    assert [b.state for b in story.live.bundles] == ["queued"]
    assert story.refusals[OrderAction.RETRY] is not None
    assert story.refusals[OrderAction.REFUND] is None
    assert story.refusals[OrderAction.RESEND] is None

    fake_esimgo.fail_next("GET /esims/{iccid}", status=503, times=10)
    story = await lookup.story("STORY00001")
    assert story is not None and story.live is not None
    assert story.live.details is None and story.live.error
    assert await lookup.story("NOSUCH0000") is None


# -- refund -------------------------------------------------------------------------------------


async def test_refund_of_a_failed_stars_order_once_and_the_buyer_is_told(
    session_factory: async_sessionmaker[AsyncSession],
    actions: OrderActions,
    fake_telegram: FakeTelegram,
    worker: FulfilmentWorker,
) -> None:
    order = make_order(
        public_id="FAILED0001", status="failed", failure_reason="rejected: gone", language="ru"
    )
    await add(session_factory, order, telegram=fake_telegram)

    result = await actions.perform(OrderAction.REFUND, "FAILED0001", ADMIN)
    assert result.done and "Refunded" in result.message
    assert refunds(fake_telegram) == ["charge-FAILED0001"]
    stored = await load(session_factory, "FAILED0001")
    assert stored.status == OrderStatus.REFUNDED and stored.refunded_at is not None
    assert stored.lease_owner is None and stored.lease_until is None
    (told,) = fake_telegram.chat(1001)
    assert "возвращён" in (told.text or "") and "125 ⭐" in (told.text or "")

    # Nothing refunds or delivers it again: not the admin, not the worker.
    again = await actions.perform(OrderAction.REFUND, "FAILED0001", ADMINS[1])
    assert not again.done and again.message.startswith("Already refunded on ")
    for action in (OrderAction.RETRY, OrderAction.RESEND):
        assert not (await actions.perform(action, "FAILED0001", ADMIN)).done
    await worker.run_once()
    assert refunds(fake_telegram) == ["charge-FAILED0001"]
    assert photos_to(fake_telegram, 1001) == 0

    assert [(a, who, outcome) for a, who, outcome, _, _ in await recorded(session_factory)] == [
        ("refund", ADMIN, "done"),
        ("refund", ADMINS[1], "refused"),
        ("retry", ADMIN, "refused"),
        ("resend", ADMIN, "refused"),
    ]


async def test_refund_of_a_fiat_order_is_marked_by_hand(
    session_factory: async_sessionmaker[AsyncSession],
    actions: OrderActions,
    fake_telegram: FakeTelegram,
) -> None:
    await add(
        session_factory,
        make_order(
            public_id="FIAT000001", status="refund_due", price=499, price_currency="USD",
            telegram_payment_charge_id="tg-1", provider_payment_charge_id="stripe-1",
        ),
    )  # fmt: skip
    result = await actions.perform(OrderAction.REFUND, "FIAT000001", ADMIN)
    assert result.done and "by hand" in result.message
    assert refunds(fake_telegram) == []
    assert (await load(session_factory, "FIAT000001")).status == OrderStatus.REFUNDED
    assert "$4.99" in (fake_telegram.chat(1001)[0].text or "")


async def test_a_delivered_esim_can_be_refunded_once(
    session_factory: async_sessionmaker[AsyncSession],
    actions: OrderActions,
    fake_telegram: FakeTelegram,
    fake_esimgo: FakeEsimGo,
) -> None:
    fake_esimgo.add_esim(ICCID)
    fake_esimgo.assign_bundle(ICCID, GB_BUNDLE)
    fake_esimgo.install(ICCID)  # its plan stays: the money only goes back
    await add(
        session_factory,
        make_order(public_id="DELIV00001", qr_code=LPA, iccid=ICCID),
        telegram=fake_telegram,
    )
    assert (await actions.perform(OrderAction.REFUND, "DELIV00001", ADMIN)).done
    assert not (await actions.perform(OrderAction.REFUND, "DELIV00001", ADMIN)).done
    assert refunds(fake_telegram) == ["charge-DELIV00001"]
    # A refunded eSIM is never handed over again.
    resend = await actions.perform(OrderAction.RESEND, "DELIV00001", ADMIN)
    assert resend.message == "Refunded: the eSIM must not be handed over."


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("awaiting_payment", "Not paid yet"),
        ("cancelled", "Cancelled before payment"),
        ("fulfilling", "eSIM Go is being asked for it right now"),
    ],
)
async def test_refund_refused_while_the_state_does_not_fit(
    session_factory: async_sessionmaker[AsyncSession],
    actions: OrderActions,
    fake_telegram: FakeTelegram,
    status: str,
    reason: str,
) -> None:
    await add(session_factory, make_order(public_id="REFUSE0001", status=status))
    result = await actions.perform(OrderAction.REFUND, "REFUSE0001", ADMIN)
    assert not result.done and result.message.startswith(reason)
    assert refunds(fake_telegram) == []
    assert (await load(session_factory, "REFUSE0001")).status == status
    ((action, _, outcome, _, note),) = await recorded(session_factory)
    assert (action, outcome, note) == ("refund", "refused", result.message)


async def test_an_order_a_worker_holds_is_left_alone_until_its_lease_runs_out(
    session_factory: async_sessionmaker[AsyncSession],
    actions: OrderActions,
    fake_telegram: FakeTelegram,
) -> None:
    now = datetime.now(UTC)
    await add(
        session_factory,
        make_order(
            public_id="LEASED0001", status="failed", lease_owner="worker-1:1",
            lease_until=now + timedelta(minutes=2),
        ),
        # A worker that died holding it: its lease ran out.
        make_order(
            public_id="DEAD000001", status="failed", lease_owner="worker-2:7",
            lease_until=now - timedelta(seconds=1),
        ),
        telegram=fake_telegram,
    )  # fmt: skip
    held = await actions.perform(OrderAction.REFUND, "LEASED0001", ADMIN)
    assert not held.done and "worker is acting on it" in held.message
    assert (await actions.perform(OrderAction.REFUND, "DEAD000001", ADMIN)).done
    assert refunds(fake_telegram) == ["charge-DEAD000001"]


async def test_a_refund_telegram_refuses_leaves_the_order_as_it_was(
    session_factory: async_sessionmaker[AsyncSession],
    actions: OrderActions,
    fake_telegram: FakeTelegram,
) -> None:
    await add(
        session_factory,
        make_order(public_id="NOREFUND01", status="refund_due"),
        telegram=fake_telegram,
    )
    fake_telegram.fail_next("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    result = await actions.perform(OrderAction.REFUND, "NOREFUND01", ADMIN)
    assert not result.done and "Telegram refused the refund" in result.message
    assert "CHARGE_NOT_FOUND" in result.message
    stored = await load(session_factory, "NOREFUND01")
    assert stored.status == "refund_due" and stored.lease_owner is None
    assert fake_telegram.chat(1001) == []  # the buyer is told nothing untrue
    assert (await actions.perform(OrderAction.REFUND, "NOREFUND01", ADMIN)).done


async def refund_asked(fake_telegram: FakeTelegram) -> None:
    """Until the refund reached Telegram (which then takes its time to answer)."""
    async with asyncio.timeout(10):
        while not fake_telegram.calls_to("refundStarPayment"):  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)


async def test_a_slow_refund_keeps_the_order_from_the_worker(
    session_factory: async_sessionmaker[AsyncSession],
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
    fake_esimgo: FakeEsimGo,
    worker: FulfilmentWorker,
) -> None:
    """Telegram answers the refund after the admin's lease would have run out: the lease is
    renewed meanwhile, so the worker does not take the order and deliver it as well."""
    await add(
        session_factory, make_order(public_id="SLOWREF001", status="paid"), telegram=fake_telegram
    )
    actions = OrderActions(
        session_factory, messenger, Translator(), plans, lease=timedelta(seconds=1)
    )
    fake_telegram.delay("refundStarPayment", 4.0)
    refunding = asyncio.create_task(actions.perform(OrderAction.REFUND, "SLOWREF001", ADMIN))
    await refund_asked(fake_telegram)
    await asyncio.sleep(1.5)  # past the lease, which would have run out unrenewed
    assert not refunding.done(), "Telegram has not answered yet"
    await worker.run_once()
    result = await refunding

    assert result.done and refunds(fake_telegram) == ["charge-SLOWREF001"]
    stored = await load(session_factory, "SLOWREF001")
    assert stored.status == OrderStatus.REFUNDED and stored.lease_owner is None
    assert fake_esimgo.orders == [] and photos_to(fake_telegram, 1001) == 0


async def test_a_refund_whose_order_was_taken_over_alerts_the_admins(
    session_factory: async_sessionmaker[AsyncSession],
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
) -> None:
    """The lease was lost all the same (the process stalled, the database was out): the Stars
    went back, but the order is someone else's now. The admins are told, not only the log."""
    await add(
        session_factory,
        make_order(public_id="LOSTREF001", status="refund_due"),
        telegram=fake_telegram,
    )
    actions = OrderActions(
        session_factory,
        messenger,
        Translator(),
        plans,
        alerts=AdminAlerts(session_factory, ADMINS),
        lease=timedelta(seconds=0.3),
    )
    fake_telegram.delay("refundStarPayment", 3.0)
    refunding = asyncio.create_task(actions.perform(OrderAction.REFUND, "LOSTREF001", ADMIN))
    await refund_asked(fake_telegram)
    async with session_factory() as session:  # a worker took it over
        order = await session.scalar(select(Order).where(Order.public_id == "LOSTREF001"))
        assert order is not None and (order.lease_owner or "").startswith("admin:")
        order.lease_owner, order.lease_until = "worker-9:1", datetime.now(UTC) + timedelta(1)
        await session.commit()
    result = await refunding

    assert refunds(fake_telegram) == ["charge-LOSTREF001"]
    assert result.done and "taken over" in result.message
    (alert,) = fake_telegram.chat(ADMINS[0])
    assert "LOSTREF001" in (alert.text or "") and "taken over" in (alert.text or "")
    assert (await load(session_factory, "LOSTREF001")).lease_owner == "worker-9:1"


# -- retry --------------------------------------------------------------------------------------


async def test_retry_sends_a_failed_order_back_and_it_is_delivered_not_refunded(
    session_factory: async_sessionmaker[AsyncSession],
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
    fake_esimgo: FakeEsimGo,
    worker: FulfilmentWorker,
) -> None:
    now = datetime.now(UTC)
    await add(
        session_factory,
        make_order(
            public_id="RETRY00001", status="failed", attempts=1, last_attempt_at=now,
            failure_reason="rejected: Insufficient balance", next_attempt_at=now,
        ),
    )  # fmt: skip
    woken: list[bool] = []
    actions = OrderActions(
        session_factory, messenger, Translator(), plans, wake_worker=lambda: woken.append(True)
    )
    result = await actions.perform(OrderAction.RETRY, "RETRY00001", ADMIN)
    assert result.done and woken == [True]
    stored = await load(session_factory, "RETRY00001")
    assert stored.status == OrderStatus.PAID and stored.retried_at is not None
    assert stored.next_attempt_at is None

    await worker.run_once()
    stored = await load(session_factory, "RETRY00001")
    assert stored.status == OrderStatus.DELIVERED and stored.delivered_at is not None
    assert len(fake_esimgo.orders) == 1 and photos_to(fake_telegram, 1001) == 1
    assert refunds(fake_telegram) == []
    refused = await actions.perform(OrderAction.RETRY, "RETRY00001", ADMIN)
    assert refused.message.startswith("Already delivered")


async def test_a_retried_order_paid_long_ago_is_delivered_not_failed_for_its_old_deadline(
    session_factory: async_sessionmaker[AsyncSession],
    messenger: AiogramMessenger,
    fake_telegram: FakeTelegram,
    fake_esimgo: FakeEsimGo,
    worker: FulfilmentWorker,
) -> None:
    """The fulfilment deadline runs from the admin's retry, not from a payment hours ago."""
    paid = datetime.now(UTC) - timedelta(hours=3)
    await add(
        session_factory,
        make_order(
            public_id="RETRY00002", status="failed", attempts=1, created_at=paid,
            paid_at=paid, last_attempt_at=paid, failure_reason="rejected: Insufficient balance",
        ),
        telegram=fake_telegram,
    )  # fmt: skip
    actions = OrderActions(session_factory, messenger, Translator(), plans)
    assert (await actions.perform(OrderAction.RETRY, "RETRY00002", ADMIN)).done

    await worker.run_once()
    stored = await load(session_factory, "RETRY00002")
    assert stored.status == OrderStatus.DELIVERED, stored.failure_reason
    assert len(fake_esimgo.orders) == 1 and photos_to(fake_telegram, 1001) == 1
    assert refunds(fake_telegram) == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": "paid"}, "Already waiting for fulfilment"),
        ({"status": "failed", "failure_reason": "stray: payment for order X (paid)"},
         "This payment was for an order that is no longer open"),
        ({"status": "failed", "esimgo_order_reference": "ref-1", "failure_reason": "mismatch"},
         "eSIM Go already has an order for it (ref-1)"),
    ],
    ids=["paid", "stray", "bought-elsewhere"],
)  # fmt: skip
async def test_retry_refused(
    session_factory: async_sessionmaker[AsyncSession],
    actions: OrderActions,
    fields: dict[str, str],
    reason: str,
) -> None:
    await add(session_factory, make_order(public_id="NORETRY001", **fields))
    result = await actions.perform(OrderAction.RETRY, "NORETRY001", ADMIN)
    assert not result.done and result.message.startswith(reason)
    assert (await load(session_factory, "NORETRY001")).status == fields["status"]


# -- resend and resolve ------------------------------------------------------------------------


async def test_resend_sends_the_esim_to_the_buyer_again(
    session_factory: async_sessionmaker[AsyncSession],
    actions: OrderActions,
    fake_telegram: FakeTelegram,
    worker: FulfilmentWorker,
) -> None:
    await add(
        session_factory,
        make_order(
            public_id="RESEND0001", iccid=ICCID, qr_code=LPA, activation_code="K2-ABC-123",
            smdp_address="rsp.fake-esimgo.test", delivered_at=datetime.now(UTC),
        ),
    )  # fmt: skip
    assert (await actions.perform(OrderAction.RESEND, "RESEND0001", ADMIN)).done
    under_way = await actions.perform(OrderAction.RESEND, "RESEND0001", ADMIN)
    assert under_way.message == "A delivery is already under way."

    await worker.run_once()
    assert photos_to(fake_telegram, 1001) == 1
    stored = await load(session_factory, "RESEND0001")
    assert stored.delivered_at is not None and stored.status == OrderStatus.DELIVERED
    assert (await actions.perform(OrderAction.RESEND, "RESEND0001", ADMIN)).done


async def test_mark_resolved_takes_an_order_off_the_attention_list(
    session_factory: async_sessionmaker[AsyncSession], actions: OrderActions
) -> None:
    await add(
        session_factory,
        make_order(public_id="LOST000001", failure_reason="recipient unavailable: blocked"),
        make_order(public_id="FAILED0002", status="failed"),
    )
    board = Dashboard(session_factory, usd_per_star=1, fulfilment_deadline=timedelta(minutes=15))
    assert [i.public_id for i in await board.attention()] == ["LOST000001", "FAILED0002"]

    assert (await actions.perform(OrderAction.RESOLVE, "LOST000001", ADMIN)).done
    again = await actions.perform(OrderAction.RESOLVE, "LOST000001", ADMIN)
    assert again.message == "Already marked resolved."
    money_left = await actions.perform(OrderAction.RESOLVE, "FAILED0002", ADMIN)
    assert money_left.message.startswith("Paid and not delivered")
    assert [i.public_id for i in await board.attention()] == ["FAILED0002"]
    assert (await actions.perform(OrderAction.RESOLVE, "NOSUCH0000", ADMIN)).message == (
        "No such order."
    )
