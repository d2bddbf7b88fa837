"""Support that talks back, through the dispatcher: a /paysupport question becomes a ticket;
the admin's Telegram reply to it reaches the user as the support team's answer (text or a
photo); the user's next message, or their Telegram reply, goes back in the same thread;
/tickets lists the open ones and a button closes one; a user asks a few times an hour at most."""

from __future__ import annotations

from aiogram.types import User
from sqlalchemy import select

from db.models import SupportTicket
from tests.admin_chat import ADMIN, buy, reply, texts
from tests.helpers import BotEnv, make_user

ALICE = make_user(1001, username="alice_t", first_name="Alice", language_code="ru")
BOB = make_user(1002, username="bob_b", first_name="Bob")


async def ask(env: BotEnv, user: User, question: str, button: str | None = None) -> None:
    """/paysupport, the button of an order (or of another question), the question."""
    await env.send(user, "/paysupport")
    await env.tap(user, button or ("Другой вопрос" if user is ALICE else "Another question"))
    await env.send(user, question)


async def test_a_support_conversation_both_ways(bot_env: BotEnv) -> None:
    env = bot_env
    public_id = await buy(env, ALICE, "charge-alice")
    await ask(env, ALICE, "eSIM не подключается", button="Великобритания")
    assert "Спасибо" in (env.screen(ALICE).text or "")
    copy = env.screen(ADMIN)
    assert "Support ticket #1" in (copy.text or "")
    assert "Alice (@alice_t), id 1001, language ru" in (copy.text or "")
    assert f"Order: {public_id} · delivered" in (copy.text or "")
    assert "eSIM не подключается" in (copy.text or "")
    assert copy.button_texts() == ["✅ Close ticket"]

    # The admin replies to the copy: Alice gets the answer in her language.
    calls = await reply(env, ADMIN, copy, "Turn on data roaming, please")
    assert [c.params.get("chat_id") for c in calls if c.method == "sendMessage"] == [
        ALICE.id,
        ADMIN.id,
    ]
    answer = env.screen(ALICE)
    assert "Ответ службы поддержки (обращение №1)" in (answer.text or "")
    assert "Turn on data roaming, please" in (answer.text or "")
    assert env.screen(ADMIN).text == "✅ Sent to the user (ticket #1)."

    # Her next message goes back to the admin, in the ticket's thread; only the next one.
    await env.send(ALICE, "Роуминг включён, всё равно нет сети")
    relayed = env.screen(ADMIN)
    assert "Ticket #1: the user (id 1001) writes" in (relayed.text or "")
    assert "Роуминг включён, всё равно нет сети" in (relayed.text or "")
    assert relayed.reply_to == copy.message_id
    assert env.screen(ALICE).text == "✅ Передали в службу поддержки. Ответим здесь."
    await env.send(ALICE, "Таиланд")
    assert "Таиланд" in (env.screen(ALICE).text or "")  # a country search again
    assert env.screen(ADMIN).message_id == relayed.message_id

    # The admin answers that with a photo; Alice's Telegram reply to it goes back too.
    await reply(env, ADMIN, relayed, "Pick <this> network", photo=True)
    photo = env.screen(ALICE)
    assert photo.photo is not None and "Pick <this> network" in (photo.caption or "")
    await reply(env, ALICE, photo, "Заработало!")
    assert "Заработало!" in (env.screen(ADMIN).text or "")
    assert env.screen(ADMIN).reply_to is not None

    # /tickets lists it; Close tells Alice; a late answer is not sent.
    await env.send(ADMIN, "/tickets")
    listing = env.screen(ADMIN)
    assert "Open tickets: 1" in (listing.text or "")
    assert "#1 · user 1001 · ru · order " in (listing.text or "") and "waits for us" in (
        listing.text or ""
    )
    await env.tap(ADMIN, "Close #1")
    assert env.screen(ADMIN).text == "🎫 No open tickets."
    assert "Обращение №1 закрыто" in (env.screen(ALICE).text or "")
    await reply(env, ADMIN, copy, "One more thing")
    assert env.screen(ADMIN).text == "✖️ Ticket #1 is closed: nothing was sent."
    assert texts(env, ALICE.id).count("One more thing") == 0
    assert not env.error_logs


async def test_close_from_under_the_copy(bot_env: BotEnv) -> None:
    await ask(bot_env, BOB, "Do you sell plans for Japan?")
    copy = bot_env.screen(ADMIN)
    await bot_env.tap(ADMIN, "Close ticket", copy.message_id)
    assert bot_env.message(ADMIN, copy.message_id).buttons() == []
    assert "Your support request #1 is closed" in (bot_env.screen(BOB).text or "")
    async with bot_env.deps.session_factory() as session:
        ticket = await session.get(SupportTicket, 1)
        assert ticket is not None and (ticket.status, ticket.closed_by) == ("closed", ADMIN.id)


async def test_replies_that_are_no_part_of_a_ticket_are_ordinary_messages(
    bot_env: BotEnv,
) -> None:
    # The admin replies to their own dashboard: no ticket, so it is a country search.
    await bot_env.send(ADMIN, "/tickets")
    await reply(bot_env, ADMIN, bot_env.screen(ADMIN), "Japan")
    assert "Japan" in (bot_env.screen(ADMIN).text or "")
    # A user replying to the menu, with no ticket open: the same.
    await bot_env.send(BOB, "/start")
    await reply(bot_env, BOB, bot_env.screen(BOB), "Thailand")
    assert "Thailand" in (bot_env.screen(BOB).text or "")
    # A reply naming a message id of the admin's chat is no part of Bob's (or anyone's) ticket.
    await ask(bot_env, ALICE, "Вопрос")
    await reply(bot_env, BOB, bot_env.screen(ADMIN), "I am the admin now")
    assert "I am the admin now" not in (bot_env.screen(ALICE).text or "")
    async with bot_env.deps.session_factory() as session:
        assert (await session.scalars(select(SupportTicket.awaiting))).all() == ["admin"]


async def test_a_few_questions_an_hour_then_please_wait(bot_env: BotEnv) -> None:
    for n in range(3):
        await ask(bot_env, BOB, f"Question {n}")
        assert "sent to our support team" in (bot_env.screen(BOB).text or "")
    await ask(bot_env, BOB, "Question 3")
    assert (bot_env.screen(BOB).text or "").startswith(
        "⏳ You have sent us several questions in the last hour. Please wait for our answer"
    )
    for n in range(4):
        await ask(bot_env, ALICE, f"Вопрос {n}")
    assert "Пожалуйста, дождитесь ответа" in (bot_env.screen(ALICE).text or "")
    copies = [t for t in texts(bot_env, ADMIN.id) if "Support ticket #" in t]
    assert len(copies) == 6
