"""Cost of one round of queue-place refreshes on the event loop, at N waiting members.

    python bench/queue_places.py [--members 200] [--rounds 20]

"original": the round as it was, one ``position()`` and one ``estimate_wait_s()`` per waiting job,
each replaying the original ordering (a ``min()`` over all members per job: O(n^2) per ordering,
O(n^3) per round); "before": the same per-job calls on the new heap ordering; "after": one
``waiting_places()`` snapshot per round (one ordering, O(n log members)). No GPU or model is
needed: no worker is started.
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


def _original_order(queue: JobQueue) -> list[QueuedJob]:
    """The ordering as it was before this change: a min() over all waiting members per job taken."""
    queues = {user: list(jobs) for user, jobs in queue._pending.items()}
    served = dict(queue._served)
    ordered: list[QueuedJob] = []
    while queues:
        user = min(queues, key=lambda u: (served.get(u, 0), queue._arrival[u]))
        ordered.append(queues[user].pop(0))
        served[user] = served.get(user, 0) + 1
        if not queues[user]:
            del queues[user]
    return ordered


def round_original(queue: JobQueue) -> int:
    """The original round: per waiting job, a position and an ETA, each from the original ordering."""
    places = 0
    for queued in _original_order(queue):
        order = _original_order(queue)  # position()
        if next(i for i, job in enumerate(order) if job.job_id == queued.job_id) >= 0:
            for job in _original_order(queue):  # estimate_wait_s()
                if job.job_id == queued.job_id:
                    break
            places += 1
    return places


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
    variants = (("original", round_original), ("before", round_before), ("after", round_after))
    for name, round_ in variants:
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            round_(queue)
            times.append((time.perf_counter() - start) * 1000)
        print(f"{name:>6}: {statistics.median(times):8.2f} ms per round at {args.members} waiting members")


if __name__ == "__main__":
    main()
