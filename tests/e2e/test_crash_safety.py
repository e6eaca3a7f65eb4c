"""Crash safety: the bot as a ``run_bot.py`` subprocess, SIGKILLed at seeded random moments and restarted.

20 /imagine requests from several members arrive over six runs of the bot; five runs end in SIGKILL
after a seeded random delay (while it starts, queues, generates or posts), the last in a clean
Ctrl-C. A request the killed bot never acknowledged (the member saw "the application did not
respond") and never recorded is sent again, as the member would. At the end every request is done
exactly once, no result is posted twice, SQLite's ``integrity_check`` is ok, every image row has its
file with the recorded hash and there is no file no row refers to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import signal
from pathlib import Path

from playground import DiscordEmulator, EmuInteraction
from tests.harness import image_posts, launch_bot_process, rows, write_config_file
from tests.reliability import record_reliability

SEED = 20261130
REQUESTS = 20
KILLS = 5
MEMBERS = 4
#: Enough steps that a kill often lands mid-generation (about a second a job on a shared 2-core CPU).
STEPS = 25


def posted(emu: DiscordEmulator) -> dict[int, int]:
    """How many result messages each job id has."""
    counts: dict[int, int] = {}
    for message in image_posts(emu):
        footer = message.embeds[0]["footer"]["text"]
        job_id = int(footer.split("·")[0].removeprefix("Job ").strip())
        counts[job_id] = counts.get(job_id, 0) + 1
    return counts


async def test_sigkill_at_random_moments_loses_nothing(
    emulator: DiscordEmulator, tiny_model_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    config, log, db = tmp_path / "config.toml", tmp_path / "bot.log", tmp_path / "bot.sqlite3"
    # Every kill may cut off the job that is running: allow more runs than there are kills, so the
    # poison-job guard ([queue] max_attempts) cannot end a job that only ever met the kills.
    write_config_file(config, emulator, tiny_model_dir, tmp_path, extra=f"max_attempts = {KILLS + 2}")
    members: list[int] = []
    pending = [f"request {n}" for n in range(REQUESTS)]  # prompts not yet recorded by the bot
    sent: dict[str, list[EmuInteraction]] = {}
    kills = 0
    moments: list[str] = []  # the jobs' states at each kill
    process: asyncio.subprocess.Process | None = None
    try:
        for run in range(KILLS + 1):
            identifies = emulator.gateway.identify_count
            process = await launch_bot_process(config, log)
            await emulator.wait_for(
                lambda n=identifies: emulator.gateway.identify_count > n and emulator.gateway.ready,  # type: ignore[misc]
                timeout=120,
            )
            if not members:
                members = [emulator.add_member(f"member{i}") for i in range(MEMBERS)]
            recorded = {prompt for (prompt,) in rows(db, "SELECT json_extract(request_json, '$.prompt') FROM jobs")}
            pending = [prompt for prompt in pending if prompt not in recorded]
            last = run == KILLS
            batch = pending if last else pending[: rng.randint(2, 5)]
            for prompt in batch:
                user = members[int(prompt.split()[-1]) % MEMBERS]
                inter = await emulator.send_slash_command(
                    "imagine", {"prompt": prompt, "count": 1, "steps": STEPS}, user_id=user, ack_timeout=None
                )
                sent.setdefault(prompt, []).append(inter)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
            if last:
                break
            # A seeded moment once the bot is working: while it generates, posts or moves to the next job.
            with contextlib.suppress(TimeoutError):
                await emulator.wait_for(
                    lambda: rows(db, "SELECT count(*) FROM jobs WHERE status = 'running'") != [(0,)], timeout=60
                )
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            moments.append(", ".join(f"{n} {status}" for status, n in
                                     rows(db, "SELECT status, count(*) FROM jobs GROUP BY status")) or "no job yet")
            process.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(process.wait(), 30) == -signal.SIGKILL
            kills += 1
            process = None
        await emulator.wait_for(
            lambda: rows(db, "SELECT count(*) FROM jobs WHERE status = 'done'") == [(REQUESTS,)], timeout=180
        )
        await asyncio.sleep(1.0)  # a duplicate would show up here
        assert process is not None
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            with contextlib.suppress(Exception):
                await process.wait()

    jobs = rows(db, "SELECT id, json_extract(request_json, '$.prompt'), status FROM jobs ORDER BY id")
    prompts = sorted(prompt for _, prompt, _ in jobs)
    assert prompts == sorted(f"request {n}" for n in range(REQUESTS)), "a request was lost or done twice"
    assert {status for _, _, status in jobs} == {"done"}
    counts = posted(emulator)
    assert counts == {job_id: 1 for job_id, _, _ in jobs}, "a result missing or posted twice"
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    images_dir = tmp_path / "images"
    stored = rows(db, "SELECT path, sha256 FROM images")
    assert len(stored) == REQUESTS
    for path, sha in stored:
        assert hashlib.sha256((images_dir / path).read_bytes()).hexdigest() == sha
    files = {p.relative_to(images_dir).as_posix() for p in images_dir.rglob("*") if p.is_file()}
    partial = {name for name in files if Path(name).name.startswith(".tmp-")}
    assert files - partial == {path for path, _ in stored}, "orphan image files"
    resent = sum(len(inters) - 1 for inters in sent.values())
    record_reliability("crash", f"SIGKILL at seeded random moments (seed {SEED}), restart each time", kills,
                       f"{REQUESTS} requests from {MEMBERS} members, each done once; {resent} never-acknowledged "
                       f"requests sent again by their member; jobs at the kills: {' / '.join(moments)}")
    record_reliability("crash", "requests lost after the kills", REQUESTS, "0")
    record_reliability("crash", "results posted twice", REQUESTS, "0")
    record_reliability("crash", "PRAGMA integrity_check, image files vs rows (hash), orphan files", 1,
                       f"ok, {len(stored)} files match their hash, 0 orphans, {len(partial)} partial temp files")
