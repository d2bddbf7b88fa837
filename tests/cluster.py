"""Several real `esimbot run` processes in webhook mode on one PostgreSQL and one Redis, and the
Telegram side of them: updates POSTed to the replicas' webhooks as Telegram (behind a load
balancer) would, and buyers who go from /start to the QR photo. tests/test_replica_cluster.py and
bench/replicas.py both drive it.

Telegram and eSIM Go are the fakes over loopback HTTP, served by the calling process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiogram.types import Update, User

from handlers.callbacks import BundleCallback
from tests.fakes.esimgo import FakeEsimGo
from tests.fakes.telegram import FakeTelegram, StoredMessage
from tests.helpers import (
    callback_update,
    command_env,
    make_user,
    message_update,
    pre_checkout_update,
    successful_payment_update,
)

WEBHOOK_SECRET = "replica-cluster-secret_0123456789abcdef"
WEBHOOK_PATH = "/telegram/webhook"
# Guards against a hang, never measurements: a step that takes this long has failed.
START_SECONDS = 60.0
STEP_SECONDS = 60.0
# How often a waiting buyer looks at the chat again.
LOOK_EVERY_SECONDS = 0.02
# Telegram delivers a payment update again after a 5xx; this many times here.
REDELIVERIES = 20
# A buyer told "our supplier did not answer in time" taps Pay again after this, this many times.
RETRY_AFTER_ALERT_SECONDS = 1.0
PAY_TRIES = 30
_WORKER_STARTED = re.compile(r"fulfilment worker (\S+) started")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(condition: Callable[[], bool], what: str, seconds: float = STEP_SECONDS) -> None:
    """Wait for `condition`, looked at every few milliseconds; a bounded wait, not a timing."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(LOOK_EVERY_SECONDS)


