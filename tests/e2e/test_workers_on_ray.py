"""GPU workers as Ray actors, through the whole bot: fairness and caps, a killed worker, a joining one, cancel.

One local Ray instance serves the module; its workers are CPU-only actors (``num_gpus = 0``) with
the tiny model, started once and shared by the tests in the order below (the third-worker test
adds one, the kill test removes one, the lost-cluster test kills both and the pool starts two
new ones). Long jobs are 128x128 with 100 steps (minutes on this machine's CPU), so a job that
must still be running when the test acts on it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from generation.queue import JobQueue
from playground import DiscordEmulator, EmuMessage
from tests.harness import REPO, RunningBot, settings_for, start_bot, write_config_file

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[ray]")')

from generation.cluster import PoolSettings, RayWorkerPool, RemoteEngine  # noqa: E402

LONG = {"steps": 100, "width": 128, "height": 128}


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """One local Ray instance for the module; workers import this checkout and run torch on one thread."""
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        namespace="panelbot-tests",
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                  "TRANSFORMERS_OFFLINE": "1", "DIFFUSERS_VERBOSITY": "error"}},
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def pool(ray_instance: None, tiny_model_dir: Path) -> Iterator[RayWorkerPool]:
    """Two CPU workers with the tiny model, shared by the module's tests."""
    settings = PoolSettings(model_id=str(tiny_model_dir), workers=2, num_gpus=0, num_cpus=1, dtype="float32",
                            watch_interval_s=1.0, connect_timeout_s=120)
    workers = RayWorkerPool(settings)
    started = asyncio.run(asyncio.wait_for(workers.add_workers(2), 180))
    assert len(started) == 2, "two workers should come up"
    yield workers
    asyncio.run(workers.close())


@contextlib.asynccontextmanager
async def bot_on_pool(
    emulator: DiscordEmulator, pool: RayWorkerPool, tmp_path: Path, **queue: Any
) -> AsyncIterator[RunningBot]:
    """The bot with the pool's workers as its queue's engines (and the pool watching them)."""
    settings = settings_for(emulator, tmp_path, queue={"max_pending_per_user": 3, **queue})
    bot = await start_bot(emulator, None, settings, engines_extra=pool.engines)
    pool.attach(bot.queue)
    try:
        yield bot
    finally:
        await pool.detach()
        await bot.stop()


