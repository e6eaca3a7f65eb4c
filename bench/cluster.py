"""Benchmark the Ray backend against the local one: dispatch overhead, scaling, recovery from a killed worker.

    python bench/cluster.py                  # a local Ray instance, CPU workers, the tiny model
    python bench/cluster.py --gpus 1         # workers with one GPU each (num_gpus), on a GPU machine

Prints a table, then as its last line one JSON object with:

- ``dispatch_overhead_local_ms`` / ``dispatch_overhead_ray_ms``: a 1-step job's time from submit to
  images minus the time the engine itself spent on it, measured where the engine runs (median of
  ``--jobs`` jobs, one at a time): what the queue, and the queue plus Ray (parameters out, PNGs
  back, polls), add to every job.
- ``throughput_ratio_2v1``: jobs per second with 2 Ray workers over 1 worker (same jobs).
- ``recovery_s``: a worker killed mid-job (``ray.kill``) until its job runs again on the other worker;
  ``recovery_total_s``: until that job's images are back.
- ``loop_gap_max_ms`` / ``loop_gap_p99_ms``: while the 2-worker burst runs, the longest (and 99th
  percentile) wait of a task that wakes every 10 ms on the event loop, beyond its 10 ms: the Ray
  workers are served by asyncio tasks on that loop, so this is what dispatch costs the bot's loop.
Every figure is measured within this one run, on this machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a script named like the standard library's `queue`: take the folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ray
import torch

from generation.cluster import PoolSettings, RayWorkerPool
from generation.engine import DiffusionEngine
from generation.queue import JobQueue, QueuedJob
from rules.request import GenerationRequest

REPO = Path(__file__).resolve().parents[1]


def request(seed: int, steps: int) -> GenerationRequest:
    return GenerationRequest(prompt=f"bench {seed}", seed=seed, steps=steps, guidance=5.0, width=64, height=64)


async def overheads(queue: JobQueue, jobs: int, engine_seconds: Callable[[], float]) -> list[float]:
    """Each 1-step job's time from submit to images minus the engine's own time for it, one job at a time."""
    times = []
    for index in range(jobs):
        started = time.perf_counter()
        await queue.submit(QueuedJob(job_id=index + 1, user_id=index % 3, request=request(index, 1)))
        total = time.perf_counter() - started
        times.append(total - engine_seconds())
    return times


class TimedEngine:
    """The local engine, timing its own ``run_batch`` (in the worker thread), as the actor does."""

    def __init__(self, engine: DiffusionEngine) -> None:
        self.engine = engine
        self.last_run_s = 0.0
        self.device = engine.device

    def run_batch(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.engine.run_batch(*args, **kwargs)
        finally:
            self.last_run_s = time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


class LoopWatch:
    """A task waking every 10 ms on the event loop; records how late each wake-up came."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.late.append(max(time.perf_counter() - before - 0.01, 0.0))

    def __enter__(self) -> LoopWatch:
        self._task = asyncio.create_task(self._beat())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def burst(queue: JobQueue, jobs: int, steps: int, first_id: int) -> float:
    """Seconds to run ``jobs`` jobs submitted at once (several users)."""
    started = time.perf_counter()
    futures = [queue.submit(QueuedJob(job_id=first_id + i, user_id=i % 4, request=request(100 + i, steps)),
                            check_caps=False) for i in range(jobs)]
    await asyncio.gather(*futures)
    return time.perf_counter() - started


async def recovery(pool: RayWorkerPool, queue: JobQueue, steps: int) -> tuple[float, float]:
    """Kill the worker running a job; seconds until the job runs again elsewhere, and until it is done."""
    starts: list[float] = []
    started, restarted = asyncio.Event(), asyncio.Event()

    def on_start(_: QueuedJob) -> None:
        starts.append(time.perf_counter())
        (started if len(starts) == 1 else restarted).set()

    job = QueuedJob(job_id=10_000, user_id=1, request=request(7, steps), on_start=on_start)
    future = queue.submit(job)
    await started.wait()
    await asyncio.sleep(0.5)  # a few steps in
    [victim] = [engine for engine in pool.engines if engine.device == job.device]
    killed = time.perf_counter()
    ray.kill(victim.actor)
    await restarted.wait()
    await future
    return starts[1] - killed, time.perf_counter() - killed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12, help="jobs for the dispatch overhead")
    parser.add_argument("--burst", type=int, default=8, help="jobs for the throughput ratio")
    parser.add_argument("--steps", type=int, default=20, help="steps per job in the burst")
    parser.add_argument("--gpus", type=float, default=0.0, help="num_gpus per worker (0: CPU workers)")
    parser.add_argument("--model", default="", help="model folder or hub id (default: the tiny model, built here)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    model = args.model
    if not model:
        from generation.tiny_model import save_tiny_pipeline

        model = str(save_tiny_pipeline(Path(tempfile.mkdtemp()) / "tiny-sd"))
    device = "cuda" if args.gpus > 0 else "cpu"
    ray.init(num_cpus=max(os.cpu_count() or 2, 4), include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}})
    figures: dict[str, float] = {}
    try:
        local_engine = DiffusionEngine(model, device=device, dtype="float32" if device == "cpu" else "auto")
        local_engine.load()
        local_engine.run(request(0, 1))  # warm-up
        timed = TimedEngine(local_engine)
        local = JobQueue([timed])  # type: ignore[list-item]
        local.start()
        local_times = await overheads(local, args.jobs, lambda: timed.last_run_s)
        await local.close()

        started = time.perf_counter()
        pool = RayWorkerPool(PoolSettings(model_id=model, workers=2, num_gpus=args.gpus, num_cpus=1,
                                          dtype="float32" if device == "cpu" else "auto", watch_interval_s=3600))
        engines = await pool.add_workers(2)
        figures["workers_start_s"] = time.perf_counter() - started
        one = JobQueue(engines[:1])
        one.start()
        actor = engines[0].actor
        ray_times = await overheads(one, args.jobs, lambda: float(ray.get(actor.last_run_seconds.remote())))
        burst_1 = await burst(one, args.burst, args.steps, 1000)
        await one.close()
        two = JobQueue(engines)
        two.start()
        with LoopWatch() as watch:
            burst_2 = await burst(two, args.burst, args.steps, 2000)
        restarted, total = await recovery(pool, two, max(args.steps * 4, 20))
        await two.close()
        await pool.close()
    finally:
        ray.shutdown()
    figures.update({
        "dispatch_overhead_local_ms": statistics.median(local_times) * 1000,
        "dispatch_overhead_ray_ms": statistics.median(ray_times) * 1000,
        "burst_1_worker_s": burst_1,
        "burst_2_workers_s": burst_2,
        "throughput_ratio_2v1": burst_1 / burst_2,
        "recovery_s": restarted,
        "recovery_total_s": total,
        "loop_gap_max_ms": max(watch.late) * 1000,
        "loop_gap_p99_ms": statistics.quantiles(watch.late, n=100)[98] * 1000,
        "cpu_count": float(os.cpu_count() or 0),
    })
    for key, value in figures.items():
        print(f"{key:>28}  {value:10.3f}")
    print(json.dumps({key: round(value, 4) for key, value in figures.items()}))


if __name__ == "__main__":
    asyncio.run(main())