class ClusterTelegram(FakeTelegram):
    """FakeTelegram that also notes when each chat got its photos and which invoice it got."""

    def __init__(self) -> None:
        super().__init__()
        self.photos_at: dict[int, list[float]] = {}
        self.invoices: dict[int, tuple[str, int]] = {}  # payload, total amount

    async def _m_sendphoto(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        result = await super()._m_sendphoto(params, files)
        self.photos_at.setdefault(self._chat_id(params), []).append(time.monotonic())
        return result

    async def _m_sendinvoice(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        result = await super()._m_sendinvoice(params, files)
        total = sum(int(price["amount"]) for price in params["prices"])
        self.invoices[self._chat_id(params)] = (str(params["payload"]), total)
        return result

    def newest_message_id(self, chat_id: int) -> int:
        return self._last_message_id.get(chat_id, 0)


@dataclass
class Replica:
    """One `esimbot run` process; its output goes to `log_path`."""

    index: int
    port: int
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    killed: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None and not self.killed

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_id(self) -> str | None:
        """The id its fulfilment worker leases orders under (`lease_owner` = id:batch)."""
        found = _WORKER_STARTED.search(self.log())
        return found.group(1) if found else None

    def cpu_seconds(self) -> float:
        """User and system CPU the process has used so far (Linux /proc)."""
        if self.process is None:
            return 0.0
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        return 0.0


@dataclass
class Cluster:
    """`size` replicas of the bot on one database and Redis, started by `start()`."""

    telegram: ClusterTelegram
    esimgo: FakeEsimGo
    database_url: str
    redis_url: str
    workdir: Path
    size: int = 3
    env: dict[str, str] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    _http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Start every replica at once and wait until each serves /healthz with a catalogue."""
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP_SECONDS))
        self.workdir.mkdir(parents=True, exist_ok=True)
        for index in range(self.size):
            replica = Replica(index, free_port(), self.workdir / f"replica-{index}.log")
            replica.process = await self._spawn(replica)
            self.replicas.append(replica)
        await asyncio.gather(*(self._ready(replica) for replica in self.replicas))

    async def _spawn(self, replica: Replica) -> asyncio.subprocess.Process:
        env = command_env(
            self.telegram,
            self.esimgo,
            self.database_url,
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=str(replica.port),
            REDIS_URL=self.redis_url,
            WEBHOOK_URL="https://bot.example.com",
            WEBHOOK_SECRET=WEBHOOK_SECRET,
            **self.env,
        )
        with replica.log_path.open("wb") as log:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def _ready(self, replica: Replica) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if not replica.alive:
                raise RuntimeError(f"replica {replica.index} exited:\n{replica.log()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(f"{replica.url}/healthz") as response:
                    body = await response.json()
                    if response.status == 200 and body["catalogue"]["bundles"]:
                        return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"replica {replica.index} never became ready:\n{replica.log()}")

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "start() first"
        return self._http

    def alive(self) -> list[Replica]:
        return [replica for replica in self.replicas if replica.alive]

    async def deliver(self, update: Update, replica: int) -> Replica:
        """POST `update` to replica `replica`, or the next one alive if it is down (a load
        balancer's failover); again after a 5xx, as Telegram does. Returns who took it."""
        body = update.model_dump(mode="json", by_alias=True, exclude_none=True)
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        for attempt in range(REDELIVERIES):
            for target in self._rotation(replica + attempt):
                try:
                    url = f"{target.url}{WEBHOOK_PATH}"
                    async with self.http.post(url, json=body, headers=headers) as response:
                        status = response.status
                except aiohttp.ClientError:
                    continue  # down (or killed while answering): the next replica
                if status < 500:
                    return target
                break
            await asyncio.sleep(0.5)
        raise RuntimeError(f"update {update.update_id} was never taken")

    def _rotation(self, start: int) -> list[Replica]:
        ordered = self.replicas[start % self.size :] + self.replicas[: start % self.size]
        return [replica for replica in ordered if replica.alive]

    def kill(self, replica: Replica) -> None:
        """SIGKILL: no shutdown, no lease handed back, requests in flight cut off."""
        assert replica.process is not None
        replica.killed = True
        replica.process.send_signal(signal.SIGKILL)

    def cpu_seconds(self) -> float:
        return sum(replica.cpu_seconds() for replica in self.replicas)

    async def stop(self) -> dict[int, int]:
        """SIGTERM the replicas still running; their exit codes (a killed one's too)."""
        for replica in self.replicas:
            if replica.alive:
                assert replica.process is not None
                replica.process.send_signal(signal.SIGTERM)
        codes: dict[int, int] = {}
        for replica in self.replicas:
            assert replica.process is not None
            try:
                async with asyncio.timeout(START_SECONDS):
                    codes[replica.index] = await replica.process.wait()
            except TimeoutError:
                replica.process.kill()
                codes[replica.index] = await replica.process.wait()
        if self._http is not None:
            await self._http.close()
        return codes


@dataclass
class Sale:
    """One buyer's way through the shop, as the test and the bench look at it."""

    user_id: int
    bundle: str = ""
    payload: str = ""
    paid_at: float | None = None  # successful_payment sent
    # Who took each update, and when (monotonic), in order.
    replicas: list[tuple[int, float]] = field(default_factory=list)


_payment_ids = itertools.count(1)


class Buyer:
    """A traveller who types a country, opens its `plan`-th plan, buys and pays in Stars; each
    update goes to the next replica in turn (a load balancer does not keep users on one)."""

    def __init__(self, cluster: Cluster, user_id: int, country: str, plan: int) -> None:
        self.cluster = cluster
        self.telegram = cluster.telegram
        self.user: User = make_user(user_id)
        self.country = country
        self.plan = plan
        self.sale = Sale(user_id)
        self._turn = user_id

    def _screen(self) -> StoredMessage | None:
        with contextlib.suppress(LookupError):
            return self.telegram.last_bot_message(self.user.id)
        return None

    async def _send(self, make: Callable[[], Update], done: Callable[[], bool], what: str) -> None:
        """One tap or message; the user repeats it (to whoever takes it) if the replica that
        took it died before answering, as nothing would appear on their screen."""
        self._turn += 1
        taken = await self.cluster.deliver(make(), self._turn)
        self.sale.replicas.append((taken.index, time.monotonic()))
        deadline = time.monotonic() + STEP_SECONDS
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"user {self.user.id}: no {what}")
            if not taken.alive:
                taken = await self.cluster.deliver(make(), self._turn)
                self.sale.replicas.append((taken.index, time.monotonic()))
            await asyncio.sleep(LOOK_EVERY_SECONDS)

    async def _message(self, text: str, what: str, done: Callable[[StoredMessage], bool]) -> None:
        before = self.telegram.newest_message_id(self.user.id)  # ids only grow

        def answered() -> bool:
            screen = self._screen()
            return screen is not None and screen.message_id > before and done(screen)

        def make() -> Update:
            message_id = self.telegram.record_user_message(self.user.id, text)
            return message_update(self.user, text, message_id=message_id)

        await self._send(make, answered, what)

    async def _press(self, data: str, what: str, done: Callable[[StoredMessage], bool]) -> None:
        screen = self._screen()
        assert screen is not None
        message_id, edits = screen.message_id, screen.edits

        def answered() -> bool:
            now = self._screen()
            return (
                now is not None
                and (now.message_id, now.edits) != (message_id, edits)
                and (done(now))
            )

        await self._send(lambda: callback_update(self.user, data, message_id), answered, what)

    async def browse_and_buy(self) -> None:
        """/start, the country, the plan, Buy, Pay: up to the invoice."""
        await self._message("/start", "main menu", lambda screen: bool(screen.buttons()))
        await self._message(self.country, "plans", lambda screen: bool(_plans(screen)))
        screen = self._screen()
        assert screen is not None
        data = _plans(screen)[self.plan]
        self.sale.bundle = BundleCallback.unpack(data).bundle
        await self._press(data, "plan card", lambda screen: _has_button(screen, "🛒"))
        await self._press(_button(self._screen(), "🛒"), "confirmation", _has_pay)
        await self._ask_for_invoice(_button(self._screen(), "💳"))

    async def _ask_for_invoice(self, pay: str) -> None:
        """Pay, and again after a moment while the bot says its supplier did not answer in time
        (the price is checked with eSIM Go while the user waits, at most a few seconds)."""
        screen = self._screen()
        assert screen is not None
        for attempt in itertools.count(1):
            query_id = f"cbq-cluster-{self.user.id}-{attempt}"

            def answered(query_id: str = query_id) -> bool:
                invoiced = self.user.id in self.telegram.invoices
                return invoiced or query_id in self.telegram.answered_callbacks

            update = callback_update(self.user, pay, screen.message_id, query_id=query_id)
            await self._send(lambda update=update: update, answered, "invoice")
            if self.user.id in self.telegram.invoices:
                return
            if attempt == PAY_TRIES:
                alert = self.telegram.answered_callbacks[query_id]
                raise TimeoutError(f"user {self.user.id}: no invoice, only {alert}")
            await asyncio.sleep(RETRY_AFTER_ALERT_SECONDS)  # the user reads the alert

    async def pay(self) -> None:
        """Telegram's pre-checkout query, then the successful payment, each to the next replica."""
        payload, amount = self.telegram.invoices[self.user.id]
        self.sale.payload = payload
        query_id = f"pcq-cluster-{self.user.id}"
        query = pre_checkout_update(
            self.user, payload=payload, total_amount=amount, query_id=query_id
        )
        self._turn += 1
        taken = await self.cluster.deliver(query, self._turn)
        self.sale.replicas.append((taken.index, time.monotonic()))
        answer = self.telegram.answered_pre_checkouts.get(query_id)
        assert answer is not None and answer.get("ok") is True, (self.user.id, answer)
        charge_id = f"cluster-charge-{self.user.id}-{next(_payment_ids)}"
        self.telegram.add_star_payment(self.user.id, payload, amount, charge_id=charge_id)
        paid = successful_payment_update(
            self.user, payload=payload, total_amount=amount, charge_id=charge_id
        )
        self._turn += 1
        self.sale.paid_at = time.monotonic()
        taken = await self.cluster.deliver(paid, self._turn)
        self.sale.replicas.append((taken.index, time.monotonic()))

    async def photo(self, seconds: float = STEP_SECONDS) -> float:
        """When the QR photo reached the chat (waits for it)."""
        await until(lambda: self.user.id in self.telegram.photos_at, "the photo", seconds)
        return self.telegram.photos_at[self.user.id][0]


def _plans(screen: StoredMessage) -> list[str]:
    """The callback data of the plan buttons on a country's screen, in order."""
    found = []
    for button in screen.buttons():
        data = str(button.get("callback_data", ""))
        with contextlib.suppress(ValueError, TypeError):
            if BundleCallback.unpack(data).action == "show":
                found.append(data)
    return found


def _has_button(screen: StoredMessage, text: str) -> bool:
    return any(text in label for label in screen.button_texts())


def _has_pay(screen: StoredMessage) -> bool:
    return _has_button(screen, "💳")


def _button(screen: StoredMessage | None, text: str) -> str:
    assert screen is not None
    return str(screen.button(text)["callback_data"])


def plan_choices(esimgo: FakeEsimGo, buyers: int) -> list[tuple[str, int]]:
    """(country code, plan position) for each buyer, every buyer on a plan of their own: the
    countries with single-country plans in turn, then their second plans, and so on."""
    countries = sorted(
        {
            str(bundle["countries"][0]["iso"])
            for bundle in esimgo.catalogue
            if len(bundle.get("countries", [])) == 1
        }
    )
    return [(countries[i % len(countries)], i // len(countries)) for i in range(buyers)]
