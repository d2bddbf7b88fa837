"""End-to-end test helpers: Telegram update builders and `bot_env`, the bot wired like production.

`bot_env` runs the real dispatcher over SQLite (PostgreSQL too in modules that move money: see
`ON_EVERY_DATABASE`), with aiogram talking HTTP to FakeTelegram and the eSIM Go client to
FakeEsimGo (catalogue synced once). Feed updates, then read what the user sees:

    await env.send(alice, "/start")
    await env.press(alice, env.screen(alice).button("Buy").get("callback_data"))
    assert "Thailand" in env.screen(alice).text
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.filters.callback_data import CallbackData
from aiogram.types import Update, User

from tests.fakes.telegram import DEFAULT_TOKEN, ApiCall, FakeTelegram, StoredMessage

if TYPE_CHECKING:
    from bot.deps import AppDeps
    from tests.fakes.esimgo import FakeEsimGo

ROOT = Path(__file__).resolve().parent.parent
# Nothing listens on port 1: every connection is refused at once.
UNREACHABLE_DATABASE_URL = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
BOT_ID = int(DEFAULT_TOKEN.split(":")[0])
UNTHROTTLED = 1_000_000
ADMIN_ID = 900_000_001

_update_ids = itertools.count(1_000)
_query_ids = itertools.count(1)
_file_ids = itertools.count(1)


def make_user(
    user_id: int = 1001,
    *,
    language_code: str | None = "en",
    username: str | None = "traveller",
    first_name: str = "Alex",
) -> User:
    return User(
        id=user_id,
        is_bot=False,
        first_name=first_name,
        username=username,
        language_code=language_code,
    )


def _chat(user: User, chat_id: int | None = None) -> dict[str, Any]:
    chat_id = user.id if chat_id is None else chat_id
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": user.first_name}
    return {"id": chat_id, "type": "supergroup", "title": "Travellers"}


def _user_dict(user: User) -> dict[str, Any]:
    return user.model_dump(exclude_none=True)


def _message(
    user: User, message_id: int, chat_id: int | None = None, **content: Any
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": _chat(user, chat_id),
        "from": _user_dict(user),
        **content,
    }


def _update(**payload: Any) -> Update:
    return Update.model_validate({"update_id": next(_update_ids), **payload})


def message_update(
    user: User, text: str, *, message_id: int = 1, chat_id: int | None = None
) -> Update:
    """The user sends a text (or a command: "/start")."""
    return _update(message=_message(user, message_id, chat_id, text=text))


def sticker_update(user: User, *, message_id: int = 1) -> Update:
    number = next(_file_ids)
    sticker = {
        "file_id": f"CAACAgIAAxkBAAE{number:06d}",
        "file_unique_id": f"AgAD{number:06d}",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "😀",
    }
    return _update(message=_message(user, message_id, sticker=sticker))


def photo_update(user: User, *, caption: str | None = None, message_id: int = 1) -> Update:
    number = next(_file_ids)
    sizes = [
        {
            "file_id": f"AgACAgIAAxkBAAI{number:06d}{side}",
            "file_unique_id": f"AQAD{number:06d}{side}",
            "width": side,
            "height": side,
        }
        for side in (90, 320, 1280)
    ]
    content: dict[str, Any] = {"photo": sizes}
    if caption is not None:
        content["caption"] = caption
    return _update(message=_message(user, message_id, **content))


def callback_update(
    user: User,
    data: str | CallbackData,
    message_id: int = 1,
    *,
    chat_id: int | None = None,
    message_text: str = "…",
    query_id: str | None = None,
) -> Update:
    """The user presses an inline button under the bot's message `message_id`."""
    message = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": _chat(user, chat_id),
        "from": {"id": BOT_ID, "is_bot": True, "first_name": "eSIM Test Bot"},
        "text": message_text,
    }
    return _update(
        callback_query={
            "id": query_id or f"cbq-{next(_query_ids)}",
            "from": _user_dict(user),
            "chat_instance": f"ci-{user.id}",
            "message": message,
            "data": data.pack() if isinstance(data, CallbackData) else data,
        }
    )


def inline_query_update(
    user: User, query: str, *, chat_type: str = "private", query_id: str | None = None
) -> Update:
    """The user types `@bot <query>` in a chat (of `chat_type`)."""
    return _update(
        inline_query={
            "id": query_id or f"iq-{next(_query_ids)}",
            "from": _user_dict(user),
            "query": query,
            "offset": "",
            "chat_type": chat_type,
        }
    )


