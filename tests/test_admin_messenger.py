"""What the operator's side asks of the Messenger beyond a plain send: replies, photos already
on Telegram, edits of a progress message, and Telegram's refusals as our error types."""

from __future__ import annotations

import pytest

from bot.messenger import AiogramMessenger
from services.messenger import (
    Button,
    MessengerError,
    RecipientUnavailableError,
    RetryLaterError,
)
from tests.fakes.telegram import FakeTelegram

CHAT = 4242
FILE_ID = "AgACAgIAAxkBAAIBQ2ZfYWRtaW4"


async def test_a_reply_and_a_photo_by_file_id(
    messenger: AiogramMessenger, fake_telegram: FakeTelegram
) -> None:
    first = await messenger.send(CHAT, "<b>Question</b>")
    reply = await messenger.send(CHAT, "Answer", reply_to=first)
    assert fake_telegram.messages[(CHAT, reply)].reply_to == first
    keyboard = [[Button("Close", callback_data="close:1")]]
    photo = await messenger.send(CHAT, "<i>Look</i>", photo=FILE_ID, keyboard=keyboard)
    stored = fake_telegram.messages[(CHAT, photo)]
    assert stored.photo == FILE_ID.encode() and stored.caption_html == "<i>Look</i>"
    assert stored.button("Close")["callback_data"] == "close:1"
    # A reply to a message deleted meanwhile still goes out.
    del fake_telegram.messages[(CHAT, first)]
    assert await messenger.send(CHAT, "Still here", reply_to=first) > photo


async def test_edits_of_a_progress_message(
    messenger: AiogramMessenger, fake_telegram: FakeTelegram
) -> None:
    message_id = await messenger.send(CHAT, "sent 1")
    await messenger.edit_text(CHAT, message_id, "sent 2")
    await messenger.edit_text(CHAT, message_id, "sent 2")  # unchanged: no error
    assert fake_telegram.messages[(CHAT, message_id)].text == "sent 2"
    with pytest.raises(MessengerError):
        await messenger.edit_text(CHAT, message_id + 5, "gone")


async def test_refusals_become_the_messengers_errors(
    messenger: AiogramMessenger, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.blocked_chats.add(CHAT)
    with pytest.raises(RecipientUnavailableError):
        await messenger.send(CHAT, "hello")
    with pytest.raises(RecipientUnavailableError):
        await messenger.send(CHAT, "hello", photo=FILE_ID)
    fake_telegram.blocked_chats.clear()
    fake_telegram.fail_next("sendMessage", retry_after=7)
    with pytest.raises(RetryLaterError) as flood:
        await messenger.send(CHAT, "hello")
    assert flood.value.retry_after == 7
