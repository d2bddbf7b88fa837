"""Purchase benchmark: N buyers at once through confirm → invoice → pay → eSIM photo.

Run: `python bench/purchase.py [--buyers 200] [--ramp 5] [--think 0.3] [--esimgo-rps 1000]`
from the repo root (`--ramp 0 --think 0` fires every buyer at the same instant).
The real dispatcher, services and fulfilment worker run against FakeTelegram and FakeEsimGo over
loopback HTTP, on SQLite in a temporary folder. The fakes run in a process of their own, as
Telegram and eSIM Go are other machines: the bot's latency is its own, not the stand-ins' CPU.
Prints eSIM Go calls per purchase after the validate, Telegram calls per purchase, time from
successful_payment to the sendPhoto request (p50/p95), duplicates, and CPU per purchase (the
bot's process, and the fakes' apart). Targets: ≤ 2 eSIM Go calls, p95 < 100 ms, 0 duplicates.
Production paces eSIM Go at 9 requests/s; `--esimgo-rps 9` shows how a burst of buyers queues.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import EditMessageText, SendInvoice, SendMessage, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import InlineKeyboardMarkup, Message, User
from sqlalchemy import func, select

from bot import tuning
from bot.app import close_deps, create_bot, create_deps
from bot.config import load_settings
from bot.dispatcher import create_dispatcher
from bot.messenger import AiogramMessenger
from db.migrate import upgrade_async
from db.models import Order, OrderStatus
from handlers.callbacks import BundleCallback, install_help_callback_data, open_esim_callback_data
from services.checkout import Checkout
from services.esimgo.client import EsimGoClient
from services.fulfilment import create_fulfilment_worker
from services.messenger import Keyboard, Messenger
from services.orders import OrderService
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.helpers import (
    callback_update,
    message_update,
    pre_checkout_update,
    successful_payment_update,
)

BUNDLES = ("esim_1GB_7D_GB_V2", "esim_1GB_7D_TH_V2", "esim_1GB_7D_US_V2", "esim_1GB_7D_AE_V2")


def serve_fakes(conn: Connection) -> None:
    """The child process: FakeTelegram and FakeEsimGo until told to stop, then what they saw."""
    asyncio.run(_serve_fakes(conn))


async def _serve_fakes(conn: Connection) -> None:
    telegram, esimgo = FakeTelegram(), FakeEsimGo()
    await telegram.start()
    await esimgo.start()
    loop = asyncio.get_running_loop()
    conn.send((telegram.base_url, esimgo.base_url, esimgo.api_key))
    mark, cpu_at_mark = 0, time.process_time()
    try:
        while await loop.run_in_executor(None, conn.recv) == "mark":
            mark, cpu_at_mark = len(esimgo.requests), time.process_time()
        routes = Counter(
            f"{r.route}:{(r.json or {}).get('type', '')}" if r.route == "POST /orders" else r.route
            for r in esimgo.requests[mark:]
        )
        conn.send(
            {
                "telegram": Counter(c.method for c in telegram.calls),
                "esimgo": routes,
                "orders": len(esimgo.orders),
                "cpu": time.process_time() - cpu_at_mark,
            }
        )
    finally:
        await telegram.close()
        await esimgo.close()


class Screens(BaseRequestMiddleware):
    """What the bot last showed each chat (message id and buttons) and the invoices it sent,
    read off its own requests: the buyers press those buttons."""

    def __init__(self) -> None:
        self.shown: dict[int, tuple[int, InlineKeyboardMarkup | None]] = {}
        self.invoices: dict[int, SendInvoice] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        # aiogram's annotation says Response, but the chain passes the parsed result along.
        result: Any = await make_request(bot, method)
        if isinstance(method, SendInvoice):
            self.invoices[int(method.chat_id)] = method
        elif isinstance(method, SendMessage | EditMessageText) and isinstance(result, Message):
            markup = method.reply_markup
            shown = markup if isinstance(markup, InlineKeyboardMarkup) else None
            self.shown[result.chat.id] = (result.message_id, shown)
        return result  # type: ignore[no-any-return]

    def button(self, chat_id: int, text_contains: str) -> tuple[int, str]:
        """(message id, callback data) of the first button on the chat's screen with the text."""
        message_id, markup = self.shown[chat_id]
        for row in markup.inline_keyboard if markup else ():
            for button in row:
                if text_contains in button.text and button.callback_data:
                    return message_id, button.callback_data
        raise LookupError(f"no {text_contains!r} button shown to {chat_id}")


