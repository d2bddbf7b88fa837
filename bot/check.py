"""`esimbot check`: a readable report on configuration, database, eSIM Go and the bot token."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from bot.app import create_bot
from bot.config import Settings
from bot.redaction import Redactor
from db.engine import create_engine
from db.migrate import alembic_config
from services.esimgo.client import EsimGoClient
from services.sandbox import start_standin

CHECK_TIMEOUT_SECONDS = 20


async def _database(settings: Settings) -> str:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

            def _revision(sync_conn: Connection) -> str | None:
                return MigrationContext.configure(sync_conn).get_current_revision()

            current = await conn.run_sync(_revision)
    finally:
        await engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    if current != head:
        return f"reachable, schema at {current or 'empty'} (head {head}: run `esimbot migrate`)"
    return f"reachable, schema up to date ({head})"


async def _esimgo(settings: Settings) -> str:
    api_key = settings.esimgo_api_key.get_secret_value()
    standin = await start_standin(api_key) if settings.sandbox else None
    base_url = standin.base_url if standin is not None else settings.esimgo_base_url
    try:
        async with EsimGoClient(base_url, api_key) as client:
            organisation = await client.get_organisation()
    finally:
        if standin is not None:
            await standin.close()
    name = organisation.name or "organisation"
    return f"{name}: balance {organisation.balance} {organisation.currency}"


def _mode(settings: Settings) -> str:
    """Which eSIM Go and which money: the first thing an operator must be sure of."""
    if settings.sandbox:
        return (
            "SANDBOX (ESIMGO_API_KEY=sandbox): built-in eSIM Go stand-in, payments simulated, "
            "no real money moves and no eSIM sold works"
        )
    return f"LIVE: eSIM Go at {settings.esimgo_base_url}, real payments"


async def _telegram(settings: Settings) -> str:
    bot = create_bot(settings)
    try:
        me = await bot.get_me()
    finally:
        await bot.session.close()
    if not me.supports_inline_queries:
        return (
            f"@{me.username} (id {me.id}); warning: inline mode is off, so `@{me.username} "
            "thailand` lists nothing: send /setinline to @BotFather to switch it on"
        )
    return f"@{me.username} (id {me.id}), inline mode on"


async def run_checks(settings: Settings) -> int:
    mode = "webhook " + settings.webhook_url if settings.webhook_mode else "long polling"
    print(f"config      ok: {mode}, payments in {settings.payment_currency}")
    print(f"mode        {_mode(settings)}")
    checks: list[tuple[str, Callable[[Settings], Awaitable[str]]]] = [
        ("database", _database),
        ("eSIM Go", _esimgo),
        ("Telegram", _telegram),
    ]
    redact = Redactor.for_settings(settings)
    failed = 0
    for name, check in checks:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                result = await check(settings)
            print(f"{name:<11} ok: {result}")
        except Exception as exc:
            failed += 1
            print(redact(f"{name:<11} FAILED: {type(exc).__name__}: {exc}"))
    print("all checks passed" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0