def pre_checkout_update(
    user: User,
    *,
    payload: str,
    total_amount: int,
    currency: str = "XTR",
    query_id: str | None = None,
) -> Update:
    return _update(
        pre_checkout_query={
            "id": query_id or f"pcq-{next(_query_ids)}",
            "from": _user_dict(user),
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
        }
    )


def successful_payment_update(
    user: User,
    *,
    payload: str,
    total_amount: int,
    currency: str = "XTR",
    charge_id: str | None = None,
    provider_charge_id: str = "",
    message_id: int = 1,
) -> Update:
    payment = {
        "currency": currency,
        "total_amount": total_amount,
        "invoice_payload": payload,
        "telegram_payment_charge_id": charge_id or f"charge-{next(_query_ids)}",
        "provider_payment_charge_id": provider_charge_id,
    }
    return _update(message=_message(user, message_id, successful_payment=payment))


def charge_in_ledger(fake: FakeTelegram, update: Update) -> None:
    """Put the Stars payment an update carries into the fake's ledger (once per charge)."""
    message = update.message
    payment = message.successful_payment if message is not None else None
    if payment is None or message is None or message.from_user is None:
        return
    if payment.currency == "XTR":
        fake.add_star_payment(
            message.from_user.id,
            payment.invoice_payload,
            payment.total_amount,
            charge_id=payment.telegram_payment_charge_id,
        )


def command_env(
    fake_telegram: FakeTelegram, fake_esimgo: FakeEsimGo, database_url: str, **extra: str
) -> dict[str, str]:
    """The environment an operator gives `esimbot`: only the documented names, loopback fakes."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "ESIMGO_", "WEBHOOK_"))
    }
    env.update(
        BOT_TOKEN=DEFAULT_TOKEN,
        ESIMGO_API_KEY=fake_esimgo.api_key,
        ESIMGO_BASE_URL=fake_esimgo.base_url,
        TELEGRAM_API_BASE=fake_telegram.base_url,
        DATABASE_URL=database_url,
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


class _ErrorRecords(logging.Handler):
    """Collects ERROR (and worse) log records while the environment lives."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class BotEnv:
    """The bot wired like production, plus shortcuts to act as a user and see the chat."""

    dispatcher: Dispatcher
    bot: Bot
    fake_telegram: FakeTelegram
    fake_esimgo: FakeEsimGo
    deps: AppDeps
    _errors: _ErrorRecords = field(repr=False)

    @property
    def error_logs(self) -> list[logging.LogRecord]:
        """ERROR records logged since the environment started (the error handler logs here)."""
        return self._errors.records

    async def feed(self, update: Update) -> list[ApiCall]:
        """Dispatch one update; returns the Bot API calls it caused. A Stars payment is in
        Telegram's ledger (getStarTransactions) before its update arrives, as in production."""
        charge_in_ledger(self.fake_telegram, update)
        before = len(self.fake_telegram.calls)
        await self.dispatcher.feed_update(self.bot, update)
        return self.fake_telegram.calls[before:]

    async def send(self, user: User, text: str) -> list[ApiCall]:
        """The user types `text` in their private chat with the bot."""
        message_id = self.fake_telegram.record_user_message(user.id, text)
        return await self.feed(message_update(user, text, message_id=message_id))

    async def send_sticker(self, user: User) -> list[ApiCall]:
        message_id = self.fake_telegram.record_user_message(user.id)
        return await self.feed(sticker_update(user, message_id=message_id))

    async def send_photo(self, user: User, caption: str | None = None) -> list[ApiCall]:
        message_id = self.fake_telegram.record_user_message(user.id)
        return await self.feed(photo_update(user, caption=caption, message_id=message_id))

    async def press(
        self, user: User, data: str | CallbackData, message_id: int | None = None
    ) -> list[ApiCall]:
        """The user presses a button with `data` under `message_id` (default: the bot's last)."""
        if message_id is None:
            message_id = self.fake_telegram.last_bot_message(user.id).message_id
        stored = self.fake_telegram.messages.get((user.id, message_id))
        text = stored.text if stored is not None and stored.text else "…"
        update = callback_update(user, data, message_id, message_text=text)
        return await self.feed(update)

    async def tap(
        self, user: User, button_text: str, message_id: int | None = None
    ) -> list[ApiCall]:
        """Press the button whose text contains `button_text` (default: on the last message)."""
        screen = self.screen(user) if message_id is None else self.message(user, message_id)
        data = screen.button(button_text).get("callback_data")
        assert data, f"button {button_text!r} has no callback data"
        return await self.press(user, str(data), screen.message_id)

    def successful_payment(
        self,
        user: User,
        *,
        payload: str,
        total_amount: int,
        charge_id: str,
        currency: str = "XTR",
        provider_charge_id: str = "",
    ) -> Update:
        """Telegram took the user's money (a Stars charge enters its ledger): the update."""
        if currency == "XTR":
            self.fake_telegram.record_star_payment(user.id, charge_id)
        return successful_payment_update(
            user,
            payload=payload,
            total_amount=total_amount,
            currency=currency,
            charge_id=charge_id,
            provider_charge_id=provider_charge_id,
        )

    def screen(self, user: User) -> StoredMessage:
        """What the user sees now: the bot's latest message in their chat (after edits)."""
        return self.fake_telegram.last_bot_message(user.id)

    def message(self, user: User, message_id: int) -> StoredMessage:
        """One message of the user's chat as it is now (after edits)."""
        return self.fake_telegram.messages[(user.id, message_id)]


