"""Top-ups through the real dispatcher: eSIM → plans → compatibility → pay → same ICCID, no QR."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from aiogram.types import User
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import create_fulfilment_worker
from bot.messenger import AiogramMessenger
from db.base import utcnow
from db.models import Esim, EsimBundle, Order, OrderStatus
from db.repositories.orders import OrderRepository
from handlers.callbacks import (
    CountryCallback,
    MyEsimsCallback,
    TopUpCallback,
    TopUpPageCallback,
    TopUpPickCallback,
    topup_callback_data,
)
from services.catalogue import CatalogueService
from services.esimgo.client import EsimGoClient
from services.fulfilment import FulfilmentWorker
from services.orders import OrderService, TopUpStatus
from services.pricing import PricingService
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import ApiCall
from tests.helpers import ADMIN_ID, BotEnv, answers, make_user, pre_checkout_update
from tests.test_fulfilment import Clock
from tests.test_fulfilment import make_worker as make_worker_on
from tests.test_purchase import (
    GB,
    get_invoice,
    invoice_amount,
    open_confirmation,
    pay,
    transactions,
)

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True

COMPATIBLE = "GET /esims/{iccid}/compatible/{bundle}"
GB_3GB = "esim_3GB_30D_GB_V2"


def make_worker(env: BotEnv, clock: Clock | None = None) -> FulfilmentWorker:
    """The worker exactly as `esimbot run` builds it (through the factory on a test clock)."""
    if clock is None:
        return create_fulfilment_worker(env.deps)
    return make_worker_on(env, clock=clock)


async def bought_esim(env: BotEnv, user: User) -> Esim:
    """A UK eSIM bought and delivered through the bot (its QR photo is in the chat)."""
    await open_confirmation(env, user)
    invoice = await get_invoice(env, user)
    await pay(env, user, invoice, charge_id=f"first-{user.id}")
    await make_worker(env).run_once()
    async with env.deps.session_factory() as session:
        query = select(Esim).where(Esim.telegram_user_id == user.id)
        return (await session.execute(query)).scalar_one()


async def top_up_invoice(env: BotEnv, user: User, esim: Esim, bundle: str = GB_3GB) -> ApiCall:
    """Top up → pick a plan → Pay on the confirmation; returns the sendInvoice call."""
    await env.press(user, TopUpCallback(esim_id=esim.id))
    await env.press(user, TopUpPickCallback(esim_id=esim.id, bundle=bundle))
    return await get_invoice(env, user)


def texts_to(env: BotEnv, chat_id: int) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in env.fake_telegram.calls_to("sendMessage")
        if c.params["chat_id"] == chat_id
    ]


def photos(env: BotEnv) -> int:
    return len([c for c in env.fake_telegram.calls_to("sendPhoto") if c.ok])


async def topup_orders(env: BotEnv) -> list[Order]:
    async with env.deps.session_factory() as session:
        result = await session.execute(select(Order).where(Order.kind == "topup"))
        return list(result.scalars().all())


async def esim_rows(env: BotEnv) -> list[Esim]:
    async with env.deps.session_factory() as session:
        return list((await session.execute(select(Esim))).scalars().all())


async def test_top_up_puts_the_plan_on_the_same_esim_without_a_new_qr(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(3001)
    esim = await bought_esim(env, alice)
    tail = esim.iccid[-4:]
    assert photos(env) == 1
    async with env.deps.session_factory() as session:
        await session.execute(update(Esim).where(Esim.id == esim.id).values(tracking=False))
        await session.commit()

    await env.press(alice, TopUpCallback(esim_id=esim.id))
    plans = env.screen(alice)
    assert f"Top up your eSIM ending in …{tail}" in str(plans.text)
    assert "United Kingdom" in str(plans.text) and "Nothing to install" in str(plans.text)
    # The same plans, prices and labels as browsing the country.
    await env.send(alice, "/start")
    await env.press(alice, CountryCallback(iso="GB"))
    browsing = env.screen(alice).button_texts()
    assert plans.button_texts()[:-1] == browsing[:-1]
    assert "›" in plans.button_texts()
    await env.press(alice, TopUpPageCallback(esim_id=esim.id, page=1), plans.message_id)
    assert env.screen(alice).button_texts() != plans.button_texts()
    assert env.fake_esimgo.calls(COMPATIBLE) == []

    await env.press(alice, TopUpPickCallback(esim_id=esim.id, bundle=GB_3GB))
    (check,) = env.fake_esimgo.calls(COMPATIBLE)
    assert check.path == f"/esims/{esim.iccid}/compatible/{GB_3GB}"
    confirmation = str(env.screen(alice).text)
    assert "Confirm your order" in confirmation and f"ending in …{tail}" in confirmation
    assert "Nothing needs installing" in confirmation and "QR" not in confirmation

    invoice = await get_invoice(env, alice)
    assert f"…{tail}" in str(invoice.params["description"])
    validate = env.fake_esimgo.calls("POST /orders")[-1].json
    assert validate["type"] == "validate" and validate["order"][0]["iccids"] == [esim.iccid]
    calls = await pay(env, alice, invoice, charge_id="topup-1")
    assert any("Adding the plan" in str(c.params.get("text")) for c in calls)

    await make_worker(env).run_once()
    assert photos(env) == 1  # still only the first eSIM's QR
    delivered = [c for c in env.fake_telegram.calls_to("sendMessage") if "is now on" in str(c)]
    assert len(delivered) == 1
    text = str(delivered[0].params["text"])
    assert f"ending in …{tail}" in text and "Nothing to install" in text and "3 GB" in text
    (row,) = delivered[0].params["reply_markup"]["inline_keyboard"]  # type: ignore[index]
    assert "My eSIMs" in row[0]["text"]
    assert MyEsimsCallback.unpack(row[0]["callback_data"]) == MyEsimsCallback(
        action="esim", id=esim.id
    )

    assert transactions(env) == 2
    line = env.fake_esimgo.calls("POST /orders")[-1].json["order"][0]
    assert line["item"] == GB_3GB
    assert line["iccids"] == [esim.iccid] and line["allowReassign"] is False
    assert [a["name"] for a in env.fake_esimgo.esim_bundles[esim.iccid]] == [GB, GB_3GB]
    (order,) = await topup_orders(env)
    assert order.status == OrderStatus.DELIVERED and order.delivered_at is not None
    assert order.iccid == esim.iccid and order.qr_code is None
    assert order.esimgo_order_reference == env.fake_esimgo.orders[-1]["orderReference"]
    assert order.telegram_payment_charge_id == "topup-1"
    (row_after,) = await esim_rows(env)
    assert row_after.id == esim.id and row_after.tracking is True
    assert not env.fake_telegram.calls_to("refundStarPayment")


async def test_a_notifications_top_up_button_leads_to_the_plans(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(3002)
    esim = await bought_esim(env, alice)
    async with env.deps.session_factory() as session:
        bundle = EsimBundle(
            iccid=esim.iccid,
            assignment_key="used-up",
            bundle_name=GB,
            state="depleted",
            initial_bytes=1_000_000_000,
            remaining_bytes=0,
        )
        session.add(bundle)
        await session.commit()
    await env.deps.notifier.evaluate(AiogramMessenger(env.bot), esim, [bundle])
    notice = env.screen(alice)
    assert "used up" in str(notice.text)
    assert notice.button("Top up")["callback_data"] == topup_callback_data(esim.id)

    await env.tap(alice, "Top up")
    assert "Top up your eSIM ending in" in str(env.screen(alice).text)
    await env.press(alice, TopUpPickCallback(esim_id=esim.id, bundle=GB))
    invoice = await get_invoice(env, alice)
    await pay(env, alice, invoice, charge_id="from-notice")
    await make_worker(env).run_once()
    (order,) = await topup_orders(env)
    assert order.status == OrderStatus.DELIVERED and order.iccid == esim.iccid
    assert photos(env) == 1


async def test_an_incompatible_plan_is_refused_before_any_invoice(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(3003)
    esim = await bought_esim(env, alice)
    env.fake_esimgo.incompatible.add((esim.iccid, GB_3GB))
    orders_before = len(env.fake_esimgo.calls("POST /orders"))

    await env.press(alice, TopUpCallback(esim_id=esim.id))
    calls = await env.press(alice, TopUpPickCallback(esim_id=esim.id, bundle=GB_3GB))
    screen = env.screen(alice)
    assert "cannot be added to this eSIM" in str(screen.text)
    assert "Top up your eSIM ending in" in str(screen.text)  # the list again
    assert not [c for c in calls if c.method == "sendInvoice"]
    assert len(env.fake_esimgo.calls(COMPATIBLE)) == 1
    assert len(env.fake_esimgo.calls("POST /orders")) == orders_before
    assert await topup_orders(env) == []

    env.fake_esimgo.fail_next(COMPATIBLE, status=503, times=4, headers={"Retry-After": "0"})
    calls = await env.press(alice, TopUpPickCallback(esim_id=esim.id, bundle=GB))
    (answer,) = answers(calls)
    assert "try again" in str(answer.params.get("text"))
    assert not [c for c in calls if c.method == "sendInvoice"]
    assert await topup_orders(env) == []


async def test_someone_elses_esim_cannot_be_topped_up(bot_env: BotEnv) -> None:
    env = bot_env
    alice, mallory = make_user(3004), make_user(3666, username="mallory")
    esim = await bought_esim(env, alice)
    await env.send(mallory, "/start")
    for data in (
        TopUpCallback(esim_id=esim.id),
        TopUpPageCallback(esim_id=esim.id, page=1),
        TopUpPickCallback(esim_id=esim.id, bundle=GB),
        TopUpCallback(esim_id=987_654),
    ):
        calls = await env.press(mallory, data)
        (answer,) = answers(calls)
        assert "not available" in str(answer.params.get("text"))
        assert answer.params.get("show_alert") is True
        assert esim.iccid[-4:] not in str(env.screen(mallory).text)
    assert env.fake_esimgo.calls(COMPATIBLE) == []
    assert await topup_orders(env) == []


async def test_a_deleted_esim_is_explained_and_cannot_be_paid_for(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(3005)
    esim = await bought_esim(env, alice)
    invoice = await top_up_invoice(env, alice, esim)
    async with env.deps.session_factory() as session:
        await session.execute(update(Esim).where(Esim.id == esim.id).values(deleted_at=utcnow()))
        await session.commit()

    payload, amount = str(invoice.params["payload"]), invoice_amount(invoice)
    calls = await env.feed(pre_checkout_update(alice, payload=payload, total_amount=amount))
    (answer,) = [c for c in calls if c.method == "answerPreCheckoutQuery"]
    assert answer.params["ok"] is False
    assert "no longer in your account" in str(answer.params["error_message"])

    await env.press(alice, TopUpCallback(esim_id=esim.id))
    assert "deleted" in str(env.screen(alice).text)
    assert len(env.fake_esimgo.calls(COMPATIBLE)) == 1  # only the first pick asked


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_a_different_iccid_is_not_delivered_but_refunded_and_reported(
    bot_env: BotEnv, language: str
) -> None:
    env = bot_env
    user = make_user(3006, language_code=language)
    esim = await bought_esim(env, user)
    invoice = await top_up_invoice(env, user, esim)
    await pay(env, user, invoice, charge_id="mismatch")
    env.fake_esimgo.topups_to_new_iccid = True

    worker = make_worker(env)
    await worker.run_once()
    await worker.run_once()
    (other,) = [i for i in env.fake_esimgo.esims if i != esim.iccid]
    assert photos(env) == 1
    assert transactions(env) == 2
    refunds = env.fake_telegram.calls_to("refundStarPayment")
    assert [r.params["telegram_payment_charge_id"] for r in refunds] == ["mismatch"]
    (order,) = await topup_orders(env)
    assert order.status == OrderStatus.REFUNDED and order.delivered_at is None
    assert order.iccid == esim.iccid
    assert esim.iccid in str(order.failure_reason) and other in str(order.failure_reason)
    assert order.esimgo_order_reference == env.fake_esimgo.orders[-1]["orderReference"]
    assert [e.iccid for e in await esim_rows(env)] == [esim.iccid]

    admin = texts_to(env, ADMIN_ID)
    assert any(
        order.public_id in t and esim.iccid in t and other in t and "Not delivered" in t
        for t in admin
    )
    told = texts_to(env, user.id)
    assert not any("is now on" in t or "добавлен на вашу" in t for t in told)
    refunded = "has been refunded" if language == "en" else "возвращена"
    could_not = "could not add the new plan" if language == "en" else "Не удалось добавить"
    assert len([t for t in told if refunded in t and could_not in t]) == 1


async def test_russian_user_tops_up_in_russian(bot_env: BotEnv) -> None:
    env = bot_env
    ivan = make_user(3007, language_code="ru", username="ivan")
    esim = await bought_esim(env, ivan)
    await env.press(ivan, TopUpCallback(esim_id=esim.id))
    plans = env.screen(ivan)
    assert "Пополнение eSIM" in str(plans.text) and "Великобритания" in str(plans.text)
    assert "Назад" in plans.button_texts()[-1]
    await env.press(ivan, TopUpPickCallback(esim_id=esim.id, bundle=GB_3GB))
    confirmation = str(env.screen(ivan).text)
    assert "Подтвердите заказ" in confirmation and "ничего" in confirmation.lower()
    invoice = await get_invoice(env, ivan)
    assert str(invoice.params["title"]).startswith("Пополнение")
    calls = await pay(env, ivan, invoice)
    assert any("Добавляем тариф" in str(c.params.get("text")) for c in calls)
    await make_worker(env).run_once()
    text = texts_to(env, ivan.id)[-1]
    assert "Новый тариф добавлен" in text and f"…{esim.iccid[-4:]}" in text
    assert "3 ГБ" in text

    env.fake_esimgo.incompatible.add((esim.iccid, GB))
    await env.press(ivan, TopUpCallback(esim_id=esim.id))
    await env.press(ivan, TopUpPickCallback(esim_id=esim.id, bundle=GB))
    assert "нельзя добавить" in str(env.screen(ivan).text)


async def test_a_top_up_whose_answer_was_lost_is_adopted_by_its_iccid(bot_env: BotEnv) -> None:
    env, clock = bot_env, Clock()
    alice = make_user(3008)
    esim = await bought_esim(env, alice)
    invoice = await top_up_invoice(env, alice, esim, bundle=GB)
    await pay(env, alice, invoice, charge_id="lost-answer")
    # Another customer's new eSIM with the same plan, bought moments earlier.
    foreign = await env.deps.esimgo.create_order(GB)
    env.fake_esimgo.fail_next("POST /orders:transaction", status=500, create_then_fail=True)

    worker = make_worker(env, clock)
    await worker.run_once()
    assert len(env.fake_esimgo.orders) == 3 and await topup_orders(env)
    clock.advance(seconds=30)
    await worker.run_once()

    assert len(env.fake_esimgo.orders) == 3  # adopted, not bought again
    (order,) = await topup_orders(env)
    assert order.status == OrderStatus.DELIVERED
    assert order.esimgo_order_reference == env.fake_esimgo.orders[-1]["orderReference"]
    assert order.esimgo_order_reference != foreign.reference
    assert any(f"…{esim.iccid[-4:]}" in t and "is now on" in t for t in texts_to(env, alice.id))
    assert photos(env) == 1


# -- storage: which eSIM and plans a top-up may use, on SQLite and PostgreSQL ---------------------


@pytest.fixture
async def esimgo_client(fake_esimgo: FakeEsimGo) -> AsyncIterator[EsimGoClient]:
    client = EsimGoClient(fake_esimgo.base_url, fake_esimgo.api_key)
    yield client
    await client.close()


@pytest.fixture
async def catalogue(
    session_factory: async_sessionmaker[AsyncSession], esimgo_client: EsimGoClient
) -> CatalogueService:
    service = CatalogueService(esimgo_client, session_factory, refresh_minutes=360)
    await service.sync()
    return service


@pytest.fixture
def order_service(esimgo_client: EsimGoClient, catalogue: CatalogueService) -> OrderService:
    pricing = PricingService(Decimal(30), Decimal("0.013"), "XTR")
    return OrderService(esimgo_client, catalogue, pricing)


async def _owned(
    session_factory: async_sessionmaker[AsyncSession],
    iccid: str,
    owner: int,
    bundle: str | None,
    country_code: str | None = None,
    **esim: object,
) -> int:
    """An eSIM and (when `bundle`) the delivered order that bought it; returns the eSIM id."""
    now = utcnow()
    async with session_factory() as session:
        if bundle is not None:
            session.add(
                Order(
                    public_id=f"P{iccid[-9:]}",
                    telegram_user_id=owner,
                    chat_id=owner,
                    kind="new",
                    bundle_name=bundle,
                    country_code=country_code,
                    cost=Decimal("1.5"),
                    price=150,
                    price_currency="XTR",
                    status=OrderStatus.DELIVERED.value,
                    iccid=iccid,
                    created_at=now,
                    updated_at=now,
                )
            )
        row = Esim(iccid=iccid, telegram_user_id=owner, **esim)
        session.add(row)
        await session.commit()
        return row.id


async def test_top_up_targets_and_esim_marks(
    session_factory: async_sessionmaker[AsyncSession],
    catalogue: CatalogueService,
    order_service: OrderService,
) -> None:
    plans = catalogue.catalogue
    regional = plans.shared_bundles("GB")[0]
    by_order = await _owned(session_factory, "8944000000000000001", 1, GB, "GB")
    by_bundle = await _owned(session_factory, "8944000000000000002", 1, GB)
    by_region = await _owned(session_factory, "8944000000000000003", 1, regional.name)
    unknown = await _owned(session_factory, "8944000000000000004", 1, None)
    deleted = await _owned(session_factory, "8944000000000000005", 1, GB, deleted_at=utcnow())
    marked = await _owned(
        session_factory,
        "8944000000000000006",
        1,
        GB,
        "GB",
        tracking=False,
        deletion_scheduled_at=utcnow(),
    )

    async with session_factory() as session:
        for esim_id in (by_order, by_bundle):
            target = await order_service.topup_target(session, esim_id, 1)
            assert (target.status, target.iso) == (TopUpStatus.READY, "GB")
            assert [b.name for b in target.own] == [b.name for b in plans.own_bundles("GB")]
            assert target.offers(GB) and target.offers(regional.name)
        target = await order_service.topup_target(session, by_region, 1)
        assert target.status is TopUpStatus.READY and target.iso is None
        assert target.own == () and target.offers(regional.name) and not target.offers(GB)
        wanted = {c.iso for c in regional.coverage if len(c.iso) == 2}
        assert all(wanted <= {c.iso for c in b.coverage} for b in target.shared)
        assert (await order_service.topup_target(session, unknown, 1)).status is (
            TopUpStatus.NO_PLANS
        )
        assert (await order_service.topup_target(session, deleted, 1)).status is (
            TopUpStatus.DELETED
        )
        assert (await order_service.topup_target(session, by_order, 2)).status is (
            TopUpStatus.NOT_FOUND
        )

        repo = OrderRepository(session)
        assert await repo.mark_topped_up("8944000000000000006", 2) is False
        assert await repo.mark_topped_up("8944000000000000006", 1) is True
        await session.commit()
        esim = await repo.owned_esim(marked, 1)
    assert esim is not None and esim.tracking is True and esim.deletion_scheduled_at is None
