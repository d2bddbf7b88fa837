"""Webhook mode end-to-end over real HTTP, webhook registration, and /healthz."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.types import Update
from pydantic import SecretStr

from bot.server import delete_webhook, register_webhook
from db.engine import create_engine
from tests.fakes.telegram import ApiCall
from tests.helpers import BotEnv, make_user, message_update
from tests.tracking_helpers import ServerEnv, start_server_env, stop_server_env

SECRET = "s3cret-token_for-tests-0123456789abcdef"


def webhook_env(env: BotEnv, **settings: Any) -> BotEnv:
    """The same bot, configured for webhook mode (and any other setting given)."""
    changed = env.deps.settings.model_copy(
        update={
            "webhook_url": "https://bot.example.com",
            "webhook_secret": SecretStr(SECRET),
            **settings,
        }
    )
    return dataclasses.replace(env, deps=dataclasses.replace(env.deps, settings=changed))


@pytest.fixture
async def webhook_server(bot_env: BotEnv) -> AsyncIterator[ServerEnv]:
    server = await start_server_env(webhook_env(bot_env))
    try:
        yield server
    finally:
        await stop_server_env(server)


def as_json(update: Update) -> dict[str, Any]:
    return update.model_dump(mode="json", exclude_none=True, by_alias=True)


async def post_update(server: ServerEnv, update: Update, secret: str | None) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    async with server.http.post(
        f"{server.base_url}/telegram/webhook", json=as_json(update), headers=headers
    ) as resp:
        return resp.status


async def wait_for_message(server: ServerEnv, chat_id: int, count: int = 1) -> list[ApiCall]:
    """The bot answers in the background after the 200: wait (bounded) for its sendMessage."""

    def mine() -> list[ApiCall]:
        return [
            c
            for c in server.env.fake_telegram.calls_to("sendMessage")
            if int(c.params.get("chat_id", 0)) == chat_id
        ]

    async with asyncio.timeout(10):
        # FakeTelegram has no "call arrived" event; the loop is bounded by the timeout.
        while len(mine()) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return mine()


async def test_updates_with_the_right_secret_are_handled(webhook_server: ServerEnv) -> None:
    alice = make_user(7001)
    status = await post_update(webhook_server, message_update(alice, "/start"), SECRET)
    assert status == 200
    [answer] = await wait_for_message(webhook_server, alice.id)
    assert answer.params["text"]

    bob = make_user(7002, language_code="ru")
    assert await post_update(webhook_server, message_update(bob, "Таиланд"), SECRET) == 200
    [answer] = await wait_for_message(webhook_server, bob.id)
    assert "Таиланд" in str(answer.params["text"])


async def test_a_wrong_or_missing_secret_gets_401_and_is_not_handled(
    webhook_server: ServerEnv,
) -> None:
    alice = make_user(7003)
    assert await post_update(webhook_server, message_update(alice, "/start"), "wrong") == 401
    assert await post_update(webhook_server, message_update(alice, "/start"), None) == 401
    assert await post_update(webhook_server, message_update(alice, "/start"), "") == 401
    # A rejected request never reaches the dispatcher; an accepted one after it is answered.
    bob = make_user(7005)
    assert await post_update(webhook_server, message_update(bob, "/start"), SECRET) == 200
    await wait_for_message(webhook_server, bob.id)
    chats = {
        int(c.params["chat_id"]) for c in webhook_server.env.fake_telegram.calls_to("sendMessage")
    }
    assert chats == {bob.id}


@pytest.mark.parametrize(
    "secret",
    [
        "é" * 40,  # sent as UTF-8 bytes
        SECRET[:-1] + "é",  # right length, one byte off the alphabet
        "\u2028" + SECRET,
    ],
)
async def test_a_secret_header_with_other_bytes_gets_401_not_500(
    webhook_server: ServerEnv, secret: str
) -> None:
    alice = make_user(7006)
    assert await post_update(webhook_server, message_update(alice, "/start"), secret) == 401
    assert webhook_server.env.fake_telegram.calls_to("sendMessage") == []
    assert webhook_server.env.error_logs == []


async def test_polling_mode_has_no_telegram_route(server_env: ServerEnv) -> None:
    status = await post_update(server_env, message_update(make_user(7004), "/start"), SECRET)
    assert status in (404, 405)


async def test_register_webhook_sends_the_secret_and_used_update_types(bot_env: BotEnv) -> None:
    env = webhook_env(bot_env)
    allowed = env.dispatcher.resolve_used_update_types()
    await register_webhook(env.bot, env.deps.settings, allowed)

    [call] = env.fake_telegram.calls_to("setWebhook")
    assert call.params["url"] == "https://bot.example.com/telegram/webhook"
    assert call.params["secret_token"] == SECRET
    sent = call.params["allowed_updates"]
    sent = json.loads(sent) if isinstance(sent, str) else sent
    assert set(sent) == set(allowed)
    assert {"message", "callback_query", "pre_checkout_query"} <= set(sent)
    assert str(call.params.get("drop_pending_updates", "false")).lower() == "false"

    await delete_webhook(env.bot)
    assert len(env.fake_telegram.calls_to("deleteWebhook")) == 1


async def test_healthz_reports_database_catalogue_and_esim_go(server_env: ServerEnv) -> None:
    async with server_env.http.get(f"{server_env.base_url}/healthz") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["catalogue"]["bundles"] > 1000
    assert 0 <= body["catalogue"]["age_seconds"] < 600
    assert body["esimgo_last_success_at"] is not None


async def test_healthz_is_503_when_the_database_is_gone(bot_env: BotEnv) -> None:
    dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    env = dataclasses.replace(bot_env, deps=dataclasses.replace(bot_env.deps, engine=dead))
    server = await start_server_env(env)
    try:
        async with server.http.get(f"{server.base_url}/healthz") as resp:
            assert resp.status == 503
            body = await resp.json()
        assert body["status"] == "unavailable" and body["database"] != "ok"
    finally:
        await stop_server_env(server)
        await dead.dispose()


async def test_healthz_reports_states_not_exception_texts(bot_env: BotEnv) -> None:
    dead = create_engine("postgresql+asyncpg://nobody:hunter2@127.0.0.1:1/none")
    env = dataclasses.replace(bot_env, deps=dataclasses.replace(bot_env.deps, engine=dead))
    server = await start_server_env(env)
    try:
        async with server.http.get(f"{server.base_url}/healthz") as resp:
            raw = await resp.text()
    finally:
        await stop_server_env(server)
        await dead.dispose()
    body = json.loads(raw)
    assert body["database"] == "unavailable"
    for detail in ("Error", "refused", "127.0.0.1", "nobody", "hunter2", "Connect call"):
        assert detail not in raw


async def test_the_callback_path_is_configurable(bot_env: BotEnv) -> None:
    env = dataclasses.replace(
        bot_env,
        deps=dataclasses.replace(
            bot_env.deps,
            settings=bot_env.deps.settings.model_copy(
                update={"esimgo_callback_path": "/hooks/esimgo-7f3a"}
            ),
        ),
    )
    server = await start_server_env(env)
    try:
        low = {"alertType": "LowBalance", "balanceInfo": {"balance": 10, "threshold": 100}}
        status, _ = await server.post_callback(low, path="/hooks/esimgo-7f3a")
        assert status == 200
        status, _ = await server.post_callback(low, path="/esimgo/callback")
        assert status == 404
    finally:
        await stop_server_env(server)
