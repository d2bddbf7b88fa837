"""The QR is a bearer credential: buying, paying, delivery, "Show QR again" and top-ups happen
only in the buyer's private chat. In a group the bot offers a button into the private chat."""

from __future__ import annotations

from datetime import timedelta

from aiogram.filters.callback_data import CallbackData
from aiogram.types import User
from sqlalchemy import func, select

from db.base import utcnow
from db.models import Order, OrderStatus
from handlers.callbacks import (
    BundleCallback,
    MyEsimsCallback,
    TopUpCallback,
    TopUpPickCallback,
)
from tests.fakes.telegram import ApiCall, StoredMessage
from tests.helpers import BotEnv, callback_update, make_user, message_update
from tests.test_myesims import _order
from tests.test_purchase import GB, get_invoice, invoice_amount, open_confirmation, pay, worker
from tests.test_topup import GB_3GB, bought_esim

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True

GROUP = -100_777
PRIVATE_LINK = "https://t.me/esim_test_bot"
SENSITIVE = ("sendInvoice", "sendPhoto")


async def in_group(env: BotEnv, user: User, data: CallbackData | str) -> list[ApiCall]:
    """The user presses a button under the bot's latest message in the group."""
    message_id = env.fake_telegram.last_bot_message(GROUP).message_id
    return await env.feed(callback_update(user, data, message_id, chat_id=GROUP))


async def say_in_group(env: BotEnv, user: User, text: str) -> list[ApiCall]:
    message_id = env.fake_telegram.record_user_message(GROUP, text)
    return await env.feed(message_update(user, text, message_id=message_id, chat_id=GROUP))


def leads_to_private_chat(message: StoredMessage) -> bool:
    urls = [str(b.get("url", "")) for b in message.buttons()]
    return any(url.startswith(PRIVATE_LINK) for url in urls) and "private" in str(message.text)


async def orders_of(env: BotEnv, user: User) -> int:
    async with env.deps.session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(Order).where(Order.telegram_user_id == user.id)
        )
    return int(count or 0)


async def test_buying_in_a_group_leads_to_the_private_chat(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(4001)
    await say_in_group(env, alice, "/start")
    await in_group(env, alice, BundleCallback(action="show", bundle=GB, iso="GB"))
    assert "🛒" in " ".join(env.fake_telegram.last_bot_message(GROUP).button_texts())

    calls = await in_group(env, alice, BundleCallback(action="buy", bundle=GB, iso="GB"))
    assert leads_to_private_chat(env.fake_telegram.last_bot_message(GROUP))
    assert not [c for c in calls if c.method in SENSITIVE]
    assert await orders_of(env, alice) == 0


async def test_paying_topping_up_and_qr_again_stay_out_of_groups(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(4002)
    esim = await bought_esim(env, alice)
    await open_confirmation(env, alice)
    pay_button = str(env.screen(alice).button("Pay")["callback_data"])
    await say_in_group(env, alice, "/start")

    for data in (
        pay_button,
        MyEsimsCallback(action="qr", id=esim.id),
        MyEsimsCallback(action="esim", id=esim.id),
        TopUpCallback(esim_id=esim.id),
        TopUpPickCallback(esim_id=esim.id, bundle=GB_3GB),
    ):
        calls = await in_group(env, alice, data)
        assert not [c for c in calls if c.method in SENSITIVE], data
        assert leads_to_private_chat(env.fake_telegram.last_bot_message(GROUP)), data
        assert esim.iccid not in str(env.fake_telegram.last_bot_message(GROUP).text)

    await say_in_group(env, alice, "/myesims")
    assert leads_to_private_chat(env.fake_telegram.last_bot_message(GROUP))
    sent_to_group = [c for c in env.fake_telegram.calls if c.params.get("chat_id") == GROUP]
    assert not [c for c in sent_to_group if c.method in SENSITIVE]


async def test_an_order_made_in_a_group_is_delivered_in_private(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(4003)
    now = utcnow()
    async with env.deps.session_factory() as session:
        # As the old code stored it when Buy was pressed in a group.
        order = _order(
            "GROUPBUY01",
            alice.id,
            OrderStatus.AWAITING_PAYMENT,
            now,
            chat_id=GROUP,
            bundle_name=GB,
            country_code="GB",
            expires_at=now + timedelta(days=1),
        )
        session.add(order)
        await session.commit()
    # The invoice the old code sent to the group.
    invoice = ApiCall("sendInvoice", {"payload": order.public_id, "prices": [{"amount": 125}]})
    assert invoice_amount(invoice) == order.price
    await pay(env, alice, invoice, charge_id="group-1")
    assert await worker(env).run_once() >= 1
    (photo,) = env.fake_telegram.calls_to("sendPhoto")
    assert photo.params["chat_id"] == alice.id


async def test_buy_in_private_stores_the_buyers_chat(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(4004)
    await open_confirmation(env, alice)
    invoice = await get_invoice(env, alice)
    assert invoice.params["chat_id"] == alice.id
    async with env.deps.session_factory() as session:
        order = await session.scalar(select(Order).where(Order.telegram_user_id == alice.id))
    assert order is not None and order.chat_id == alice.id
