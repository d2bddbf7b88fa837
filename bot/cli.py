"""The `esimbot` command line: run, migrate, sync-catalogue, check."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from aiogram.exceptions import TelegramUnauthorizedError

from bot.config import ConfigError, Settings, load_settings
from bot.logging_setup import configure_logging
from bot.redaction import Redactor
from services.esimgo.errors import AuthError

log = logging.getLogger("esimbot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esimbot", description="Telegram bot that sells travel eSIMs through eSIM Go."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="migrate, then run the bot (polling or webhook)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    commands.add_parser("sync-catalogue", help="fetch the catalogue once and print what changed")
    commands.add_parser("check", help="check configuration, database, eSIM Go and the bot token")
    return parser


def _migrate(settings: Settings) -> int:
    from db.migrate import upgrade

    upgrade(settings.database_url)
    print("database is up to date")
    return 0


async def _sync_catalogue(settings: Settings) -> int:
    from bot.app import close_deps, create_bot, create_deps
    from db.migrate import upgrade_async

    await upgrade_async(settings.database_url)
    deps = await create_deps(settings, create_bot(settings))  # the bot sends nothing here
    try:
        had_snapshot = await deps.catalogue.load_snapshot()
        diff = await deps.catalogue.sync()
        print(f"catalogue: {len(deps.catalogue.catalogue)} bundles")
        # Fetched with the catalogue (a failure keeps the last ones and is logged).
        print(f"networks: {len(deps.networks.directory)} countries")
        print(diff.summary() if had_snapshot else "first snapshot stored")
        return 0
    finally:
        await close_deps(deps)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"esimbot: {exc}", file=sys.stderr)
        return 2
    redact = Redactor.for_settings(settings)
    configure_logging(settings.log_level, settings.log_format, redact)
    try:
        if command == "migrate":
            return _migrate(settings)
        if command == "sync-catalogue":
            return asyncio.run(_sync_catalogue(settings))
        if command == "check":
            from bot.check import run_checks

            return asyncio.run(run_checks(settings))
        from bot.runner import run

        asyncio.run(run(settings))
        return 0
    except KeyboardInterrupt:
        return 130
    except TelegramUnauthorizedError as exc:
        problem = f"Telegram refused BOT_TOKEN ({exc.message})"
    except AuthError as exc:
        problem = f"eSIM Go refused ESIMGO_API_KEY ({exc})"
    except Exception as exc:
        # One readable line for the operator; the traceback only when asked for.
        log.debug("fatal error", exc_info=True)
        problem = f"{type(exc).__name__}: {exc}"
    print(redact(f"esimbot {command}: {problem}"), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