@pytest.fixture
async def cluster_bot(
    emulator: DiscordEmulator, pool: RayWorkerPool, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    """The bot on the pool's workers, the queue's caps at 3 per member."""
    async with bot_on_pool(emulator, pool, tmp_path) as bot:
        yield bot


def results(emu: DiscordEmulator) -> list[EmuMessage]:
    return [m for m in emu.messages() if m.attachments and m.embeds]


def results_for(emu: DiscordEmulator, job_id: int) -> list[EmuMessage]:
    return [m for m in results(emu) if (m.embeds[0].get("footer") or {}).get("text", "").startswith(f"Job {job_id} ·")]


def job_rows(db: Path) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, status, attempts FROM jobs ORDER BY id").fetchall()
    finally:
        con.close()


async def start(emu: DiscordEmulator, user: int, prompt: str, **options: object) -> EmuMessage:
    interaction = await emu.send_slash_command("imagine", {"prompt": prompt, **options}, user_id=user)
    return await emu.wait_for(lambda: interaction.original, timeout=20)


async def running_on(emu: DiscordEmulator, queue: JobQueue, job_id: int) -> str:
    """Wait until the job runs on a worker; return the worker's device name."""
    job = await emu.wait_for(lambda: next((j for j in queue.running() if j.job_id == job_id), None), timeout=60)
    device: str = await emu.wait_for(lambda: job.device, timeout=60)
    return device


async def burst_and_check(emu: DiscordEmulator, bot: RunningBot, db: Path) -> None:
    """Both workers busy with long jobs of u1 and u2; a burst queues in fair order, the cap holds, all finish."""
    u1, u2, u3, u4 = (emu.add_member(name) for name in ("u1", "u2", "u3", "u4"))
    queue = bot.queue
    blockers = [await start(emu, u1, "blocker one", **LONG)]
    if queue.workers == 2:
        blockers.append(await start(emu, u2, "blocker two", **LONG))
    await emu.wait_for(lambda: len(queue.running()) == len(blockers), timeout=60)
    # The burst: job ids 3.. (2.. on one worker); users' turns decide the order, not arrival.
    first_id = len(blockers) + 1
    for user, prompt in ((u1, "a"), (u1, "b"), (u3, "c"), (u3, "d"), (u4, "e")):
        await start(emu, user, prompt, steps=2)
    refused = await emu.send_slash_command("imagine", {"prompt": "over the cap"}, user_id=u1)
    note = await emu.wait_for(lambda: refused.original, timeout=20)
    assert note.ephemeral and "You already have 3 jobs queued (the limit is 3)" in note.content
    prompts = [job.request.prompt for job in queue.order()]
    assert prompts == ["c", "e", "a", "d", "b"]
    assert [job.job_id for job in queue.order()] == [first_id + i for i in (2, 4, 0, 3, 1)]

    for index, status in enumerate(blockers):
        await emu.click_button(status.id, f"job:cancel:{index + 1}", user_id=(u1, u2)[index])
    await emu.wait_for(lambda: len(results(emu)) == 5, timeout=150)
    await asyncio.sleep(0.5)
    assert [len(results_for(emu, job_id)) for job_id in range(first_id, first_id + 5)] == [1] * 5
    rows = job_rows(db)
    assert [row[1] for row in rows] == ["cancelled"] * len(blockers) + ["done"] * 5


async def test_a_burst_on_the_local_backend(emulator: DiscordEmulator, engine: Any, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path, queue={"max_pending_per_user": 3})
    bot = await start_bot(emulator, engine, settings)
    try:
        await burst_and_check(emulator, bot, tmp_path / "bot.sqlite3")
    finally:
        await bot.stop()


async def test_the_same_burst_on_two_ray_workers(
    emulator: DiscordEmulator, cluster_bot: RunningBot, tmp_path: Path
) -> None:
    assert cluster_bot.queue.workers == 2
    assert all(isinstance(engine, RemoteEngine) for engine in cluster_bot.queue.engines)
    await burst_and_check(emulator, cluster_bot, tmp_path / "bot.sqlite3")


async def test_cancelling_a_job_running_on_a_worker_stops_it_there(
    emulator: DiscordEmulator, cluster_bot: RunningBot, pool: RayWorkerPool, tmp_path: Path
) -> None:
    alice = emulator.add_member("alice")
    status = await start(emulator, alice, "a long one", **LONG)
    device = await running_on(emulator, cluster_bot.queue, 1)
    assert device in {engine.device for engine in pool.engines}
    await emulator.wait_for(lambda: "step " in status.content, timeout=60)
    await emulator.add_reaction(status.id, "❌", user_id=alice)
    # "Cancelled" shows once the worker stopped at its next step and answered (seconds, not the
    # minutes the job would take).
    await emulator.wait_for(lambda: "Cancelled" in status.content, timeout=30)
    await emulator.wait_for(lambda: cluster_bot.queue.running() == [], timeout=10)
    assert job_rows(tmp_path / "bot.sqlite3") == [(1, "cancelled", 1)]
    assert results(emulator) == []


async def test_ray_jobs_are_awaited_on_the_event_loop_which_stays_free(
    emulator: DiscordEmulator, cluster_bot: RunningBot, pool: RayWorkerPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = cluster_bot.queue
    # The remote workers are served by asyncio tasks on this loop, not by threads.
    assert queue.worker_threads == ()
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("gpu-worker-")]
    tasks = sorted(task.get_name() for task in asyncio.all_tasks() if task.get_name().startswith("gpu-worker-"))
    assert len(tasks) == queue.workers == 2
    assert sorted(task.get_name() for task in queue.worker_tasks) == tasks
    assert {name.split("-", 3)[3] for name in tasks} == {engine.device for engine in pool.engines}

    # No blocking Ray call (ray.get / ray.wait) on the loop's thread while a job runs and reports steps.
    loop_thread = threading.get_ident()
    blocking_on_loop: list[str] = []

    def spy(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                blocking_on_loop.append(name)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(ray, "get", spy("ray.get", ray.get))
    monkeypatch.setattr(ray, "wait", spy("ray.wait", ray.wait))

    # A heartbeat on the loop: how long it ever waited for its turn while the job ran.
    ticks, max_gap, beating = 0, 0.0, True

    async def heartbeat() -> None:
        nonlocal ticks, max_gap
        last = time.monotonic()
        for _ in range(100_000):  # bounded; stopped long before by the flag
            if not beating:
                return
            await asyncio.sleep(0.01)
            now = time.monotonic()
            max_gap, last, ticks = max(max_gap, now - last), now, ticks + 1

    alice = emulator.add_member("alice")
    status = await start(emulator, alice, "while the loop beats", steps=20, width=128, height=128)
    await running_on(emulator, queue, 1)
    beat = asyncio.create_task(heartbeat())
    started = time.monotonic()
    try:
        await emulator.wait_for(lambda: "step " in status.content, timeout=60)  # steps were polled and relayed
        await emulator.wait_for(lambda: len(results(emulator)) == 1, timeout=120)
    finally:
        beating = False
        await asyncio.wait_for(beat, 10)
    job_s = time.monotonic() - started
    assert len(results_for(emulator, 1)) == 1
    # The evidence that counts: not one blocking Ray call was made on the loop's thread.
    assert blocking_on_loop == []
    # The heartbeat kept its turn while the job ran. Relative to the job's own length (seconds on
    # this CPU): waiting for the job on the loop would show as one gap about that long, while a
    # loaded machine delays a turn by a fraction of a second at worst.
    assert ticks >= 10
    assert max_gap < job_s / 3, f"the event loop stalled {max_gap:.2f} s during a {job_s:.1f} s job"


async def test_compatible_jobs_run_as_one_batch_on_one_worker_and_equal_their_solo_runs(
    emulator: DiscordEmulator, pool: RayWorkerPool, tmp_path: Path
) -> None:
    async def stats() -> dict[str, dict[str, int]]:
        return {engine.device: await engine.actor.stats.remote() for engine in pool.engines}

    def delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        changed = {device: {key: after[device][key] - before[device][key] for key in after[device]}
                   for device in after}
        return {device: counts for device, counts in changed.items() if any(counts.values())}

    async with bot_on_pool(emulator, pool, tmp_path, max_batch_images=4) as bot:
        queue = bot.queue
        users = [emulator.add_member(f"b{i}") for i in range(5)]
        blockers = [await start(emulator, users[i], f"blocker {i}", **LONG) for i in range(2)]
        await emulator.wait_for(lambda: len(queue.running()) == 2, timeout=60)
        before = await stats()
        for index in range(3):
            await start(emulator, users[2 + index], f"batched {index}", seed=100 + index, count=1)
        assert queue.pending_count() == 3
        # The first worker to come free takes all three compatible jobs at once.
        await emulator.click_button(blockers[0].id, "job:cancel:1", user_id=users[0])
        await emulator.wait_for(lambda: len(results(emulator)) == 3, timeout=120)
        batched = delta(before, await stats())
        assert list(batched.values()) == [{"batches": 1, "jobs": 3, "images": 3}], batched
        await emulator.click_button(blockers[1].id, "job:cancel:2", user_id=users[1])
        await emulator.wait_for(lambda: queue.running() == [], timeout=30)

        # The same requests, one at a time: each runs alone.
        before = await stats()
        for index in range(3):
            await start(emulator, users[2 + index], f"batched {index}", seed=100 + index, count=1)
            await emulator.wait_for(lambda index=index: len(results(emulator)) == 4 + index, timeout=120)
        alone = delta(before, await stats())
        assert sum(counts["batches"] for counts in alone.values()) == 3
        assert sum(counts["jobs"] for counts in alone.values()) == 3

        for index in range(3):
            [in_batch] = results_for(emulator, 3 + index)
            [solo] = results_for(emulator, 6 + index)
            batch_pixels = np.asarray(in_batch.attachments[0].image().convert("RGB"), dtype=np.int16)
            solo_pixels = np.asarray(solo.attachments[0].image().convert("RGB"), dtype=np.int16)
            assert batch_pixels.shape == solo_pixels.shape == (64, 64, 3)
            # Bit-equal on this CPU backend; 1 level of tolerance for other backends.
            assert np.abs(batch_pixels - solo_pixels).max() <= 1
        assert [row[1] for row in job_rows(tmp_path / "bot.sqlite3")] == ["cancelled"] * 2 + ["done"] * 6


async def test_the_blocking_run_batch_for_scripts_draws_what_the_awaited_one_draws(pool: RayWorkerPool) -> None:
    """``RemoteEngine.run_batch`` (a plain call, for code outside any loop) gives the awaited path's images."""
    from rules.request import GenerationRequest

    engine = pool.engines[0]
    request = GenerationRequest(prompt="a lighthouse", seed=5, steps=2, guidance=5.0, width=64, height=64, count=2)
    steps: list[int] = []
    awaited = await engine.run_batch_async([request], [None])
    blocking = await asyncio.to_thread(
        engine.run_batch, [request], [None], on_step=lambda step, total, previews: steps.append(step)
    )
    assert len(blocking) == 1 and len(blocking[0]) == 2
    for mine, theirs in zip(awaited[0], blocking[0], strict=True):
        assert np.array_equal(np.asarray(mine), np.asarray(theirs))
    assert steps == sorted(steps) and set(steps) <= {1, 2}


async def test_a_worker_added_while_jobs_wait_takes_some(
    emulator: DiscordEmulator, cluster_bot: RunningBot, pool: RayWorkerPool, tmp_path: Path
) -> None:
    queue = cluster_bot.queue
    users = [emulator.add_member(f"w{i}") for i in range(4)]
    blockers = [await start(emulator, users[i], f"blocker {i}", **LONG) for i in range(2)]
    await emulator.wait_for(lambda: len(queue.running()) == 2, timeout=60)
    for index in range(2):
        await start(emulator, users[2 + index], f"waiting {index}", steps=2)
    assert queue.pending_count() == 2

    [third] = await asyncio.wait_for(pool.add_workers(1), 180)
    assert queue.workers == 3 and third in queue.engines
    # Both old workers are on their long jobs: the waiting ones can only go to the new worker.
    await emulator.wait_for(lambda: len(results(emulator)) == 2, timeout=60)
    assert [len(results_for(emulator, job_id)) for job_id in (3, 4)] == [1, 1]
    assert sorted(job.job_id for job in queue.running()) == [1, 2]  # the old workers were busy all along
    for index, status in enumerate(blockers):
        await emulator.click_button(status.id, f"job:cancel:{index + 1}", user_id=users[index])
    await emulator.wait_for(lambda: "Cancelled" in blockers[0].content and "Cancelled" in blockers[1].content,
                            timeout=30)
    assert [row[1] for row in job_rows(tmp_path / "bot.sqlite3")] == ["cancelled", "cancelled", "done", "done"]


async def test_a_worker_killed_mid_job_hands_the_job_to_another_exactly_once(
    emulator: DiscordEmulator, cluster_bot: RunningBot, pool: RayWorkerPool, tmp_path: Path
) -> None:
    queue = cluster_bot.queue
    before = queue.workers
    assert before >= 2
    bob = emulator.add_member("bob")
    status = await start(emulator, bob, "survives", steps=20, width=128, height=128)
    device = await running_on(emulator, queue, 1)
    await emulator.wait_for(lambda: "step " in status.content, timeout=60)  # the worker is computing it
    [victim] = [engine for engine in pool.engines if engine.device == device]
    ray.kill(victim.actor)

    await emulator.wait_for(lambda: len(results(emulator)) == 1, timeout=120)
    await asyncio.sleep(1.0)
    assert len(results_for(emulator, 1)) == 1
    assert "Done" in status.content
    # Started twice (the attempt on the killed worker counts), finished once.
    assert job_rows(tmp_path / "bot.sqlite3") == [(1, "done", 2)]
    assert victim not in queue.engines
    await emulator.wait_for(lambda: victim not in pool.engines, timeout=30)  # the watch dropped it too


def test_an_unreachable_cluster_at_start_is_one_line_and_exit_2(
    emulator: DiscordEmulator, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import subprocess

    config = tmp_path / "config.toml"
    write_config_file(
        config, emulator, tiny_model_dir, tmp_path,
        extra='[cluster]\nbackend = "ray"\naddress = "127.0.0.1:9"\nworkers = 1\nnum_gpus = 0\nconnect_timeout_s = 5\n',
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(REPO / "run_bot.py"), "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("cluster error: cannot reach the Ray cluster at 127.0.0.1:9"), done.stderr[-2000:]
    assert [line for line in lines if line.startswith("cluster error")] == [lines[-1]]
    assert time.monotonic() - started < 120
    assert not (tmp_path / "bot.sqlite3").exists()  # it stopped before opening anything


async def test_losing_every_worker_waits_for_workers_and_loses_no_job(
    emulator: DiscordEmulator, cluster_bot: RunningBot, pool: RayWorkerPool, tmp_path: Path
) -> None:
    queue = cluster_bot.queue
    assert queue.workers == 2
    users = [emulator.add_member(f"l{i}") for i in range(4)]
    runners = [await start(emulator, users[i], f"runner {i}", steps=20, width=128, height=128) for i in range(2)]
    await emulator.wait_for(lambda: len(queue.running()) == 2, timeout=60)
    for status in runners:
        await emulator.wait_for(lambda status=status: "step " in status.content, timeout=60)  # computing
    waiting = [await start(emulator, users[2 + i], f"waiting {i}", steps=2) for i in range(2)]
    assert queue.pending_count() == 2

    # The cluster goes: the pool stops watching (nothing restarts workers until it watches again)
    # and every worker dies.
    await pool.detach()
    for engine in pool.engines:
        ray.kill(engine.actor)
    await emulator.wait_for(lambda: queue.workers == 0, timeout=60)
    assert queue.running() == [] and queue.pending_count() == 4
    # The lost jobs went back to the front; the waiting ones kept their places after them.
    order = [job.job_id for job in queue.order()]
    assert sorted(order[:2]) == [1, 2] and order[2:] == [3, 4]

    statuses = runners + waiting
    await emulator.wait_for(
        lambda: all("waiting for a GPU worker to come back" in status.content for status in statuses), timeout=30
    )
    places = {job_id: place for place, job_id in enumerate(order, start=1)}
    for job_id, status in enumerate(statuses, start=1):
        where = "next up" if places[job_id] == 1 else f"position {places[job_id]} in the queue"
        assert f"({where}, waiting for a GPU worker to come back)" in status.content, status.content
    asked = await emulator.send_slash_command("queue", {}, user_id=users[2])
    view = await emulator.wait_for(lambda: asked.original, timeout=20)
    assert "No GPU worker is up right now" in view.content
    assert "position 3, waiting for a GPU worker to come back" in view.content
    assert results(emulator) == []
    assert [row[1] for row in job_rows(tmp_path / "bot.sqlite3")] == ["queued"] * 4

    # The cluster is back: the pool drops the dead workers, starts two new ones and hands them to the queue.
    await pool.check()
    pool.attach(queue)
    await emulator.wait_for(lambda: len(results(emulator)) == 4, timeout=480)  # two workers load the model first
    await asyncio.sleep(1.0)
    assert [len(results_for(emulator, job_id)) for job_id in (1, 2, 3, 4)] == [1, 1, 1, 1]
    assert all("Done" in status.content for status in statuses)
    # The lost runners started twice (the attempt on the dead worker counts), the others once; all done.
    assert job_rows(tmp_path / "bot.sqlite3") == [(1, "done", 2), (2, "done", 2), (3, "done", 1), (4, "done", 1)]
    assert queue.workers == 2 and len(queue.worker_tasks) == 2
