"""Replica benchmark: 1, 2 and 3 real `esimbot run` processes selling against the fakes.

Run: `python bench/replicas.py [--replicas 1,2,3] [--rates 1.5,2,2.5,3] [--seconds 10]` from the
repo root. Needs PostgreSQL and Redis: BENCH_POSTGRES_URL / BENCH_REDIS_URL (default
TEST_POSTGRES_URL / TEST_REDIS_URL). The database's `public` schema is DROPPED and the Redis
database flushed: point them at scratch ones.

For each replica count a cluster starts (tests/cluster.py: webhook mode, each buyer's updates
spread over the replicas) and buyers arrive at each rate in turn for `--seconds`: /start, a
country, a plan, Buy, Pay (eSIM Go validate), pre-checkout, successful_payment, then the QR
photo. eSIM Go is the fake, answering 429 past 10 requests in any second, as the real account
does; the replicas pace themselves at ESIMGO_REQUESTS_PER_SECOND (9) shared through Redis.
Telegram and eSIM Go fakes and the buyers run in this process.

Prints one row per rate tried, then per replica count the highest rate whose p95 from
successful_payment to the photo stayed under 1 s with every order delivered, the CPU seconds
the replicas used per purchase (from /proc), 429s seen, and eSIM Go calls per purchase by route.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from tests.cluster import Buyer, Cluster, ClusterTelegram, plan_choices
from tests.conftest import reset_postgres
from tests.fakes.esimgo import FakeEsimGo

ESIMGO_LIMIT = 10  # requests per second per account
P95_TARGET_SECONDS = 1.0
# Every buyer's photo must arrive within this once payments stop, or the rate is not sustained.
DRAIN_SECONDS = 60.0


@dataclass
class Run:
    replicas: int
    rate: float
    buyers: int
    delivered: int
    p50: float
    p95: float
    cpu_per_purchase: float
    rate_limited: int
    calls: Counter[str]

    @property
    def sustained(self) -> bool:
        return self.delivered == self.buyers and self.p95 < P95_TARGET_SECONDS


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def reset(database_url: str, redis_url: str) -> None:
    await reset_postgres(database_url)
    async with Redis.from_url(redis_url) as redis:
        await redis.flushdb()


def _route(method: str, path: str, body: object) -> str:
    if method == "POST" and path == "/orders" and isinstance(body, dict):
        return f"POST /orders {body.get('type')}"
    return f"{method} {path.split('/')[1] if path.count('/') > 1 else path}"


async def _one_buyer(buyer: Buyer, arrives_after: float) -> float | None:
    """Seconds from successful_payment to the photo; None when it never came."""
    await asyncio.sleep(arrives_after)  # the arrival schedule
    try:
        await buyer.browse_and_buy()
        await buyer.pay()
        photo_at = await buyer.photo(DRAIN_SECONDS)
    except (TimeoutError, RuntimeError) as exc:
        print(f"  buyer {buyer.user.id}: {exc}", file=sys.stderr)
        return None
    assert buyer.sale.paid_at is not None
    return photo_at - buyer.sale.paid_at


async def measure(cluster: Cluster, rate: float, seconds: float, first_user: int) -> Run:
    esimgo = cluster.esimgo
    count = max(1, round(rate * seconds))
    choices = plan_choices(esimgo, count)
    buyers = [
        Buyer(cluster, first_user + i, country, plan) for i, (country, plan) in enumerate(choices)
    ]
    seen_before, limited_before = len(esimgo.requests), esimgo.rate_limited
    cpu_before = cluster.cpu_seconds()
    results = await asyncio.gather(
        *(_one_buyer(buyer, i / rate) for i, buyer in enumerate(buyers))
    )
    cpu = cluster.cpu_seconds() - cpu_before
    latencies = [r for r in results if r is not None]
    calls = Counter(_route(r.method, r.path, r.json) for r in esimgo.requests[seen_before:])
    return Run(
        replicas=cluster.size,
        rate=rate,
        buyers=count,
        delivered=len(latencies),
        p50=statistics.median(latencies) if latencies else float("nan"),
        p95=percentile(latencies, 95) if latencies else float("nan"),
        cpu_per_purchase=cpu / max(len(latencies), 1),
        rate_limited=esimgo.rate_limited - limited_before,
        calls=calls,
    )


async def bench_cluster(
    size: int, rates: list[float], seconds: float, database_url: str, redis_url: str
) -> list[Run]:
    await reset(database_url, redis_url)
    telegram, esimgo = ClusterTelegram(), FakeEsimGo()
    esimgo.limit_requests(ESIMGO_LIMIT, window=1.0)
    await telegram.start()
    await esimgo.start()
    with tempfile.TemporaryDirectory(prefix="esimbot-replicas-") as workdir:
        cluster = Cluster(telegram, esimgo, database_url, redis_url, Path(workdir), size=size)
        runs: list[Run] = []
        try:
            await cluster.start()
            for step, rate in enumerate(rates):
                run = await measure(cluster, rate, seconds, 1_000_000 * (step + 1))
                print_run(run)
                runs.append(run)
                if not run.sustained:
                    break  # a higher rate only queues more
        finally:
            await cluster.stop()
            await telegram.close()
            await esimgo.close()
    return runs


def print_run(run: Run) -> None:
    print(
        f"  {run.replicas} replica(s) at {run.rate:g} purchases/s: {run.delivered}/{run.buyers} "
        f"delivered, p50 {run.p50:.2f} s, p95 {run.p95:.2f} s, "
        f"CPU {run.cpu_per_purchase:.3f} s/purchase, 429s {run.rate_limited}",
        flush=True,
    )


def print_table(results: dict[int, list[Run]]) -> None:
    print()
    print("replicas  purchases/s (p95 < 1 s)  p50 s  p95 s  CPU s/purchase  429s seen")
    for size, runs in results.items():
        good = [run for run in runs if run.sustained]
        best = max(good, key=lambda run: run.rate) if good else None
        limited = sum(run.rate_limited for run in runs)
        if best is None:
            print(f"{size:>8}  {'none tried':>23}  {'-':>5}  {'-':>5}  {'-':>14}  {limited:>9}")
            continue
        print(
            f"{size:>8}  {best.rate:>23g}  {best.p50:>5.2f}  {best.p95:>5.2f}  "
            f"{best.cpu_per_purchase:>14.3f}  {limited:>9}"
        )
    every = [run for runs in results.values() for run in runs]
    calls = sum((run.calls for run in every), Counter[str]())
    purchases = sum(run.delivered for run in every)
    print()
    print(f"eSIM Go calls per purchase: {sum(calls.values()) / max(purchases, 1):.2f}")
    for route, count in calls.most_common():
        print(f"  {route}: {count / max(purchases, 1):.2f}")


async def main(sizes: list[int], rates: list[float], seconds: float) -> int:
    database_url = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("TEST_POSTGRES_URL")
    redis_url = os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL")
    if not database_url or not redis_url:
        print("set BENCH_POSTGRES_URL and BENCH_REDIS_URL (or the TEST_ ones)", file=sys.stderr)
        return 2
    print(f"rates tried: {rates} purchases/s, {seconds:g} s of arrivals each")
    results = {}
    for size in sizes:
        results[size] = await bench_cluster(size, rates, seconds, database_url, redis_url)
    print_table(results)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--rates", default="1.5,2,2.5,3", help="purchases/s to try, in order")
    parser.add_argument("--seconds", type=float, default=10.0, help="arrivals at each rate")
    args = parser.parse_args()
    sizes = [int(n) for n in args.replicas.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    sys.exit(asyncio.run(main(sizes, rates, args.seconds)))
