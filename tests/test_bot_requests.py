"""What the bot's own Bot sends: one JSON document per call, defaults applied; files as forms."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)

from bot import tuning
from bot.app import create_bot
from bot.config import load_settings
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.helpers import BotEnv, callback_update, make_user, message_update

CHAT = 5151


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    settings = load_settings(
        _env_file=None,
        bot_token=DEFAULT_TOKEN,
        esimgo_api_key="test-key",
        telegram_api_base=fake_telegram.base_url,
    )
    bot = create_bot(settings)
    tuning.apply(bot, Dispatcher())
    yield bot
    await bot.session.close()


async def test_a_message_with_buttons_goes_as_json_with_the_bots_defaults(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="1 GB · 7 days · 50 ⭐", callback_data="bu:show:x:TH:s:0")],
            [InlineKeyboardButton(text="Install", url="https://esimsetup.apple.com/?c=LPA")],
        ]
    )
    sent = await bot.send_message(CHAT, "<b>Thailand</b> — «choose»", reply_markup=markup)

    call = fake_telegram.calls_to("sendMessage")[-1]
    assert call.content_type == "application/json"
    assert call.params["parse_mode"] == "HTML"  # from the Bot's defaults, not left out
    assert call.params["link_preview_options"] == {"is_disabled": True}
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "1 GB · 7 days · 50 ⭐", "callback_data": "bu:show:x:TH:s:0"}],
            [{"text": "Install", "url": "https://esimsetup.apple.com/?c=LPA"}],
        ]
    }
    assert sent.text == "Thailand — «choose»"
    # The keyboard Telegram echoes back is dropped unparsed: the bot never reads it.
    assert sent.reply_markup is None


async def test_a_photo_still_goes_as_a_multipart_upload(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    png = b"\x89PNG\r\n\x1a\nnot really"
    await bot.send_photo(CHAT, BufferedInputFile(png, "qr.png"), caption="<code>LPA:1$x$y</code>")

    call = fake_telegram.calls_to("sendPhoto")[-1]
    assert call.content_type == "multipart/form-data"
    assert call.files["photo"] == png
    assert call.params["caption"] == "<code>LPA:1$x$y</code>"
    assert call.params["parse_mode"] == "HTML"


async def test_an_updates_buttons_are_still_read(bot: Bot) -> None:
    # The webhook handler parses updates with the session's loader: only answers lose the echo.
    update = {
        "update_id": 1,
        "callback_query": {
            "id": "q",
            "chat_instance": "c",
            "data": "x",
            "from": {"id": CHAT, "is_bot": False, "first_name": "A"},
            "message": {
                "message_id": 3,
                "date": 1_700_000_000,
                "chat": {"id": CHAT, "type": "private"},
                "text": "Pick one",
                "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "x"}]]},
            },
        },
    }
    parsed = Update.model_validate(bot.session.json_loads(json.dumps(update)))
    assert parsed.callback_query is not None
    message = parsed.callback_query.message
    assert isinstance(message, Message) and message.reply_markup is not None


def _filters(router: Router) -> Iterator[FilterObject]:
    for observer in router.observers.values():
        for handler in (observer._handler, *observer.handlers):
            yield from handler.filters or ()
    for child in router.sub_routers:
        yield from _filters(child)


async def test_no_update_waits_for_a_thread_to_run_a_filter(bot_env: BotEnv) -> None:
    # aiogram runs a synchronous filter in a thread: a hop per filter and update under load.
    # Before, a router's own filters (support replies, start links) took that hop for every
    # message and cost bench/webhook.py a quarter of its throughput.
    filters = list(_filters(bot_env.dispatcher))
    assert filters and all(f.awaitable for f in filters)


def _routers(seen: list[str]) -> Dispatcher:
    """A message router, one with an outer middleware, and a button router (its middleware
    on messages) under a router of its own."""
    words, logged, buttons = Router(name="words"), Router(name="logged"), Router(name="buttons")
    words.message.filter(F.text != "skip-words")

    async def on_a(message: Message) -> str:
        seen.append("a")
        return "a"

    async def log_messages(handler: Any, event: Any, data: dict[str, Any]) -> Any:
        seen.append("middleware")
        return await handler(event, data)

    async def on_b(message: Message, event_router: Router) -> str:
        seen.append(f"b in {event_router.name}")
        return "b"

    async def on_button(query: CallbackQuery) -> str:
        seen.append("button")
        return "button"

    async def log_at_buttons(handler: Any, event: Any, data: dict[str, Any]) -> Any:
        seen.append("buttons' middleware")  # on a kind none of its handlers takes
        return await handler(event, data)

    words.message.register(on_a, F.text.in_({"a", "skip-words"}))
    buttons.message.outer_middleware(log_at_buttons)
    logged.message.outer_middleware(log_messages)
    logged.message.register(on_b, F.text.in_({"b", "skip-words"}))
    buttons.callback_query.register(on_button)
    dispatcher = Dispatcher()
    dispatcher.include_routers(words, logged, Router(name="parent"))
    dispatcher.sub_routers[-1].include_router(buttons)
    return dispatcher


async def test_light_router_crossings_run_what_aiogram_runs(bot: Bot) -> None:
    updates = [
        *(message_update(make_user(7), text) for text in ("a", "b", "c", "skip-words")),
        callback_update(make_user(7), "press"),
    ]
    outcomes = []
    for tuned in (False, True):
        seen: list[str] = []
        dispatcher = _routers(seen)
        if tuned:
            tuning._propagate_lightly(dispatcher)
        results = [await dispatcher.feed_update(bot, update) for update in updates]
        outcomes.append((seen, [str(result) for result in results]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0] == [
        "a",
        *("middleware", "b in logged"),
        *("middleware", "buttons' middleware"),  # "c": nobody takes it, both saw it
        *("middleware", "b in logged"),  # the words router's own filter turned it away
        "button",
    ]
