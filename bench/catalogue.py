"""Catalogue benchmark: index build time, country-search latency, memory of 1,500 bundles.

Run: `.venv/bin/python bench/catalogue.py [--bundles 1500] [--queries 4000]`.
Targets: search p99 < 1 ms, catalogue < 50 MB. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import string
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.catalogue import Catalogue
from services.countries import territory_names
from services.country_search import ALIASES, alpha3_codes
from tests.fakes.catalogue_data import make_catalogue


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1 :]  # dropped letter
    if kind == 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swapped letters
    return word[:i] + rng.choice("aeiouаеиоу") + word[i + 1 :]  # wrong vowel


def _garbage(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 12)))
    if kind == 1:
        return "".join(rng.choices("😀🙂🔥🌍✈️🇹🇭!?#", k=rng.randint(1, 6)))
    if kind == 2:
        return "".join(rng.choices("абвгдежзиклмнопрстуфхцчшщыэюя", k=rng.randint(3, 12)))
    return "x" * rng.choice((100, 255, 5000))


def make_queries(isos: list[str], count: int, seed: int = 1) -> list[tuple[str, str]]:
    """(kind, text) pairs mixing codes, names in both languages, typos, aliases and garbage."""
    rng = random.Random(seed)
    en, ru = territory_names("en"), territory_names("ru")
    alpha3 = {a2: a3 for a3, a2 in alpha3_codes().items() if a2 in isos}
    aliases = [alias for iso, names in ALIASES.items() if iso in isos for alias in names]
    makers = {
        "iso2": lambda: rng.choice(isos).lower(),
        "iso3": lambda: rng.choice(list(alpha3.values())),
        "name_en": lambda: en.get(rng.choice(isos), "Thailand"),
        "name_ru": lambda: ru.get(rng.choice(isos), "Таиланд").lower(),
        "typo_en": lambda: _typo(rng, en.get(rng.choice(isos), "Thailand")),
        "typo_ru": lambda: _typo(rng, ru.get(rng.choice(isos), "Таиланд")),
        "prefix": lambda: en.get(rng.choice(isos), "Thailand")[:4],
        "alias": lambda: rng.choice(aliases),
        "garbage": lambda: _garbage(rng),
    }
    kinds = list(makers)
    return [(kind, makers[kind]()) for kind in (rng.choice(kinds) for _ in range(count))]


def _ms(ns: float) -> str:
    return f"{ns / 1e6:8.3f} ms"


def _us(ns: float) -> str:
    return f"{ns / 1e3:8.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundles", type=int, default=1500)
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--builds", type=int, default=10)
    args = parser.parse_args()

    raw = make_catalogue(args.bundles)
    print(f"catalogue: {len(raw)} raw bundles (tests/fakes/catalogue_data.make_catalogue)")

    start = time.perf_counter_ns()
    catalogue = Catalogue.from_raw(raw)
    cold = time.perf_counter_ns() - start

    builds = []
    for _ in range(args.builds):
        start = time.perf_counter_ns()
        catalogue = Catalogue.from_raw(raw)
        builds.append(time.perf_counter_ns() - start)
    print("\nindex build (parse + indexes + country search), target well under 100 ms")
    print(f"  first build (loads Babel locale data): {_ms(cold)}")
    print(f"  median of {args.builds} builds:            {_ms(statistics.median(builds))}")
    print(f"  slowest build:                       {_ms(max(builds))}")
    print(
        f"  {len(catalogue)} bundles, {len(catalogue.countries())} countries, "
        f"{len(catalogue.regions())} regions"
    )

    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    kept = Catalogue.from_raw(raw)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print("\nmemory of one built catalogue (tracemalloc; raw JSON list excluded), target < 50 MB")
    mb = 2**20
    print(f"  current: {(current - before) / mb:6.2f} MB   peak: {(peak - before) / mb:6.2f} MB")
    del kept

    search = catalogue.search
    queries = make_queries(catalogue.countries(), args.queries)
    for _kind, text in queries[:200]:  # warm-up
        search.search(text)
    timings: dict[str, list[int]] = {}
    hits: dict[str, int] = {}
    for kind, text in queries:
        start = time.perf_counter_ns()
        found = search.search(text)
        elapsed = time.perf_counter_ns() - start
        timings.setdefault(kind, []).append(elapsed)
        hits[kind] = hits.get(kind, 0) + bool(found)

    every = sorted(t for values in timings.values() for t in values)

    def pct(values: list[int], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    print(f"\ncountry search over {len(every)} queries, target p99 < 1 ms")
    print(
        f"  all      p50 {_us(pct(every, 0.50))}   p99 {_us(pct(every, 0.99))}   "
        f"max {_us(every[-1])}"
    )
    for kind in sorted(timings):
        values = sorted(timings[kind])
        print(
            f"  {kind:8} p50 {_us(pct(values, 0.50))}   p99 {_us(pct(values, 0.99))}   "
            f"found something for {hits[kind]:4}/{len(values)}"
        )


if __name__ == "__main__":
    main()
