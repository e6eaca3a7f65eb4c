"""The GPU queue with the real tiny engine: fairness, caps, cancellation, faults, loop never blocked."""

from __future__ import annotations

import asyncio
import time

import pytest
from PIL import Image

from generation.errors import JobCancelled, JobInterrupted, QueueFull
from generation.queue import JobQueue, Progress, QueuedJob
from rules.request import GenerationRequest

REQUEST = GenerationRequest(prompt="a lighthouse", seed=1, steps=2, guidance=5.0, width=64, height=64)


def job(job_id: int, user_id: int, **changes: object) -> QueuedJob:
    return QueuedJob(job_id=job_id, user_id=user_id, request=REQUEST.replace(**changes))


async def test_round_robin_across_users(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue([engine])
    started: list[int] = []
    jobs = [job(i, 1) for i in range(1, 5)] + [job(10, 2), job(20, 3)]
    for queued in jobs:
        queued.on_start = lambda j: started.append(j.job_id)
    queue.start()
    futures = [queue.submit(queued) for queued in jobs]
    await asyncio.wait_for(asyncio.gather(*futures), timeout=60)
    await queue.close()
    # Job 1 may already run before the others arrive; after it, users take turns.
    assert started[:4] in ([1, 10, 20, 2], [1, 2, 10, 20])
    assert started[-2:] == [3, 4]


async def test_order_and_positions_before_start(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue([engine])
    queue._loop = asyncio.get_running_loop()  # submit without workers to inspect the order
    for queued in (job(1, 1), job(2, 1), job(3, 1), job(4, 2)):
        queue.submit(queued)
    assert [j.job_id for j in queue.order()] == [1, 4, 2, 3]
    assert queue.position(4) == 2 and queue.position(3) == 4 and queue.position(99) is None


async def test_caps_refuse_politely_and_queue_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue([engine], max_pending_per_user=2, max_pending_total=3)
    queue._loop = asyncio.get_running_loop()
    queue.submit(job(1, 1))
    queue.submit(job(2, 1))
    with pytest.raises(QueueFull) as caught:
        queue.submit(job(3, 1))
    assert "2 jobs queued" in str(caught.value)
    queue.submit(job(4, 2))
    with pytest.raises(QueueFull, match="queue is full"):
        queue.submit(job(5, 3))
    assert queue.pending_count() == 3


async def test_cancel_queued_and_running(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue([engine])
    steps: list[int] = []
    running = job(1, 1, steps=40)
    running.on_progress = lambda p: steps.append(p.step)
    queue.start()
    first = queue.submit(running)
    second = queue.submit(job(2, 2))
    assert queue.cancel(2)
    with pytest.raises(JobCancelled):
        await asyncio.wait_for(second, 5)
    for _ in range(200):
        if steps:
            break
        await asyncio.sleep(0.02)
    assert queue.cancel(1)
    with pytest.raises(JobCancelled):
        await asyncio.wait_for(first, 30)
    assert len(steps) < 40
    await queue.close()


async def test_a_fault_fails_one_job_and_the_worker_goes_on(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue([engine])
    queue.start()
    broken = job(1, 1, kind="img2img", init_image="missing.png", strength=0.5)  # no image: the run raises
    bad = queue.submit(broken)
    good = queue.submit(job(2, 1))
    with pytest.raises(ValueError, match="source image"):
        await asyncio.wait_for(bad, 30)
    images = await asyncio.wait_for(good, 30)
    assert isinstance(images[0], Image.Image)
    await queue.close()


async def test_progress_arrives_on_the_loop_and_close_interrupts(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue([engine])
    loop_thread: list[bool] = []
    long = job(1, 1, steps=200)
    long.on_progress = lambda p: loop_thread.append(isinstance(p, Progress) and asyncio.get_running_loop() is not None)
    queue.start()
    future = queue.submit(long)
    waiting = queue.submit(job(2, 2))
    for _ in range(200):
        if loop_thread:
            break
        await asyncio.sleep(0.02)
    await asyncio.wait_for(queue.close(), 30)
    for pending in (future, waiting):
        with pytest.raises(JobInterrupted):
            await pending
    assert loop_thread and all(loop_thread)


async def test_one_worker_per_device_each_job_on_whichever_frees_first(engine, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    from generation.engine import DiffusionEngine

    second = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32")
    second.load()
    queue = JobQueue([engine, second])
    finished: dict[int, float] = {}
    jobs = [job(i, i, steps=40) for i in range(1, 5)]
    queue.start()
    futures = [queue.submit(queued) for queued in jobs]
    for queued, future in zip(jobs, futures, strict=True):
        future.add_done_callback(lambda _f, q=queued: finished.setdefault(q.job_id, time.monotonic()))
    await asyncio.wait_for(asyncio.gather(*futures), timeout=120)
    await queue.close()
    assert {queued.worker for queued in jobs} == {0, 1}
    first, second_job = sorted(jobs, key=lambda q: q.started_at or 0.0)[:2]
    assert first.worker != second_job.worker
    # They ran side by side: the second started before the first finished.
    assert (second_job.started_at or 0.0) < finished[first.job_id]


async def test_a_newcomer_goes_next_behind_a_heavy_user(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue([engine])
    queue.start()
    heavy = [job(i, 1, steps=20) for i in range(1, 6)]
    futures = [queue.submit(queued) for queued in heavy]
    for _ in range(200):
        if queue.running():
            break
        await asyncio.sleep(0.01)
    light = job(99, 2)
    futures.append(queue.submit(light))
    assert queue.position(99) == 1  # only the running job is ahead of it
    await asyncio.wait_for(asyncio.gather(*futures), timeout=60)
    await queue.close()
    started = sorted([*heavy, light], key=lambda q: q.started_at or 0.0)
    assert started[1] is light


async def test_places_of_all_waiting_jobs_from_one_ordering(engine) -> None:  # type: ignore[no-untyped-def]
    """Defect 9: a round of place refreshes orders the queue once, not once per waiting job."""
    from tests.reliability import record_reliability

    queue = JobQueue([engine], max_pending_per_user=5, max_pending_total=400)
    queue._loop = asyncio.get_running_loop()
    for user in range(1, 201):
        queue.submit(job(user, user))
    queue.submit(job(1001, 1))
    queue._step_seconds = 0.5  # as if measured: ETAs come with the places
    orderings = 0
    order_locked = queue._order_locked

    def counted() -> list[QueuedJob]:
        nonlocal orderings
        orderings += 1
        return order_locked()

    queue._order_locked = counted  # type: ignore[method-assign]
    places = queue.waiting_places()
    assert orderings == 1
    queue._order_locked = order_locked  # type: ignore[method-assign]
    assert [place for _, place, _ in places] == list(range(1, 202))
    assert places[-1][0].job_id == 1001  # user 1's second job comes after everyone's first
    for queued, place, eta in places[::37]:
        assert queue.position(queued.job_id) == place
        assert eta == queue.estimate_wait_s(queued.job_id)
    record_reliability("defect", "9. queue places refreshed in O(n^2)", 1, "one ordering per round")
