"""Support tickets at the service level: a /paysupport question reaches every admin with the
ticket id, language and order; an admin's Telegram reply reaches the user as the support
team's answer (text or photo); the user's reply goes back to the admins in the same thread."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messenger import AiogramMessenger
from services.admin.tickets import Answered, Asker, Opened, SupportTickets
from services.i18n import Translator
from services.messenger import Button, Keyboard
from tests.admin_helpers import ADMINS, Clock, add, make_order
from tests.fakes.telegram import FakeTelegram, StoredMessage

ALICE = 1001
PHOTO_ID = "AgACAgIAAxkBAAIBQ2ZfYWRtaW4tcGhvdG8"


def close_keyboard(ticket_id: int) -> Keyboard:
    return [[Button("✖️ Close", callback_data=f"ticket:close:{ticket_id}")]]


@pytest.fixture
def tickets(
    session_factory: async_sessionmaker[AsyncSession], messenger: AiogramMessenger, clock: Clock
) -> SupportTickets:
    return SupportTickets(
        session_factory,
        messenger,
        Translator(),
        ADMINS,
        close_keyboard=close_keyboard,
        clock=clock,
    )


def alice(language: str = "ru") -> Asker:
    return Asker(ALICE, ALICE, "Alice <Smith>", "alice_t", language)


def last(fake: FakeTelegram, chat_id: int) -> StoredMessage:
    return fake.last_bot_message(chat_id)


async def test_a_support_conversation_both_ways(
    session_factory: async_sessionmaker[AsyncSession],
    tickets: SupportTickets,
    fake_telegram: FakeTelegram,
) -> None:
    order = make_order(
        public_id="ORDER00001", iccid="8944500102198300001", failure_reason="telegram error: x",
        price=250,
    )  # fmt: skip
    await add(session_factory, order)

    opened = await tickets.open(alice(), "The eSIM &lt;won't&gt; connect", order.id)
    assert opened.outcome is Opened.OPENED and opened.ticket_id is not None
    ticket = opened.ticket_id
    copies = {admin: last(fake_telegram, admin) for admin in ADMINS}
    for copy in copies.values():
        text = copy.text or ""
        assert f"Support ticket #{ticket}" in text
        assert "Alice <Smith> (@alice_t), id 1001, language ru" in text
        assert "Order: ORDER00001 · delivered · esim_1GB_7D_GB_V2 · 250 ⭐" in text
        assert "ICCID: 8944500102198300001" in text and "telegram error: x" in text
        assert "The eSIM <won't> connect" in text
        assert copy.button("Close")["callback_data"] == f"ticket:close:{ticket}"
    (line,) = await tickets.open_tickets()
    assert (line.ticket_id, line.user_id, line.order_public_id, line.awaiting) == (
        ticket, ALICE, "ORDER00001", "admin"
    )  # fmt: skip

    # The first admin replies to their copy: Alice gets the answer, in Russian, formatted.
    answered = await tickets.answer(
        ADMINS[0], copies[ADMINS[0]].message_id, "Turn on <b>roaming</b>"
    )
    assert answered.outcome is Answered.ANSWERED
    answer = last(fake_telegram, ALICE)
    assert f"Ответ службы поддержки</b> (обращение №{ticket})" in (answer.html or "")
    assert "Turn on <b>roaming</b>" in (answer.html or "")

    # Her next message goes back to both admins, as a reply to the ticket's thread.
    assert await tickets.relay_from_user(ALICE, "Roaming is on, still nothing")
    for admin, copy in copies.items():
        relayed = last(fake_telegram, admin)
        assert f"Ticket #{ticket}" in (relayed.text or "")
        assert "Roaming is on, still nothing" in (relayed.text or "")
        assert relayed.reply_to == copy.message_id
    # Only the next one: after that she is shopping again, not talking to support.
    assert not await tickets.relay_from_user(ALICE, "Thailand")

    # The second admin answers that relayed message with a photo and a caption.
    relayed_to_second = last(fake_telegram, ADMINS[1])
    answered = await tickets.answer(
        ADMINS[1], relayed_to_second.message_id, "Pick this network", photo=PHOTO_ID
    )
    assert answered.outcome is Answered.ANSWERED
    photo = last(fake_telegram, ALICE)
    assert photo.photo == PHOTO_ID.encode() and "Pick this network" in (photo.caption or "")

    # A Telegram reply to that answer is relayed too, threaded after the last relay.
    assert await tickets.relay_from_user(ALICE, "Works now!", replied_message_id=photo.message_id)
    assert "Works now!" in (last(fake_telegram, ADMINS[1]).text or "")
    assert last(fake_telegram, ADMINS[1]).reply_to == relayed_to_second.message_id

    (line,) = await tickets.open_tickets()
    assert line.messages == 5 and line.awaiting == "admin"

    assert await tickets.close(ticket, ADMINS[0])
    assert "Обращение №" in (last(fake_telegram, ALICE).text or "")
    assert not await tickets.close(ticket, ADMINS[1])
    assert await tickets.open_tickets() == []
    answered = await tickets.answer(ADMINS[0], copies[ADMINS[0]].message_id, "One more thing")
    assert answered.outcome is Answered.CLOSED
    assert not await tickets.relay_from_user(ALICE, "Hello?", replied_message_id=photo.message_id)


async def test_english_question_without_an_order_and_someone_elses_order(
    session_factory: async_sessionmaker[AsyncSession],
    tickets: SupportTickets,
    fake_telegram: FakeTelegram,
) -> None:
    bobs = make_order(public_id="BOBS000001", telegram_user_id=2002, price=500)
    await add(session_factory, bobs)
    assert (await tickets.open(alice("en"), "Do you sell Turkey?", None)).ticket_id
    assert "Order: none chosen" in (last(fake_telegram, ADMINS[0]).text or "")
    # An order id that is not the asker's is dropped: admins never see another's order.
    assert (await tickets.open(alice("en"), "And this one?", bobs.id)).ticket_id
    assert "BOBS000001" not in (last(fake_telegram, ADMINS[0]).text or "")
    copy = last(fake_telegram, ADMINS[0])

    await tickets.answer(ADMINS[0], copy.message_id, "Yes")
    assert "Answer from our support team" in (last(fake_telegram, ALICE).text or "")


async def test_at_most_three_tickets_an_hour(tickets: SupportTickets, clock: Clock) -> None:
    for n in range(3):
        assert (await tickets.open(alice(), f"question {n}", None)).outcome is Opened.OPENED
        clock.advance(minutes=10)
    assert (await tickets.open(alice(), "again", None)).outcome is Opened.RATE_LIMITED
    clock.advance(minutes=31)
    assert (await tickets.open(alice(), "an hour later", None)).outcome is Opened.OPENED


async def test_answers_that_cannot_go_out(
    tickets: SupportTickets, fake_telegram: FakeTelegram
) -> None:
    await tickets.open(alice(), "help", None)
    copy = last(fake_telegram, ADMINS[0])
    # Replying to anything but a ticket's message: the admin's own, or one never sent.
    own = fake_telegram.record_user_message(ADMINS[1], "a note to self")
    assert (await tickets.answer(ADMINS[1], own, "hi")).outcome is Answered.NOT_A_TICKET
    assert (
        await tickets.answer(ADMINS[0], copy.message_id + 100, "hi")
    ).outcome is Answered.NOT_A_TICKET
    assert (
        await tickets.answer(ADMINS[0], copy.message_id, "x" * 5000)
    ).outcome is Answered.TOO_LONG
    long_caption = "x" * 1000
    answered = await tickets.answer(ADMINS[0], copy.message_id, long_caption, photo=PHOTO_ID)
    assert answered.outcome is Answered.TOO_LONG
    fake_telegram.blocked_chats.add(ALICE)
    assert (await tickets.answer(ADMINS[0], copy.message_id, "hi")).outcome is Answered.UNREACHABLE
    fake_telegram.blocked_chats.clear()
    fake_telegram.fail_next("sendMessage", 500, "Internal Server Error")
    assert (await tickets.answer(ADMINS[0], copy.message_id, "hi")).outcome is Answered.FAILED
    assert (await tickets.answer(ADMINS[0], copy.message_id, "hi")).outcome is Answered.ANSWERED


async def test_a_long_photo_caption_from_the_user_reaches_the_admins_whole(
    tickets: SupportTickets, fake_telegram: FakeTelegram
) -> None:
    await tickets.open(alice(), "help", None)
    await tickets.answer(ADMINS[0], last(fake_telegram, ADMINS[0]).message_id, "Send a screenshot")
    words = "word " * 190  # fits a user's caption, not with our header
    assert await tickets.relay_from_user(ALICE, words, photo=PHOTO_ID)
    *_, photo, text = fake_telegram.chat(ADMINS[0])
    assert photo.photo == PHOTO_ID.encode() and text.text and words.strip() in text.text
    assert text.reply_to == photo.message_id


async def test_an_admins_copy_is_no_way_into_someone_elses_ticket(
    tickets: SupportTickets, fake_telegram: FakeTelegram
) -> None:
    await tickets.open(alice(), "help", None)
    copy = last(fake_telegram, ADMINS[0])
    await tickets.answer(ADMINS[0], copy.message_id, "Which phone?")
    # The admin's chat holds the copies: a reply there "as a user" is not Alice's reply.
    relayed = await tickets.relay_from_user(
        ADMINS[0], "iPhone", replied_message_id=copy.message_id
    )
    assert not relayed
    assert [line.awaiting for line in await tickets.open_tickets()] == ["user"]
