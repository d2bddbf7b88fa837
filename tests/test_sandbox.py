"""Sandbox mode (ESIMGO_API_KEY=sandbox), end to end: the real bot, Telegram played by the fake
Bot API, eSIM Go by the built-in stand-in the bot starts itself (no test fake of eSIM Go here),
and the bot's own HTTP server receiving the stand-in's signed callbacks."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zxingcpp
from aiogram.types import User
from PIL import Image
from sqlalchemy import select

from bot import tuning
from bot.app import close_deps, create_bot, create_deps, create_fulfilment_worker
from bot.config import ConfigError, Settings, load_settings
from bot.dispatcher import create_dispatcher
from db.models import CallbackEvent, Esim, EsimBundle, Order, OrderStatus
from handlers.callbacks import BundleCallback
from services.esimgo.standin import EsimGoStandIn
from services.qr import parse_lpa
from tests.fakes.telegram import DEFAULT_TOKEN, ApiCall, FakeTelegram
from tests.helpers import ADMIN_ID, BotEnv, _ErrorRecords, make_user
from tests.tracking_helpers import ServerEnv, start_server_env, stop_server_env

# Orders are paid (in simulation) and refunded: SQLite and PostgreSQL both.
ON_EVERY_DATABASE = True

GB = "esim_1GB_7D_GB_V2"
BANNER = "🧪 Sandbox: a test shop. No real money moves, and no eSIM from here works."
BANNER_RU = (
    "🧪 Песочница: тестовый магазин. Настоящие деньги не списываются, и eSIM отсюда не работают."
)
SCREENS = ("sendMessage", "editMessageText", "sendPhoto", "editMessageCaption")


def sandbox_settings(fake_telegram: FakeTelegram, database_url: str) -> Settings:
    return load_settings(
        _env_file=None,
        bot_token=DEFAULT_TOKEN,
        esimgo_api_key="sandbox",
        telegram_api_base=fake_telegram.base_url,
        database_url=database_url,
        admin_ids=frozenset({ADMIN_ID}),
        # Tests tap faster than fingers: no per-user throttle (ignored before main's has one).
        throttle_burst=1_000_000,
    )


@contextlib.asynccontextmanager
async def running(
    settings: Settings, fake_telegram: FakeTelegram, errors: _ErrorRecords
) -> AsyncIterator[ServerEnv]:
    """The bot as `esimbot run` builds it in sandbox mode, with its HTTP server."""
    bot = create_bot(settings)
    deps = await create_deps(settings, bot)
    assert deps.sandbox is not None
    try:
        await deps.catalogue.sync()
        dispatcher = create_dispatcher(deps)
        tuning.apply(bot, dispatcher)
        standin = deps.sandbox.standin
        env = BotEnv(dispatcher, bot, fake_telegram, standin, deps, errors)  # type: ignore[arg-type]
        server = await start_server_env(env)
        try:
            yield server
        finally:
            await stop_server_env(server)
    finally:
        await bot.session.close()
        await close_deps(deps)


@pytest.fixture
async def sandbox(
    bot_env_database: str, fake_telegram: FakeTelegram, error_records: _ErrorRecords
) -> AsyncIterator[ServerEnv]:
    async with running(
        sandbox_settings(fake_telegram, bot_env_database), fake_telegram, error_records
    ) as server:
        yield server


def standin(server: ServerEnv) -> EsimGoStandIn:
    assert server.env.deps.sandbox is not None
    return server.env.deps.sandbox.standin


def shown(call: ApiCall) -> str:
    return str(call.params.get("text") or call.params.get("caption") or "")


async def buy_until_simulated_invoice(env: BotEnv, user: User) -> list[ApiCall]:
    """Browse to the UK plan, Buy, Pay: the calls of the Pay press."""
    await env.send(user, "/start")
    await env.press(user, BundleCallback(action="show", bundle=GB, iso="GB"))
    await env.tap(user, "🛒")
    return await env.tap(user, "💳")


async def buy(server: ServerEnv, user: User) -> Order:
    """A whole sale with a simulated payment, fulfilled by the production worker."""
    env = server.env
    await buy_until_simulated_invoice(env, user)
    await env.tap(user, "Simulate payment")
    assert await create_fulfilment_worker(env.deps).run_once() >= 1
    async with env.deps.session_factory() as session:
        return (
            await session.scalars(select(Order).where(Order.telegram_user_id == user.id))
        ).one()


def decode_qr(png: bytes) -> str:
    (result,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return str(result.text)


async def test_a_whole_sale_with_a_simulated_payment_delivers_a_qr_no_phone_can_install(
    sandbox: ServerEnv,
) -> None:
    env = sandbox.env
    alice = make_user(ADMIN_ID)
    assert len(env.deps.catalogue.catalogue.countries()) >= 200

    pay_calls = await buy_until_simulated_invoice(env, alice)

    assert not env.fake_telegram.calls_to("sendInvoice"), "a Stars invoice is real money"
    (invoice,) = [c for c in pay_calls if "Simulate payment" in str(c.params.get("reply_markup"))]
    assert "This is not a real invoice" in shown(invoice)
    public_id = invoice.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"][8:]
    async with env.deps.session_factory() as session:
        order = (await session.scalars(select(Order).where(Order.public_id == public_id))).one()
    assert order.status == OrderStatus.AWAITING_PAYMENT
    assert f"{order.price}" in str(invoice.params["reply_markup"])

    await env.tap(alice, "Simulate payment")
    assert "Payment received" in (env.screen(alice).text or "")
    async with env.deps.session_factory() as session:
        paid = await session.get(Order, order.id)
        assert paid is not None and paid.status == OrderStatus.PAID
        assert paid.telegram_payment_charge_id == f"sandbox-{public_id}"

    assert await create_fulfilment_worker(env.deps).run_once() == 1
    (photo,) = env.fake_telegram.calls_to("sendPhoto")
    assert photo.params["chat_id"] == alice.id
    lpa = decode_qr(next(iter(photo.files.values())))
    host, matching_id = parse_lpa(lpa)
    assert host.endswith(".invalid"), lpa
    assert matching_id in shown(photo)
    async with env.deps.session_factory() as session:
        delivered = await session.get(Order, order.id)
        assert delivered is not None and delivered.status == OrderStatus.DELIVERED
        assert delivered.qr_code == lpa
    assert standin(sandbox).orders[-1]["order"][0]["item"] == GB

    screens = [c for c in env.fake_telegram.calls if c.method in SCREENS and c.ok]
    assert len(screens) >= 5
    assert all(shown(c).startswith(BANNER + "\n") for c in screens), [shown(c) for c in screens]


async def test_pressing_simulate_payment_twice_pays_once(sandbox: ServerEnv) -> None:
    env = sandbox.env
    alice = make_user(ADMIN_ID)
    await buy_until_simulated_invoice(env, alice)
    invoice = env.screen(alice)
    pay = str(invoice.button("Simulate payment")["callback_data"])
    await env.press(alice, pay, invoice.message_id)

    calls = await env.press(alice, pay, invoice.message_id)  # a second tap on a stale screen
    (answer,) = [c for c in calls if c.method == "answerCallbackQuery"]
    assert answer.params.get("text") == "This order is already paid."
    async with env.deps.session_factory() as session:
        paid = (await session.scalars(select(Order).where(Order.status == "paid"))).all()
    assert len(paid) == 1


async def test_sandbox_use_80_tells_the_buyer_through_a_signed_callback(
    sandbox: ServerEnv,
) -> None:
    env = sandbox.env
    admin = make_user(ADMIN_ID)
    order = await buy(sandbox, admin)
    assert order.iccid is not None

    await env.send(admin, "/sandbox use 80")
    report = env.screen(admin).text or ""
    assert "80 % of esim_1GB_7D_GB_V2 used (0.20 GB left)" in report
    assert "FirstUse: accepted, Utilisation: accepted" in report
    await sandbox.settle()

    sent = env.fake_telegram.calls_to("sendMessage")
    texts = [shown(c) for c in sent]
    # The warning and the command's own report race each other: either may come last.
    (warning,) = [c for c in sent if "You have used 80 %" in shown(c)]
    assert shown(warning).startswith(BANNER) and "200 MB left" in shown(warning)
    assert any("has started" in t for t in texts)
    assert "Top up" in str(warning.params["reply_markup"])
    async with env.deps.session_factory() as session:
        events = (await session.scalars(select(CallbackEvent))).all()
        bundle = (await session.scalars(select(EsimBundle))).one()
    assert [(e.kind, e.iccid, e.processed) for e in events] == [
        ("FirstUse", order.iccid, True),
        ("Utilisation", order.iccid, True),
    ]
    assert bundle.state == "active" and bundle.remaining_bytes == 200_000_000


async def test_sandbox_install_and_expire_move_the_esim_as_esim_go_would(
    sandbox: ServerEnv,
) -> None:
    env = sandbox.env
    admin = make_user(ADMIN_ID)
    order = await buy(sandbox, admin)

    await env.send(admin, "/sandbox install")
    assert "ProfileStatusChange: accepted" in (env.screen(admin).text or "")
    await sandbox.settle()
    assert any(
        "Your eSIM is installed" in shown(c) for c in env.fake_telegram.calls_to("sendMessage")
    )

    await env.send(admin, "/sandbox expire")
    assert "has expired" in (env.screen(admin).text or "")
    async with env.deps.session_factory() as session:
        bundle = (await session.scalars(select(EsimBundle))).one()
    assert (bundle.iccid, bundle.state) == (order.iccid, "expired")

    await env.send(admin, "/sandbox use 50")
    assert "no plan that can still be used" in (env.screen(admin).text or "")


async def test_others_get_the_menu_and_learn_nothing_of_the_sandbox(sandbox: ServerEnv) -> None:
    env = sandbox.env
    admin, bob = make_user(ADMIN_ID), make_user(1002, username="bob")
    await buy(sandbox, admin)
    usage_before = [
        dict(a) for a in standin(sandbox).esim_bundles[next(iter(standin(sandbox).esim_bundles))]
    ]

    for text in ("/sandbox use 80", "/sandbox", "/sandbox install", "/sandbox expire"):
        await env.send(bob, text)
        screen = env.screen(bob)
        assert screen.text == f"{BANNER}\nI don't know that command. Here is the menu:"
        assert any("Buy" in t for t in screen.button_texts())

    assert [
        dict(a) for a in standin(sandbox).esim_bundles[next(iter(standin(sandbox).esim_bundles))]
    ] == usage_before
    await env.send(admin, "/sandbox")
    assert "Sandbox controls" in (env.screen(admin).text or "")


async def test_a_refunded_simulated_payment_never_reaches_telegram(sandbox: ServerEnv) -> None:
    env = sandbox.env
    alice = make_user(1003, language_code="ru")
    await buy_until_simulated_invoice(env, alice)
    await env.tap(alice, "Имитировать оплату")
    # eSIM Go withdraws the plan between payment and purchase: a permanent failure, a refund.
    standin(sandbox).catalogue = [b for b in standin(sandbox).catalogue if b["name"] != GB]

    await create_fulfilment_worker(env.deps).run_once()

    assert not env.fake_telegram.calls_to("refundStarPayment")
    async with env.deps.session_factory() as session:
        order = (await session.scalars(select(Order))).one()
    assert order.status == OrderStatus.REFUNDED
    told = [
        c for c in env.fake_telegram.calls_to("sendMessage") if c.params["chat_id"] == alice.id
    ]
    assert shown(told[-1]).startswith(BANNER_RU + "\n")
    assert "возвращена" in shown(told[-1])  # "the payment is returned", in the buyer's language


def test_the_sandbox_can_never_be_on_by_accident(tmp_path: Path) -> None:
    common = {"_env_file": None, "bot_token": DEFAULT_TOKEN}
    live = load_settings(**common, esimgo_api_key="real-key-123")
    assert not live.sandbox
    assert live.database_url == "sqlite+aiosqlite:///data/esimbot.db"
    sandbox = load_settings(**common, esimgo_api_key="sandbox")
    assert sandbox.sandbox and sandbox.database_url == "sqlite+aiosqlite:///data/demo.db"
    assert not load_settings(**common, esimgo_api_key="Sandbox").sandbox
    with pytest.raises(ConfigError, match="ESIMGO_BASE_URL cannot be used with ESIMGO_API_KEY"):
        load_settings(
            **common, esimgo_api_key="sandbox", esimgo_base_url="https://api.esim-go.com/v2.5"
        )


async def test_a_restarted_sandbox_still_knows_the_esims_it_sold(
    sandbox: ServerEnv, fake_telegram: FakeTelegram, error_records: _ErrorRecords
) -> None:
    admin = make_user(ADMIN_ID)
    order = await buy(sandbox, admin)
    await sandbox.env.send(admin, "/sandbox use 50")
    await sandbox.settle()
    settings = sandbox.env.deps.settings

    # Ctrl-C, ADMIN_IDS added to .env, `make demo` again: a new process, a new stand-in.
    async with running(settings, fake_telegram, error_records) as restarted:
        env = restarted.env
        assert order.iccid is not None
        assert await env.deps.tracking.poll_esim(order.iccid)
        await env.send(admin, "/sandbox use 80")
        assert "80 % of esim_1GB_7D_GB_V2 used" in (env.screen(admin).text or "")
        assert "Utilisation: accepted" in (env.screen(admin).text or "")
        await restarted.settle()
        async with env.deps.session_factory() as session:
            esim = (await session.scalars(select(Esim))).one()
            bundle = (await session.scalars(select(EsimBundle))).one()
        assert esim.tracking, "the status poll still finds the eSIM"
        assert (bundle.state, bundle.remaining_bytes) == ("active", 200_000_000)
    texts = [shown(c) for c in fake_telegram.calls_to("sendMessage")]
    assert any("You have used 80 %" in t for t in texts)


async def test_a_new_russian_user_sees_the_sandbox_in_russian_from_the_first_screen(
    sandbox: ServerEnv,
) -> None:
    env = sandbox.env
    olga = make_user(1004, language_code="ru", username="olga")

    await env.send(olga, "/start")
    assert (env.screen(olga).text or "").startswith(BANNER_RU + "\n")

    await buy_until_simulated_invoice(env, olga)
    invoice = env.screen(olga)
    assert (invoice.text or "").startswith(BANNER_RU + "\n")
    assert "Это не настоящий счёт" in (invoice.text or "")
    assert any("Имитировать оплату" in t for t in invoice.button_texts())
