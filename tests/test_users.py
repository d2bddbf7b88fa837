"""The user row behind every update: stored once, refreshed when it changes, unblocked when the
user comes back; and the language it carries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiogram.utils.i18n import gettext
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.i18n import CatalogueI18n
from db.models import User
from db.repositories.users import UserRepository
from services.i18n import Translator
from services.profiles import UserRows
from tests.helpers import BotEnv, make_user
from tests.tracking_helpers import ServerEnv, first_use, seed_esim, utilisation

USER_ID = 6001
TRAVELLER = make_user(USER_ID)


async def stored_user(env: BotEnv, user_id: int = USER_ID) -> User:
    async with env.deps.session_factory() as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


def texts_to(env: BotEnv, chat_id: int) -> list[str]:
    return [
        str(call.params.get("text", ""))
        for call in env.fake_telegram.calls_to("sendMessage")
        if int(call.params.get("chat_id", 0)) == chat_id and call.ok
    ]


async def test_a_user_who_blocked_the_bot_and_writes_again_gets_notifications_again(
    server_env: ServerEnv,
) -> None:
    env = server_env.env
    await seed_esim(env.deps.session_factory, user_id=USER_ID)
    await env.send(TRAVELLER, "/start")

    env.fake_telegram.fail_next("sendMessage")  # 403: bot was blocked by the user
    await server_env.post_callback(first_use(remaining=4_990_000_000))
    await server_env.settle()
    assert (await stored_user(env)).blocked_at is not None

    # Unblocked in Telegram, the user writes again: that alone clears the mark.
    await env.send(TRAVELLER, "/start")
    assert (await stored_user(env)).blocked_at is None

    before = len(texts_to(env, USER_ID))
    await server_env.post_callback(utilisation(remaining=0))
    await server_env.settle()
    assert len(texts_to(env, USER_ID)) > before


async def test_a_user_marked_blocked_before_this_process_started_is_unmarked_on_writing(
    bot_env: BotEnv,
) -> None:
    async with bot_env.deps.session_factory() as session:
        session.add(
            User(
                telegram_id=USER_ID,
                username=TRAVELLER.username,
                first_name=TRAVELLER.first_name,
                telegram_language="en",
                blocked_at=datetime(2026, 1, 2, tzinfo=UTC),
            )
        )
        await session.commit()

    await bot_env.send(TRAVELLER, "/help")

    assert "How it works" in bot_env.screen(TRAVELLER).text
    assert (await stored_user(bot_env)).blocked_at is None


async def test_a_user_writing_many_times_is_stored_once_and_kept_up_to_date(
    bot_env: BotEnv,
) -> None:
    for text in ("/start", "Thailand", "/help"):
        await bot_env.send(TRAVELLER, text)
    first = await stored_user(bot_env)
    assert (first.username, first.first_name, first.telegram_language) == (
        "traveller",
        "Alex",
        "en",
    )

    renamed = make_user(USER_ID, username="nomad", first_name="Alexa", language_code="ru")
    await bot_env.send(renamed, "/start")

    stored = await stored_user(bot_env)
    assert (stored.username, stored.first_name, stored.telegram_language) == (
        "nomad",
        "Alexa",
        "ru",
    )
    assert stored.created_at == first.created_at
    assert "eSIM для путешествий" in bot_env.screen(renamed).text  # Telegram's new language


async def test_a_chosen_language_wins_over_telegram_from_the_next_update_on(
    bot_env: BotEnv,
) -> None:
    await bot_env.send(TRAVELLER, "/language")
    await bot_env.tap(TRAVELLER, "Русский")
    await bot_env.send(TRAVELLER, "/help")
    assert "Как это работает" in bot_env.screen(TRAVELLER).text
    assert (await stored_user(bot_env)).language == "ru"


def test_catalogue_i18n_context_is_what_aiogram_gettext_uses() -> None:
    i18n = CatalogueI18n(Translator())
    with i18n.context(), i18n.use_locale("ru"):
        assert gettext("Choose your language:") == "Выберите язык:"
    with i18n.context(), i18n.use_locale("en"):
        assert gettext("Choose your language:") == "Choose your language:"


async def test_a_burst_of_users_is_read_in_one_query_and_stored_in_one_transaction(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory() as session:
        await UserRepository(session).set_language(2, "ru")  # chose Russian earlier
        session.add(User(telegram_id=3, blocked_at=datetime(2026, 1, 1, tzinfo=UTC)))
        await session.commit()
    seen: list[str] = []

    def note(*args: object) -> None:
        seen.append("COMMIT" if len(args) == 1 else str(args[2]).split()[0])

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    event.listen(engine.sync_engine, "commit", note)
    store = UserRows(session_factory)
    found = await asyncio.gather(*(store.stored(n) for n in (1, 2, 3)))
    saves = [store.save(n, (f"user{n}", "Traveller", "en")) for n in range(1, 51)]
    saves.append(store.save(7, ("renamed", "Traveller", "de")))  # the same user again
    await asyncio.gather(*saves)
    event.remove(engine.sync_engine, "before_cursor_execute", note)
    event.remove(engine.sync_engine, "commit", note)

    assert seen == ["SELECT", "INSERT", "COMMIT"]
    assert found[0] is None
    assert found[1] is not None and found[1].language == "ru"
    assert found[2] is not None and found[2].blocked
    async with session_factory() as session:
        rows = {u.telegram_id: u for u in (await session.execute(select(User))).scalars()}
    assert sorted(rows) == list(range(1, 51))
    assert (rows[2].username, rows[2].language) == ("user2", "ru")
    assert rows[3].blocked_at is None and rows[3].username == "user3"
    assert (rows[7].username, rows[7].telegram_language) == ("renamed", "de")
    assert rows[50].language is None and rows[50].created_at is not None
