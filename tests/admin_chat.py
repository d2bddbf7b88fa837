"""Helpers for the operator's side through the dispatcher (`bot_env`): an admin and customers
who buy, pay and write to support, and Telegram replies to the bot's messages."""

from __future__ import annotations

import time
from typing import Any

from aiogram.types import Update, User

from bot.app import create_fulfilment_worker
from handlers.callbacks import BundleCallback
from tests.fakes.telegram import ApiCall, StoredMessage
from tests.helpers import (
    ADMIN_ID,
    BOT_ID,
    BotEnv,
    make_user,
    message_update,
    pre_checkout_update,
    successful_payment_update,
)

GB = "esim_1GB_7D_GB_V2"
ADMIN = make_user(ADMIN_ID, username="operator", first_name="Olga")


async def invoice(env: BotEnv, user: User, bundle: str = GB, iso: str = "GB") -> ApiCall:
    """Browse to the plan, Buy, Pay: the sendInvoice call."""
    await env.send(user, "/start")
    await env.press(user, BundleCallback(action="show", bundle=bundle, iso=iso))
    await env.tap(user, "🛒")
    calls = await env.tap(user, "💳")
    (sent,) = [c for c in calls if c.method == "sendInvoice" and c.ok]
    return sent


async def pay(env: BotEnv, user: User, sent: ApiCall, charge_id: str) -> str:
    """Pre-checkout and the payment, as Telegram sends them; returns the order's public id."""
    payload = str(sent.params["payload"])
    amount = sum(int(p["amount"]) for p in sent.params["prices"])
    await env.feed(pre_checkout_update(user, payload=payload, total_amount=amount))
    await env.feed(
        successful_payment_update(user, payload=payload, total_amount=amount, charge_id=charge_id)
    )
    return payload


async def buy(env: BotEnv, user: User, charge_id: str) -> str:
    """A paid and delivered eSIM; returns the order's public id."""
    public_id = await pay(env, user, await invoice(env, user), charge_id)
    await fulfil(env)
    return public_id


async def fulfil(env: BotEnv) -> int:
    return await create_fulfilment_worker(env.deps).run_once()


def _bot_message(chat_id: int, message: StoredMessage) -> dict[str, Any]:
    stored: dict[str, Any] = {
        "message_id": message.message_id,
        "date": message.date,
        "chat": {"id": chat_id, "type": "private", "first_name": "Chat"},
        "from": {"id": BOT_ID, "is_bot": True, "first_name": "eSIM Test Bot"},
    }
    if message.text is not None:
        stored["text"] = message.text
    if message.caption is not None:
        stored["caption"] = message.caption
    return stored


async def reply(
    env: BotEnv, user: User, to: StoredMessage, text: str | None, *, photo: bool = False
) -> list[ApiCall]:
    """The user answers the bot's message `to` with Telegram's Reply: a text, or a photo with
    `text` as its caption."""
    message_id = env.fake_telegram.record_user_message(user.id, text)
    update = message_update(user, text or "", message_id=message_id)
    assert update.message is not None
    content: dict[str, Any] = update.message.model_dump(exclude_none=True, by_alias=True)
    content["reply_to_message"] = _bot_message(user.id, to)
    if photo:
        content.pop("text")
        content["photo"] = [
            {
                "file_id": f"AgACAgIAAxkBAAIReply{message_id:04d}",
                "file_unique_id": f"AQADReply{message_id:04d}",
                "width": 800,
                "height": 600,
            }
        ]
        if text:
            content["caption"] = text
    content["date"] = int(time.time())
    return await env.feed(
        Update.model_validate({"update_id": update.update_id, "message": content})
    )


async def send_formatted(
    env: BotEnv, user: User, text: str, entities: list[dict[str, Any]]
) -> list[ApiCall]:
    """The user sends a text with formatting (Telegram's entities: bold, links…)."""
    message_id = env.fake_telegram.record_user_message(user.id, text)
    update = message_update(user, text, message_id=message_id)
    assert update.message is not None
    content = update.message.model_dump(exclude_none=True, by_alias=True)
    content["entities"] = entities
    return await env.feed(
        Update.model_validate({"update_id": update.update_id, "message": content})
    )


def texts(env: BotEnv, chat_id: int) -> list[str]:
    """Every message the bot sent in the chat, as shown now (captions for photos)."""
    return [m.text or m.caption or "" for m in env.fake_telegram.chat(chat_id) if m.from_bot]
