"""Per-server checks and /stats at scale: a member's cooldown and daily-quota count, and /stats'
queries, on a database of 1,000,000 image rows spread over 20 servers and 90 days.

    python bench/server_stats.py [--rows 1000000]

The quota count runs before every job of a member whose server sets a cooldown or a daily quota
(``JobRepository.usage``); /stats runs its queries once per command (``StatsRepository.guild``).
Prints a table, then one JSON line with the medians and 99th percentiles in milliseconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py is named like the standard library's `queue`: take this folder off the import
# path before anything imports `queue`, and put the repository root there instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

from storage import Storage

USERS = 5_000
GUILDS = 20
DAYS = 90
IMAGES_PER_JOB = 4
STYLES = ("comic", "manga", "ink", "photo", None)


def fill(path: Path, rows: int, now: float) -> None:
    """``rows`` image rows and their jobs, straight through sqlite3 (the first server holds a third)."""
    rng = random.Random(0)
    con = sqlite3.connect(path)
    try:
        con.execute("BEGIN")
        jobs = rows // IMAGES_PER_JOB

        def job(j: int) -> tuple[object, ...]:
            created = now - rng.random() * DAYS * 86400
            style = rng.choice(STYLES)
            request = {"count": IMAGES_PER_JOB, "extra": {"style": style} if style else {}, "loras": ["ink"]}
            status = "failed" if j % 50 == 0 else "done"
            guild = 1 if rng.random() < 0.33 else rng.randrange(2, GUILDS + 1)
            return (j, status, rng.randrange(USERS), guild, json.dumps(request), created, created + 3,
                    created + 10, "timed out" if status == "failed" else None)

        con.executemany(
            "INSERT INTO jobs (id, kind, status, requester_id, guild_id, channel_id, request_json, created_at, "
            "started_at, finished_at, error) VALUES (?, 'txt2img', ?, ?, ?, 1, ?, ?, ?, ?, ?)",
            (job(j) for j in range(1, jobs + 1)),
        )
        con.executemany(
            "INSERT INTO images (job_id, idx, seed, params_json, path, sha256, width, height, requester_id, "
            "guild_id, created_at) SELECT id, ?, id * 4 + ?, '{\"extra\": {\"model\": \"sd15\"}}', 'x/x.png', 'x', "
            "512, 512, requester_id, guild_id, created_at FROM jobs WHERE status = 'done'",
            ((i, i) for i in range(IMAGES_PER_JOB)),
        )
        con.execute("COMMIT")
    finally:
        con.close()


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bot.sqlite3"
        await (await Storage.open(path, Path(folder) / "images")).close()  # creates the schema
        started = time.perf_counter()
        fill(path, args.rows, now)
        filled_s = time.perf_counter() - started
        storage = await Storage.open(path, Path(folder) / "images")
        try:
            rng = random.Random(1)
            usage = await timed(200, lambda: storage.jobs.usage(rng.randrange(USERS), 1, now - 86400))
            stats14 = await timed(10, lambda: storage.stats.guild(1, days=14))
            stats90 = await timed(10, lambda: storage.stats.guild(1, days=90))
        finally:
            await storage.close()
    figures = {"usage": usage, "stats_14_days": stats14, "stats_90_days": stats90}
    print(f"{args.rows:,} image rows written in {filled_s:.1f} s")
    print(f"{'figure':<16} {'median ms':>10} {'p99 ms':>10}")
    result: dict[str, float] = {}
    for name, values in figures.items():
        values.sort()
        median, p99 = statistics.median(values), values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{name:<16} {median:>10.2f} {p99:>10.2f}")
        result[f"{name}_median_ms"], result[f"{name}_p99_ms"] = round(median, 2), round(p99, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