class TimedMessenger:
    """Records when each chat's photo request starts; everything else passes through."""

    def __init__(self, inner: Messenger) -> None:
        self._inner = inner
        self.photo_started: dict[int, float] = {}
        self.photos: Counter[int] = Counter()

    async def send_text(self, chat_id: int, text: str, keyboard: Keyboard | None = None) -> int:
        return await self._inner.send_text(chat_id, text, keyboard)

    async def send_photo(
        self, chat_id: int, png: bytes, caption: str, keyboard: Keyboard | None = None
    ) -> int:
        self.photo_started.setdefault(chat_id, time.perf_counter())
        self.photos[chat_id] += 1
        return await self._inner.send_photo(chat_id, png, caption, keyboard)

    async def send_upload_photo_action(self, chat_id: int) -> None:
        await self._inner.send_upload_photo_action(chat_id)

    async def refund_star_payment(self, user_id: int, telegram_payment_charge_id: str) -> None:
        await self._inner.refund_star_payment(user_id, telegram_payment_charge_id)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


async def main(buyers: int, esimgo_rps: float, ramp: float, think_seconds: float) -> int:
    logging.basicConfig(level=logging.WARNING)
    fakes_end, ours = multiprocessing.get_context("spawn").Pipe()
    fakes = multiprocessing.get_context("spawn").Process(
        target=serve_fakes, args=(fakes_end,), daemon=True
    )
    fakes.start()
    loop = asyncio.get_running_loop()
    telegram_url, esimgo_url, api_key = await loop.run_in_executor(None, ours.recv)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        await upgrade_async(url)
        settings = load_settings(
            _env_file=None,
            bot_token=DEFAULT_TOKEN,
            esimgo_api_key=api_key,
            esimgo_base_url=esimgo_url,
            telegram_api_base=telegram_url,
            database_url=url,
        )
        bot = create_bot(settings)
        deps = await create_deps(settings, bot)
        fast = EsimGoClient(esimgo_url, api_key, max_requests_per_second=esimgo_rps)
        deps.orders = OrderService(fast, deps.catalogue, deps.pricing)
        deps.checkout = Checkout(
            deps.session_factory,
            deps.orders,
            deps.catalogue,
            deps.alerts,
            deps.messenger,
            wake_worker=deps.fulfilment_wake.set,
        )
        dispatcher = create_dispatcher(deps)
        tuning.apply(bot, dispatcher)  # as `esimbot run` does
        screens = Screens()
        bot.session.middleware(screens)
        messenger = TimedMessenger(AiogramMessenger(bot))
        worker = create_fulfilment_worker(
            session_factory=deps.session_factory,
            esimgo=fast,
            messenger=messenger,
            translator=deps.translator,
            alerts=deps.alerts,
            orders=deps.orders,
            catalogue=deps.catalogue,
            wake_event=deps.fulfilment_wake,
            install_help_callback=install_help_callback_data(),
            open_esim_callback=open_esim_callback_data,
        )
        try:
            await deps.catalogue.sync()
            tuning.settle_heap()  # as `esimbot run` does before it takes updates
            worker_task = asyncio.create_task(worker.run())
            ours.send("mark")
            paid_at: dict[int, float] = {}

            rng = random.Random(7)
            starts = [rng.uniform(0, ramp) for _ in range(buyers)]

            async def think() -> None:
                await asyncio.sleep(rng.uniform(0.5, 1.5) * think_seconds)

            async def buyer(n: int) -> None:
                user = User(id=500_000 + n, is_bot=False, first_name="Buyer", language_code="en")
                await asyncio.sleep(starts[n])
                await dispatcher.feed_update(bot, message_update(user, "/start"))
                await think()
                menu = screens.shown[user.id][0]
                data = BundleCallback(action="buy", bundle=BUNDLES[n % len(BUNDLES)], iso="")
                await dispatcher.feed_update(bot, callback_update(user, data, menu))
                await think()
                screen, pay = screens.button(user.id, "💳")
                await dispatcher.feed_update(bot, callback_update(user, pay, screen))
                await think()
                invoice = screens.invoices[user.id]
                amount = sum(price.amount for price in invoice.prices)
                await dispatcher.feed_update(
                    bot, pre_checkout_update(user, payload=invoice.payload, total_amount=amount)
                )
                await asyncio.sleep(0.05)  # Telegram takes the money between the two updates
                paid_at[user.id] = time.perf_counter()
                await dispatcher.feed_update(
                    bot,
                    successful_payment_update(
                        user, payload=invoice.payload, total_amount=amount, charge_id=f"bench-{n}"
                    ),
                )

            started, cpu_started = time.perf_counter(), time.process_time()
            await asyncio.gather(*(buyer(n) for n in range(buyers)))
            async with asyncio.timeout(600):
                while len(messenger.photo_started) < buyers:  # noqa: ASYNC110 - bench polling
                    await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            while not worker_task.done():  # a cancel that races a wake-up can be missed
                worker_task.cancel()
                await asyncio.wait({worker_task}, timeout=1)

            async with deps.session_factory() as session:
                delivered = await session.scalar(
                    select(func.count())
                    .select_from(Order)
                    .where(Order.status == OrderStatus.DELIVERED.value)
                )
        finally:
            await bot.session.close()
            await fast.close()
            await close_deps(deps)
            ours.send("stop")
            seen: dict[str, Any] = await loop.run_in_executor(None, ours.recv)
            fakes.join(timeout=10)

    routes: Counter[str] = seen["esimgo"]
    before_payment = routes["POST /orders:validate"] + routes["GET /organisation"]
    after_validate = sum(routes.values()) - before_payment
    telegram_calls: Counter[str] = seen["telegram"]
    latencies = [
        (messenger.photo_started[uid] - paid_at[uid]) * 1000
        for uid in paid_at
        if uid in messenger.photo_started
    ]
    duplicates = (seen["orders"] - buyers) + sum(n - 1 for n in messenger.photos.values())
    print(
        f"buyers: {buyers}, arriving over {ramp:g} s, ~{think_seconds * 1000:.0f} ms between "
        f"steps; eSIM Go pacing {esimgo_rps:g} req/s"
    )
    print(
        f"wall time: {elapsed:.2f} s; delivered orders: {delivered}; CPU per purchase: "
        f"bot {cpu / buyers * 1000:.0f} ms, fakes {seen['cpu'] / buyers * 1000:.0f} ms"
    )
    print(f"eSIM Go calls per purchase after the validate: {after_validate / buyers:.2f}")
    print(f"  (before the invoice: {before_payment / buyers:.2f} — validate + balance)")
    print(f"  all eSIM Go calls: {dict(routes)}")
    print(f"Telegram calls per purchase: {sum(telegram_calls.values()) / buyers:.2f}")
    print(f"  {dict(telegram_calls)}")
    print(
        "successful_payment → sendPhoto request: "
        f"p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 95):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )
    print(f"duplicates: {duplicates}")
    return 0 if duplicates == 0 and delivered == buyers else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--esimgo-rps", type=float, default=1000.0)
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which buyers start")
    parser.add_argument("--think", type=float, default=0.3, help="seconds between a buyer's taps")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.buyers, args.esimgo_rps, args.ramp, args.think)))
