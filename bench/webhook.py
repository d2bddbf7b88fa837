"""Webhook-mode throughput: the real bot vs a bare aiogram echo bot, both over loopback HTTP.

Run from the repo root: `python bench/webhook.py [--updates 3000] [--connections 40] [--rounds 7]`.
The two bots take turns (echo, esimbot, echo, …) and the ratio is the median over the rounds:
this machine's speed drifts by tens of percent within a minute.
Each update comes from its own chat, so "first answer" is the first Bot API call the stand-in
receives for that chat. Telegram's side is played by tests/fakes/telegram.py, eSIM Go's (for the
catalogue) by tests/fakes/esimgo.py; the database is SQLite in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import logging
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiogram import Bot, Dispatcher, Router  # noqa: E402
from aiogram.client.default import DefaultBotProperties  # noqa: E402
from aiogram.client.session.aiohttp import AiohttpSession  # noqa: E402
from aiogram.client.telegram import TelegramAPIServer  # noqa: E402
from aiogram.types import Message  # noqa: E402
from aiogram.webhook.aiohttp_server import SimpleRequestHandler  # noqa: E402
from aiohttp import web  # noqa: E402

from bot import tuning  # noqa: E402
from bot.app import close_deps, create_bot, create_deps  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.dispatcher import create_dispatcher  # noqa: E402
from bot.server import (  # noqa: E402
    TELEGRAM_WEBHOOK_PATH,
    create_web_app,
    start_bot_server,
    start_web_server,
)
from db.migrate import upgrade_async  # noqa: E402
from tests.fakes.esimgo import FakeEsimGo  # noqa: E402
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram  # noqa: E402

SECRET = "bench-secret-token-0123456789abcdef"  # Telegram allows 32–256 of [A-Za-z0-9_-]
SEARCHES = ("Thailand", "germny", "Япония", "TR", "united states", "Франция", "spain", "uk")


class TimedTelegram(FakeTelegram):
    """FakeTelegram that notes when the first call for an awaited chat arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.awaiting: dict[int, asyncio.Future[float]] = {}

    def expect(self, chat_id: int) -> asyncio.Future[float]:
        """The time of the next call for `chat_id` (one outstanding update per chat)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.awaiting[chat_id] = future
        return future

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        params, files = await super()._read_params(request)
        chat = params.get("chat_id")
        if chat is not None:
            future = self.awaiting.pop(int(chat), None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())
        return params, files

    def reset(self) -> None:
        self.calls.clear()
        self.messages.clear()


def update_for(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Bench", "language_code": "en"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Bench"},
            "from": user,
            "text": text,
        },
    }


def workload(count: int, users: int, connections: int, first_user: int) -> list[list[Any]]:
    """Per connection, (user, text) pairs: 40 % /start, 40 % country searches, 20 % /myesims.

    `users` distinct people, each bound to one connection (Telegram keeps a chat's updates in
    order); most write to the bot several times, so the user row exists after the first.
    """
    lanes: list[list[Any]] = [[] for _ in range(connections)]
    for i in range(count):
        kind = i % 5
        if kind in (0, 1):
            text = "/start"
        elif kind in (2, 3):
            text = SEARCHES[i % len(SEARCHES)]
        else:
            text = "/myesims"
        user = first_user + (i % users)
        lanes[user % connections].append((user, text))
    return lanes


@dataclass
class Result:
    name: str
    updates: int
    seconds: float
    latencies_ms: list[float]
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def line(self) -> str:
        return (
            f"{self.name:<10} {self.updates:>6} updates in {self.seconds:6.2f} s = "
            f"{self.rate:8.1f} updates/s; first answer p50 {self.percentile(50):7.1f} ms, "
            f"p99 {self.percentile(99):7.1f} ms; CPU {self.cpu_seconds:5.2f} s"
        )


async def fire(name: str, url: str, telegram: TimedTelegram, lanes: list[list[Any]]) -> Result:
    """Each lane is one keep-alive connection POSTing its updates back to back, as Telegram
    does; a chat's next update waits for the bot's first answer to its previous one."""
    telegram.reset()
    update_ids = itertools.count(1)
    latencies: list[float] = []
    pending: dict[int, asyncio.Future[float]] = {}
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    connector = aiohttp.TCPConnector(limit=len(lanes))
    async with aiohttp.ClientSession(connector=connector) as http:

        async def lane(items: list[Any]) -> None:
            for user, text in items:
                previous = pending.get(user)
                if previous is not None:
                    await previous
                answered = telegram.expect(user)
                pending[user] = answered
                sent = time.perf_counter()
                answered.add_done_callback(
                    lambda f, sent=sent: latencies.append((f.result() - sent) * 1000)
                )
                update = update_for(next(update_ids), user, text)
                async with http.post(url, json=update, headers=headers) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"{name}: HTTP {resp.status}")
                    await resp.read()

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(lane(items) for items in lanes))
        done = await asyncio.wait_for(asyncio.gather(*pending.values()), timeout=300)
        finished = max(done)
        cpu = time.process_time() - cpu_started
    count = sum(len(items) for items in lanes)
    return Result(name, count, finished - started, latencies, cpu)


async def serve_echo(telegram: TimedTelegram) -> tuple[web.AppRunner, str, Bot]:
    """The bare aiogram echo bot, served exactly like ours."""
    bot = Bot(
        DEFAULT_TOKEN,
        session=AiohttpSession(api=TelegramAPIServer.from_base(telegram.base_url)),
        default=DefaultBotProperties(parse_mode="HTML"),
    )
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "…")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token=SECRET).register(
        app, path=TELEGRAM_WEBHOOK_PATH
    )
    runner = await start_web_server(app, "127.0.0.1", 0)
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}{TELEGRAM_WEBHOOK_PATH}", bot


async def run_bench(
    count: int,
    users: int,
    connections: int,
    warmup: int,
    rounds: int,
    profile: bool = False,
) -> None:
    logging.basicConfig(level=logging.WARNING)
    telegram = TimedTelegram()
    esimgo = FakeEsimGo()
    await telegram.start()
    await esimgo.start()
    cleanups: list[Callable[[], Awaitable[None]]] = [telegram.close, esimgo.close]
    results: list[tuple[Result, Result]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            await upgrade_async(database_url)
            settings = load_settings(
                _env_file=None,
                bot_token=DEFAULT_TOKEN,
                esimgo_api_key=esimgo.api_key,
                esimgo_base_url=esimgo.base_url,
                telegram_api_base=telegram.base_url,
                database_url=database_url,
                webhook_url="https://bench.invalid",
                webhook_secret=SECRET,
                log_level="WARNING",
            )
            bot = create_bot(settings)
            deps = await create_deps(settings, bot)
            await deps.catalogue.sync()
            dispatcher = create_dispatcher(deps)
            tuning.apply(bot, dispatcher)  # as `esimbot run` does
            app = create_web_app(deps, dispatcher, bot)
            runner = await start_bot_server(app, "127.0.0.1", 0)
            ours = f"http://127.0.0.1:{runner.addresses[0][1]}{TELEGRAM_WEBHOOK_PATH}"
            echo_runner, echo_url, echo_bot = await serve_echo(telegram)
            tuning.settle_heap()  # as `esimbot run` does before it takes updates
            try:
                # Warm both up (connection pools, first-use imports), then measure.
                profiler = cProfile.Profile() if profile else None
                await fire("warmup", ours, telegram, workload(warmup, warmup, connections, 10**7))
                await fire(
                    "warmup", echo_url, telegram, workload(warmup, warmup, connections, 2 * 10**7)
                )
                # Rounds alternate so that a slower moment of the machine hits both bots.
                for round_ in range(rounds):
                    base = 10**7 * (3 + 2 * round_)
                    echo = await fire(
                        "echo", echo_url, telegram, workload(count, users, connections, base)
                    )
                    if profiler is not None:
                        profiler.enable()
                    esimbot = await fire(
                        "esimbot",
                        ours,
                        telegram,
                        workload(count, users, connections, base + 10**7),
                    )
                    if profiler is not None:
                        profiler.disable()
                    results.append((echo, esimbot))
                if profiler is not None:
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
            finally:
                await echo_runner.cleanup()
                await echo_bot.session.close()
                await runner.cleanup()
                await bot.session.close()
                await close_deps(deps)
    finally:
        for cleanup in cleanups:
            await cleanup()
    print(
        f"{count} updates from {users} users per bot over {connections} connections "
        f"(webhook, loopback, SQLite), {rounds} alternating rounds"
    )
    ratios = []
    for number, (echo, esimbot) in enumerate(results, 1):
        ratios.append(esimbot.rate / echo.rate)
        print(f"round {number}: esimbot = {ratios[-1]:.0%} of echo")
        print("  " + echo.line())
        print("  " + esimbot.line())
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio >= 0.6 else "misses"
    print(
        f"esimbot throughput = {ratio:.0%} of the echo bot's, median of the rounds "
        f"({verdict} the 60 % target)"
    )
    print(
        "mean first answer: echo "
        f"{statistics.mean(ms for echo, _ in results for ms in echo.latencies_ms):.1f} ms, "
        "esimbot "
        f"{statistics.mean(ms for _, esimbot in results for ms in esimbot.latencies_ms):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7, help="echo/esimbot pairs, alternating")
    parser.add_argument("--profile", action="store_true", help="cProfile the esimbot runs")
    args = parser.parse_args()
    asyncio.run(
        run_bench(
            args.updates, args.users, args.connections, args.warmup, args.rounds, args.profile
        )
    )


if __name__ == "__main__":
    main()
