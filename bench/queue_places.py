"""Cost of one round of queue-place refreshes on the event loop, at N waiting members.

    python bench/queue_places.py [--members 200] [--rounds 20]

"before": what a round did until now, one ``position()`` and one ``estimate_wait_s()`` per waiting
job, each ordering the whole queue (O(n^2) and more); "after": one ``waiting_places()`` snapshot
per round (one ordering, O(n log members)). No GPU or model is needed: no worker is started.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generation.queue import JobQueue, QueuedJob
from rules.request import GenerationRequest

REQUEST = GenerationRequest(prompt="a lighthouse", seed=1, steps=20, guidance=5.0, width=512, height=512)


def build(members: int) -> JobQueue:
    queue = JobQueue([object()], max_pending_per_user=10, max_pending_total=members * 2)  # type: ignore[list-item]
    queue._loop = asyncio.new_event_loop()  # submit without workers
    for user in range(1, members + 1):
        queue.submit(QueuedJob(job_id=user, user_id=user, request=REQUEST))
    queue._step_seconds = 0.05
    return queue


def round_before(queue: JobQueue) -> int:
    places = 0
    for queued in queue.order():
        if queue.position(queued.job_id):
            queue.estimate_wait_s(queued.job_id)
            places += 1
    return places


def round_after(queue: JobQueue) -> int:
    return len(queue.waiting_places())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    queue = build(args.members)
    for name, round_ in (("before", round_before), ("after", round_after)):
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            round_(queue)
            times.append((time.perf_counter() - start) * 1000)
        print(f"{name:>6}: {statistics.median(times):8.2f} ms per round at {args.members} waiting members")


if __name__ == "__main__":
    main()