@contextlib.asynccontextmanager
async def database_down(env: BotEnv) -> AsyncIterator[BotEnv]:
    """The same bot while its database cannot be reached (an outage, a failover, a deploy):
    the dispatcher, its middlewares and the checkout are built again on an engine that is
    refused."""
    from bot.dispatcher import create_dispatcher
    from db.engine import create_engine, create_session_factory
    from services.checkout import Checkout

    dead = create_engine(UNREACHABLE_DATABASE_URL)
    sessions = create_session_factory(dead)
    live = env.deps
    checkout = Checkout(
        sessions,
        live.orders,
        live.catalogue,
        live.alerts,
        live.messenger,
        wake_worker=live.fulfilment_wake.set,
    )
    deps = dataclasses.replace(live, engine=dead, session_factory=sessions, checkout=checkout)
    try:
        yield dataclasses.replace(env, deps=deps, dispatcher=create_dispatcher(deps))
    finally:
        await dead.dispose()


def answers(calls: list[ApiCall]) -> list[ApiCall]:
    """The successful answerCallbackQuery calls among `calls`."""
    return [c for c in calls if c.method == "answerCallbackQuery" and c.ok]


@pytest.fixture
def error_records() -> Iterator[_ErrorRecords]:
    handler = _ErrorRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
def bot_env_settings() -> dict[str, Any]:
    """Extra settings for `bot_env`: a test module overrides this fixture to change them."""
    return {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test module that moves money sets `ON_EVERY_DATABASE = True`: its bot_env tests run on
    SQLite and again on PostgreSQL (skipped without TEST_POSTGRES_URL). The rest stay on SQLite,
    to keep the suite quick."""
    if "bot_env_database" in metafunc.fixturenames and getattr(
        metafunc.module, "ON_EVERY_DATABASE", False
    ):
        metafunc.parametrize("bot_env_database", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
async def bot_env_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of the migrated, empty database `bot_env` runs on (see pytest_generate_tests)."""
    from tests.conftest import prepare_database

    return await prepare_database(getattr(request, "param", "sqlite"), tmp_path)


@pytest.fixture
async def bot_env(
    bot_env_database: str,
    fake_telegram: FakeTelegram,
    fake_esimgo: FakeEsimGo,
    error_records: _ErrorRecords,
    bot_env_settings: dict[str, Any],
) -> AsyncIterator[BotEnv]:
    """The real dispatcher, bot, services and a synced catalogue, over loopback fakes."""
    # Imported here so a half-written app module breaks only the tests that use the bot.
    from bot import tuning
    from bot.app import close_deps, create_bot, create_deps
    from bot.config import load_settings
    from bot.dispatcher import create_dispatcher

    settings = load_settings(
        _env_file=None,
        bot_token=DEFAULT_TOKEN,
        esimgo_api_key=fake_esimgo.api_key,
        esimgo_base_url=fake_esimgo.base_url,
        telegram_api_base=fake_telegram.base_url,
        database_url=bot_env_database,
        admin_ids=frozenset({ADMIN_ID}),
        # Tests feed one user's updates far faster than fingers can: no throttle unless a test
        # module sets its own limits (tests/test_throttle.py).
        **{"throttle_burst": UNTHROTTLED, **bot_env_settings},
    )
    bot = create_bot(settings)
    deps = await create_deps(settings, bot)
    try:
        await deps.catalogue.sync()
        dispatcher = create_dispatcher(deps)
        tuning.apply(bot, dispatcher)  # as `esimbot run` does
        yield BotEnv(dispatcher, bot, fake_telegram, fake_esimgo, deps, error_records)
    finally:
        await bot.session.close()
        await close_deps(deps)
