"""Workers that join and leave the queue (a cluster's): a lost worker's job goes back in line, placement, ETAs.

The engines are the real tiny engine seen through :class:`Worker`, which adds what a cluster
worker reports (its name, loaded models, speed) and, for the fault tests, loses itself the way a
remote worker's proxy does: by raising :class:`WorkerLost` from ``run_batch`` after a step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from PIL import Image

from generation.errors import JobStopped, WorkerLost
from generation.queue import JobQueue, QueuedJob
from rules.request import GenerationRequest

REQUEST = GenerationRequest(prompt="a lighthouse", seed=1, steps=2, guidance=5.0, width=64, height=64)


class Worker:
    """The real engine under another name, with the models it has loaded and its speed; may get lost."""

    def __init__(self, engine: Any, name: str, *, models: tuple[str, ...] | None = None,
                 step_seconds: float | None = None, lose_after_step: int | None = None) -> None:
        self.engine = engine
        self.name = name
        self.loaded_models = models
        self.step_seconds = step_seconds
        self.lose_after_step = lose_after_step
        self.ran: list[int] = []

    @property
    def device(self) -> str:
        return self.name

    def run_batch(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        *,
        on_step: Callable[[int, int, Any], None] | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[list[Image.Image]]:
        lose = self.lose_after_step

        def step(index: int, total: int, latents: Any) -> None:
            if on_step is not None:
                on_step(index, total, latents)
            if lose is not None and index >= lose:
                raise WorkerLost(f"{self.name} was killed")

        self.ran.extend(r.seed or 0 for r in requests)
        return self.engine.run_batch(requests, init_images, on_step=step, should_stop=should_stop)

    def run(self, request: GenerationRequest, **kwargs: Any) -> list[Image.Image]:
        return self.run_batch([request], [None], **kwargs)[0]

    def preview_png(self, latents: Any, max_side: int = 160) -> bytes:
        return bytes(self.engine.preview_png(latents, max_side))

    def release_memory(self) -> None:
        self.engine.release_memory()


class RemoteWorker(Worker):
    """The worker seen as a remote engine is: it has ``run_batch_async``, so the queue serves it from a task.

    The computing happens off the loop (in a thread here, on a Ray actor for
    :class:`generation.cluster.RemoteEngine`); steps are relayed to the loop, as the remote
    engine's polls are.
    """

    def __init__(self, engine: Any, name: str, **options: Any) -> None:
        super().__init__(engine, name, **options)
        self.batches: list[int] = []

    async def run_batch_async(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        *,
        on_step: Callable[[int, int, Any], None] | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[list[Image.Image]]:
        loop = asyncio.get_running_loop()

        def relay(step: int, total: int, latents: Any) -> None:
            if on_step is not None:
                loop.call_soon_threadsafe(on_step, step, total, latents)

        self.batches.append(len(requests))
        return await asyncio.to_thread(self.run_batch, requests, init_images, on_step=relay, should_stop=should_stop)


async def bounded(predicate: Callable[[], bool], limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def test_a_lost_worker_s_job_waits_for_the_next_worker_and_runs_once(engine: Any) -> None:
    doomed = Worker(engine, "doomed", lose_after_step=1)
    queue = JobQueue([doomed])
    starts: list[str] = []
    requeued: list[int] = []
    job = QueuedJob(job_id=1, user_id=1, request=REQUEST.replace(seed=7),
                    on_start=lambda j: starts.append(j.device or ""), on_requeue=lambda j: requeued.append(j.job_id))
    queue.start()
    future = queue.submit(job)
    await bounded(lambda: queue.workers == 0 and bool(requeued))
    assert requeued == [1] and queue.pending_count() == 1 and queue.running() == []
    assert job.worker_losses == 1 and job.started_at is None and not future.done()
    assert queue.estimate_wait_s(1) is None  # waiting for workers: no promise

    healthy = Worker(engine, "healthy")
    queue.add_engine(healthy)
    images = await asyncio.wait_for(future, 60)
    await queue.close()
    assert len(images) == 1 and healthy.ran == [7] and doomed.ran == [7]
    assert starts == ["doomed", "healthy"]


async def test_a_job_that_loses_too_many_workers_fails(engine: Any) -> None:
    queue = JobQueue([Worker(engine, "a", lose_after_step=1)], max_worker_losses=2)
    queue.start()
    future = queue.submit(QueuedJob(job_id=1, user_id=1, request=REQUEST))
    await bounded(lambda: queue.workers == 0)
    queue.add_engine(Worker(engine, "b", lose_after_step=1))
    with pytest.raises(WorkerLost, match="2 workers lost"):
        await asyncio.wait_for(future, 60)
    await bounded(lambda: queue.workers == 0)  # the worker leaves just after the job is answered
    assert queue.pending_count() == 0
    await queue.close()


async def test_a_requeued_job_keeps_its_place_in_the_fair_order(engine: Any) -> None:
    doomed = Worker(engine, "doomed", lose_after_step=1)
    queue = JobQueue([doomed])
    queue.start()
    first = queue.submit(QueuedJob(job_id=1, user_id=1, request=REQUEST))
    await bounded(lambda: bool(queue.running()) or queue.workers == 0)
    for job_id, user in ((2, 1), (3, 2), (4, 3)):
        queue.submit(QueuedJob(job_id=job_id, user_id=user, request=REQUEST.replace(steps=3)))
    await bounded(lambda: queue.workers == 0)
    # Job 1's turn was given back: it is first again, then users 2 and 3, then user 1's second job.
    assert [job.job_id for job in queue.order()] == [1, 3, 4, 2]
    queue.add_engine(Worker(engine, "healthy"))
    await asyncio.wait_for(first, 60)
    await queue.close()


async def test_a_removed_worker_takes_no_more_jobs(engine: Any) -> None:
    leaving, staying = Worker(engine, "leaving"), Worker(engine, "staying")
    queue = JobQueue([leaving, staying])
    queue.start()
    assert queue.remove_engine(leaving) and not queue.remove_engine(leaving)
    futures = [queue.submit(QueuedJob(job_id=i, user_id=i, request=REQUEST.replace(seed=i))) for i in range(1, 4)]
    await asyncio.wait_for(asyncio.gather(*futures), 60)
    await queue.close()
    assert leaving.ran == [] and sorted(staying.ran) == [1, 2, 3]


async def test_jobs_go_to_the_worker_that_has_their_model_loaded(engine: Any) -> None:
    one, two = Worker(engine, "one", models=("m1",)), Worker(engine, "two", models=("m2",))
    queue = JobQueue([one, two])
    queue.start()
    await bounded(lambda: queue._idle == {0, 1})  # both workers wait for work
    futures = [
        queue.submit(QueuedJob(job_id=1, user_id=1, request=REQUEST.replace(seed=21), model="m2")),
        queue.submit(QueuedJob(job_id=2, user_id=2, request=REQUEST.replace(seed=11), model="m1")),
    ]
    await asyncio.wait_for(asyncio.gather(*futures), 60)
    await queue.close()
    assert one.ran == [11] and two.ran == [21]


async def test_a_job_for_a_model_no_worker_has_still_runs(engine: Any) -> None:
    queue = JobQueue([Worker(engine, "one", models=("m1",))])
    queue.start()
    future = queue.submit(QueuedJob(job_id=1, user_id=1, request=REQUEST, model="m9"))
    assert len(await asyncio.wait_for(future, 60)) == 1
    await queue.close()


async def test_the_eta_counts_each_worker_at_its_own_speed(engine: Any) -> None:
    fast, slow = Worker(engine, "fast", step_seconds=0.1), Worker(engine, "slow", step_seconds=0.3)
    queue = JobQueue([fast, slow])
    queue._loop = asyncio.get_running_loop()  # submit without workers to inspect the estimate
    for job_id in (1, 2, 3):
        queue.submit(QueuedJob(job_id=job_id, user_id=job_id, request=REQUEST.replace(steps=10)))
    # Ahead of job 3: 20 image steps; together the workers do 1/0.1 + 1/0.3 = 13.33 steps a second.
    assert queue.estimate_wait_s(3) == pytest.approx(20 / (10 + 10 / 3))
    assert queue.estimate_wait_s(1) == 0.0
    queue.remove_engine(slow)
    assert queue.estimate_wait_s(3) == pytest.approx(2.0)
    queue.remove_engine(fast)
    assert queue.estimate_wait_s(3) is None


def test_a_queue_needs_a_worker_unless_told_they_come_later(engine: Any) -> None:
    with pytest.raises(ValueError):
        JobQueue([])
    assert JobQueue([], allow_no_workers=True).workers == 0


async def test_a_remote_worker_is_a_task_and_its_lost_job_waits_for_the_next_one(engine: Any) -> None:
    doomed = RemoteWorker(engine, "doomed", lose_after_step=2)
    queue = JobQueue([doomed])
    requeued: list[int] = []
    queue.start()
    assert queue.worker_threads == () and [task.get_name() for task in queue.worker_tasks] == ["gpu-worker-0-doomed"]
    job = QueuedJob(job_id=1, user_id=1, request=REQUEST.replace(seed=7), on_requeue=lambda j: requeued.append(1))
    future = queue.submit(job)
    queue.submit(QueuedJob(job_id=2, user_id=2, request=REQUEST.replace(seed=8)))
    await bounded(lambda: queue.workers == 0 and bool(requeued))
    assert queue.worker_tasks == () and queue.pending_count() == 2 and not future.done()
    # Steps were measured before the loss; with no worker no start time is promised (and nothing divides by 0).
    assert [(job.job_id, place, eta) for job, place, eta in queue.waiting_places()] == [(1, 1, None), (2, 2, None)]

    healthy = RemoteWorker(engine, "healthy")
    queue.add_engine(healthy)
    assert len(await asyncio.wait_for(future, 60)) == 1
    await queue.close()
    assert doomed.ran == [7] and healthy.ran == [7, 8] and queue.worker_tasks == ()


async def test_a_remote_worker_batches_compatible_jobs_like_a_thread_does(engine: Any) -> None:
    worker = RemoteWorker(engine, "remote")
    queue = JobQueue([worker], max_batch_images=4)
    queue.start()
    queue.hold(30)  # nothing starts until all three are queued
    futures = [queue.submit(QueuedJob(job_id=i, user_id=i, request=REQUEST.replace(seed=i))) for i in (1, 2, 3)]
    queue.release()
    results = await asyncio.wait_for(asyncio.gather(*futures), 60)
    await queue.close()
    assert worker.batches == [3] and sorted(worker.ran) == [1, 2, 3]
    assert [len(images) for images in results] == [1, 1, 1]
