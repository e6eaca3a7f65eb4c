"""Storage at scale: with 1,000,000 image rows, a member's history page and a message-id lookup
each take under 5 ms (indexes), and recording a new job stays under 2 ms.

    python bench/storage_scale.py [--rows 1000000]

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

from storage import Storage
from storage.jobs import NewJob

USERS = 5_000
JOBS_PER_BATCH = 4


def fill(path: Path, rows: int) -> None:
    """Write ``rows`` image rows (with their jobs and posted messages) straight through sqlite3."""
    rng = random.Random(0)
    con = sqlite3.connect(path)
    try:
        con.execute("BEGIN")
        jobs = rows // JOBS_PER_BATCH
        con.executemany(
            "INSERT INTO jobs (id, kind, status, requester_id, guild_id, channel_id, request_json, created_at) "
            "VALUES (?, 'txt2img', 'done', ?, 1, 1, '{}', ?)",
            ((j, rng.randrange(USERS), 1.7e9 + j) for j in range(1, jobs + 1)),
        )
        con.executemany(
            "INSERT INTO images (job_id, idx, seed, params_json, path, sha256, width, height, requester_id, "
            "guild_id, created_at) SELECT id, ?, id * 4 + ?, '{}', 'x/x.png', 'x', 512, 512, requester_id, 1, "
            "created_at FROM jobs",
            ((i, i) for i in range(JOBS_PER_BATCH)),
        )
        con.executemany(
            "INSERT INTO messages (message_id, channel_id, guild_id, job_id, kind, created_at) "
            "VALUES (?, 1, 1, ?, 'result', 0)",
            ((10**17 + j, j) for j in range(1, jobs + 1)),
        )
        con.execute("COMMIT")
    finally:
        con.close()


async def timed(n: int, make: object) -> list[float]:
    out: list[float] = []
    for i in range(n):
        start = time.perf_counter()
        await make(i)  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
    return out


async def run(rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scale.sqlite3"
        storage = await Storage.open(path, Path(tmp) / "images")  # creates the schema
        await storage.close()
        start = time.perf_counter()
        fill(path, rows)
        fill_s = time.perf_counter() - start
        storage = await Storage.open(path, Path(tmp) / "images")
        try:
            count = (await storage.db.execute_fetchall("SELECT COUNT(*) FROM images"))[0][0]
            rng = random.Random(1)
            jobs = rows // JOBS_PER_BATCH
            history = await timed(200, lambda i: storage.images.history(rng.randrange(USERS), guild_id=1, limit=10))
            lookup = await timed(200, lambda i: storage.messages.get(10**17 + rng.randrange(1, jobs)))
            job = NewJob(kind="txt2img", requester_id=1, guild_id=1, channel_id=1, request_json="{}")
            enqueue = await timed(200, lambda i: storage.jobs.create(job))
        finally:
            await storage.close()

    def p99(values: list[float]) -> float:
        return sorted(values)[int(len(values) * 0.99) - 1]

    return {
        "image_rows": count,
        "fill_s": fill_s,
        "history_page_median_ms": statistics.median(history),
        "history_page_p99_ms": p99(history),
        "message_lookup_median_ms": statistics.median(lookup),
        "message_lookup_p99_ms": p99(lookup),
        "enqueue_median_ms": statistics.median(enqueue),
        "enqueue_p99_ms": p99(enqueue),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    figures = asyncio.run(run(args.rows))
    goals = {"history_page_p99_ms": "< 5", "message_lookup_p99_ms": "< 5", "enqueue_p99_ms": "< 2"}
    print(f"{'figure':<28}{'value':>14}  goal")
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<28}{shown:>14}  {goals.get(key, '')}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
