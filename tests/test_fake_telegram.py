"""The fake Bot API behaves like Telegram for what aiogram sends and parses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LabeledPrice,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram

CHAT = 4242


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake_telegram.base_url))
    bot = Bot(DEFAULT_TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    yield bot
    await bot.session.close()


async def test_get_me_and_messages_with_per_chat_ids(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    me = await bot.get_me()
    assert me.is_bot and me.id == 123456
    first = await bot.send_message(CHAT, "<b>Hello</b> &amp; welcome")
    second = await bot.send_message(CHAT, "again")
    other = await bot.send_message(777, "elsewhere")
    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert first.text == "Hello & welcome"
    assert first.chat.id == CHAT and first.chat.type == "private"
    call = fake_telegram.calls_to("sendMessage")[0]
    assert call.params["chat_id"] == CHAT and call.params["parse_mode"] == "HTML"


async def test_edit_in_place_and_telegram_errors(bot: Bot, fake_telegram: FakeTelegram) -> None:
    builder = InlineKeyboardBuilder()
    builder.button(text="Go", callback_data="go")
    sent = await bot.send_message(CHAT, "one", reply_markup=builder.as_markup())
    edited = await bot.edit_message_text("two", chat_id=CHAT, message_id=sent.message_id)
    assert not isinstance(edited, bool) and edited.text == "two"
    assert fake_telegram.last_bot_message(CHAT).text == "two"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("two", chat_id=CHAT, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=999)
    user_message = fake_telegram.record_user_message(CHAT, "hi")
    with pytest.raises(TelegramBadRequest, match="can't be edited"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=user_message)
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(CHAT, "a <script> b")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(CHAT, "Tom & Jerry")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    too_long = InlineKeyboardBuilder()
    too_long.button(text="x", callback_data="y" * 65)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "ok", reply_markup=too_long.as_markup())


async def test_photo_upload_keeps_bytes_and_cannot_be_text_edited(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    sent = await bot.send_photo(CHAT, BufferedInputFile(png, "qr.png"), caption="<i>QR</i>")
    assert sent.photo and sent.photo[-1].width == 800
    assert sent.caption == "QR"
    assert fake_telegram.calls_to("sendPhoto")[0].files["photo"] == png
    with pytest.raises(TelegramBadRequest, match="no text in the message"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=sent.message_id)


async def test_callback_answered_once_and_fault_injection(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    assert await bot.answer_callback_query("q1", text="ok")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("q1")
    fake_telegram.fail_next("sendMessage")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(CHAT, "blocked")
    fake_telegram.fail_next("sendMessage", retry_after=3)
    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(CHAT, "flood")
    assert flood.value.retry_after == 3
    assert (await bot.send_message(CHAT, "fine")).text == "fine"
    failed = [c for c in fake_telegram.calls_to("sendMessage") if not c.ok]
    assert [c.error_code for c in failed] == [403, 429]


async def test_payments_commands_webhook_and_updates(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    invoice = await bot.send_invoice(
        CHAT,
        title="Thailand 1 GB",
        description="7 days",
        payload="order-1",
        currency="XTR",
        prices=[LabeledPrice(label="eSIM", amount=50)],
    )
    assert invoice.invoice is not None and invoice.invoice.total_amount == 50
    assert await bot.answer_pre_checkout_query("pc1", ok=True)
    fake_telegram.record_star_payment(CHAT, "charge-1")
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(CHAT + 1, "charge-1")  # not the payer
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(CHAT, "charge-unknown")
    assert await bot.refund_star_payment(CHAT, "charge-1")
    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await bot.refund_star_payment(CHAT, "charge-1")
    await bot.set_my_commands(
        [BotCommand(command="start", description="Menu")], language_code="ru"
    )
    assert fake_telegram.commands[("default", "ru")][0]["command"] == "start"
    await bot.send_chat_action(CHAT, "upload_photo")

    fake_telegram.push_update(
        {
            "message": {
                "message_id": 5,
                "date": 0,
                "chat": {"id": CHAT, "type": "private"},
                "text": "hi",
            }
        }
    )
    updates = await bot.get_updates(offset=0, timeout=1)
    assert [u.message.text for u in updates if u.message] == ["hi"]
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == []

    await bot.set_webhook("https://example.com/hook", secret_token="s3cret")
    assert (await bot.get_webhook_info()).url == "https://example.com/hook"
    with pytest.raises(TelegramConflictError):
        await bot.get_updates()
    await bot.delete_webhook()


async def test_wrong_token_is_unauthorized(fake_telegram: FakeTelegram) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake_telegram.base_url))
    bot = Bot("999:WRONG", session=session)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await bot.get_me()
    finally:
        await bot.session.close()


async def test_inline_answers_and_copy_buttons_are_checked_like_telegram(bot: Bot) -> None:
    def article(text: str, button: InlineKeyboardButton) -> InlineQueryResultArticle:
        return InlineQueryResultArticle(
            id="a1",
            title="Thailand",
            input_message_content=InputTextMessageContent(message_text=text, parse_mode="HTML"),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
        )

    link = InlineKeyboardButton(text="Buy", url="https://t.me/esim_test_bot?start=cTH")
    assert await bot.answer_inline_query("q1", [article("<b>TH</b>", link)], cache_time=60)
    with pytest.raises(TelegramBadRequest, match="QUERY_ID_INVALID"):  # answered once
        await bot.answer_inline_query("q1", [article("<b>TH</b>", link)])
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.answer_inline_query("q2", [article("<b>TH", link)])
    copy = InlineKeyboardButton(text="Copy", copy_text=CopyTextButton(text="x" * 257))
    with pytest.raises(TelegramBadRequest, match="BUTTON_COPY_TEXT_INVALID"):
        await bot.send_message(
            CHAT, "codes", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[copy]])
        )
    both = InlineKeyboardButton(text="Two", url="https://example.com", callback_data="go")
    with pytest.raises(TelegramBadRequest, match="BUTTON_TYPE_INVALID"):
        await bot.send_message(
            CHAT, "two", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[both]])
        )
