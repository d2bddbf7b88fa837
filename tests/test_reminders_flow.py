"""Reminders through the real dispatcher: an invoice left unpaid for half an hour and an eSIM
not installed after a day, each once, with working buttons (pay, install help, no more
reminders); none after opting out; /reminders turns them back on."""

from __future__ import annotations

from datetime import timedelta

from aiogram.types import User
from sqlalchemy import update

from bot.app import create_fulfilment_worker
from db.base import utcnow
from db.models import Esim, Order
from handlers.callbacks import BundleCallback
from tests.fakes.telegram import ApiCall
from tests.helpers import (
    BotEnv,
    make_user,
    pre_checkout_update,
    successful_payment_update,
)

ALICE = make_user(1001)
BORIS = make_user(2002, language_code="ru", first_name="Борис")


async def invoice_for(env: BotEnv, user: User, bundle: str) -> ApiCall:
    await env.send(user, "/start")
    await env.press(user, BundleCallback(action="show", bundle=bundle, iso=bundle[-5:-3]))
    await env.tap(user, "🛒")
    calls = await env.tap(user, "💳")
    (invoice,) = [c for c in calls if c.method == "sendInvoice"]
    return invoice


async def age_orders(env: BotEnv, minutes: int) -> None:
    """Every order was created `minutes` ago."""
    async with env.deps.session_factory() as session:
        await session.execute(
            update(Order).values(created_at=utcnow() - timedelta(minutes=minutes))
        )
        await session.commit()


async def remind(env: BotEnv) -> list[str]:
    return await env.deps.reminders.run_once(env.deps.messenger)


async def test_an_unpaid_invoice_is_reminded_once_and_its_pay_button_sends_it_again(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    invoice = await invoice_for(env, ALICE, "esim_1GB_7D_GB_V2")
    assert await remind(env) == []  # not yet half an hour
    await age_orders(env, 31)

    assert len(await remind(env)) == 1
    assert await remind(env) == []  # once
    reminder = env.screen(ALICE)
    assert "You have not paid for 🇬🇧 United Kingdom · 1 GB · 7 days yet" in (reminder.text or "")
    assert reminder.button("No more reminders")

    # Someone else pressing it gets nothing; the owner gets the invoice again.
    pay = reminder.button("Pay now")["callback_data"]
    calls = await env.press(BORIS, pay, message_id=1)
    assert not [c for c in calls if c.method == "sendInvoice"]
    calls = await env.press(ALICE, pay, reminder.message_id)
    (again,) = [c for c in calls if c.method == "sendInvoice"]
    assert again.params["payload"] == invoice.params["payload"]
    assert not env.error_logs


async def test_no_reminders_after_opting_out_until_turned_on_again(bot_env: BotEnv) -> None:
    env = bot_env
    await invoice_for(env, BORIS, "esim_1GB_7D_GB_V2")
    await age_orders(env, 40)
    assert len(await remind(env)) == 1
    reminder = env.screen(BORIS)
    assert "Вы ещё не оплатили" in (reminder.text or "")

    await env.tap(BORIS, "Больше не напоминать", reminder.message_id)
    assert "Напоминания выключены" in (env.screen(BORIS).text or "")
    await invoice_for(env, BORIS, "esim_1GB_7D_TH_V2")
    await age_orders(env, 45)
    assert await remind(env) == []

    await env.send(BORIS, "/reminders")
    assert "Напоминания выключены" in (env.screen(BORIS).text or "")
    await env.tap(BORIS, "Включить")
    assert "Напоминания включены" in (env.screen(BORIS).text or "")
    assert len(await remind(env)) == 1  # the Thailand order, once
    assert "Таиланд" in (env.screen(BORIS).text or "")


async def test_an_esim_not_installed_a_day_later_is_reminded_with_install_help(
    bot_env: BotEnv,
) -> None:
    env = bot_env
    invoice = await invoice_for(env, ALICE, "esim_1GB_7D_GB_V2")
    payload, amount = str(invoice.params["payload"]), int(invoice.params["prices"][0]["amount"])
    await env.feed(pre_checkout_update(ALICE, payload=payload, total_amount=amount))
    await env.feed(successful_payment_update(ALICE, payload=payload, total_amount=amount))
    assert await create_fulfilment_worker(env.deps).run_once() >= 1
    # The delivered QR comes with buttons that copy its manual codes.
    (photo,) = env.fake_telegram.calls_to("sendPhoto")
    rows = photo.params["reply_markup"]["inline_keyboard"]
    copies = [b["copy_text"]["text"] for row in rows for b in row if "copy_text" in b]
    assert copies == [
        env.fake_esimgo.smdp_address,
        env.fake_esimgo.orders[0]["order"][0]["esims"][0]["matchingId"],
    ]
    assert await remind(env) == []
    async with env.deps.session_factory() as session:
        await session.execute(update(Esim).values(created_at=utcnow() - timedelta(hours=25)))
        await session.commit()

    assert len(await remind(env)) == 1
    assert await remind(env) == []
    reminder = env.screen(ALICE)
    assert "is not installed yet" in (reminder.text or "")
    install_help = reminder.button("How to install")["callback_data"]
    await env.press(ALICE, install_help, reminder.message_id)
    assert "How to install your eSIM" in (env.screen(ALICE).text or "")
    # Someone else's eSIM id in the same button is refused.
    await env.send(BORIS, "/start")
    calls = await env.press(BORIS, install_help)
    assert any(c.params.get("show_alert") for c in calls if c.method == "answerCallbackQuery")
