"""Kill the bot process (SIGKILL) mid-generation: after a restart every job completes exactly once.

The bot runs as a real ``run_bot.py`` subprocess with a config file, against the emulator served
from this test's event loop, with the tiny model on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from pathlib import Path

from tests.emulator import DiscordEmulator, EmuMessage

REPO = Path(__file__).resolve().parents[1]


def write_config(path: Path, emu: DiscordEmulator, model_dir: Path, data: Path) -> None:
    path.write_text(
        f"""
[discord]
token = "{emu.token}"
guild_ids = [{emu.guild_id}]
api_base = "{emu.api_base}"
gateway_url = "{emu.gateway_url}"

[model]
id = "{model_dir}"
device = "cpu"

[storage]
database = "{data / 'bot.sqlite3'}"
images_dir = "{data / 'images'}"

[generation]
default_steps = 4

[queue]
preview_interval_s = 0
"""
    )


async def launch(config: Path, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("DISCORD_TOKEN", None)
    handle = log.open("ab")
    return await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "run_bot.py"), "--config", str(config),
        cwd=REPO, env=env, stdout=handle, stderr=handle,
    )


def results(emu: DiscordEmulator) -> list[EmuMessage]:
    return [m for m in emu.messages() if m.attachments and m.embeds]


def posted_for(emu: DiscordEmulator, job_id: int) -> int:
    return sum(1 for m in results(emu) if m.embeds[0]["footer"]["text"].startswith(f"Job {job_id} ·"))


async def test_sigkill_mid_generation_loses_nothing(
    emulator: DiscordEmulator, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config, log = tmp_path / "config.toml", tmp_path / "bot.log"
    write_config(config, emulator, tiny_model_dir, tmp_path)
    first = await launch(config, log)
    second: asyncio.subprocess.Process | None = None
    try:
        await emulator.wait_for(lambda: emulator.gateway.ready, timeout=120)
        users = [emulator.add_member(f"k{i}") for i in range(3)]
        slow = await emulator.send_slash_command("imagine", {"prompt": "slow", "steps": 100, "width": 128},
                                                 user_id=users[0])
        for user in users[1:]:
            await emulator.send_slash_command("imagine", {"prompt": "quick"}, user_id=user)
        await emulator.wait_for(lambda: slow.original is not None and "step " in slow.original.content, timeout=60)
        first.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), 30) == -signal.SIGKILL
        assert results(emulator) == []

        second = await launch(config, log)
        await emulator.wait_for(lambda: emulator.gateway.identify_count >= 2 and emulator.gateway.ready, timeout=120)
        await emulator.wait_for(lambda: len(results(emulator)) >= 3, timeout=120)
        await asyncio.sleep(1.0)  # a duplicate would show up here
        assert [posted_for(emulator, job_id) for job_id in (1, 2, 3)] == [1, 1, 1]

        second.send_signal(signal.SIGINT)  # Ctrl-C: a clean shutdown
        assert await asyncio.wait_for(second.wait(), 60) == 0
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                with contextlib.suppress(Exception):
                    await process.wait()
    con = sqlite3.connect(tmp_path / "bot.sqlite3")
    try:
        rows = con.execute("SELECT status, attempts FROM jobs ORDER BY id").fetchall()
    finally:
        con.close()
    assert [status for status, _ in rows] == ["done", "done", "done"], log.read_text()[-3000:]
    assert rows[0][1] == 2  # the killed job ran again
    assert "database closed" in log.read_text()
    assert emulator.token not in log.read_text()
