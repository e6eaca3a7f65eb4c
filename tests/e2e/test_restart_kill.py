"""Kill the bot process (SIGKILL) mid-generation: after a restart every job completes exactly once.

The bot runs as a real ``run_bot.py`` subprocess with a config file, against the emulator served
from this test's event loop, with the tiny model on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from playground import DiscordEmulator
from tests.harness import image_posts as results
from tests.harness import launch_bot_process, rows, write_config_file


def posted_for(emu: DiscordEmulator, job_id: int) -> int:
    return sum(1 for m in results(emu) if m.embeds[0]["footer"]["text"].startswith(f"Job {job_id} ·"))


async def test_sigkill_mid_generation_loses_nothing(
    emulator: DiscordEmulator, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config, log = tmp_path / "config.toml", tmp_path / "bot.log"
    write_config_file(config, emulator, tiny_model_dir, tmp_path)
    first = await launch_bot_process(config, log)
    second: asyncio.subprocess.Process | None = None
    try:
        await emulator.wait_for(lambda: emulator.gateway.ready, timeout=120)
        users = [emulator.add_member(f"k{i}") for i in range(3)]
        slow = await emulator.send_slash_command("imagine", {"prompt": "slow", "steps": 100, "width": 128},
                                                 user_id=users[0])
        for user in users[1:]:
            await emulator.send_slash_command("imagine", {"prompt": "quick"}, user_id=user)
        await emulator.wait_for(lambda: slow.original is not None and "step " in slow.original.content, timeout=120)
        first.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), 30) == -signal.SIGKILL
        assert results(emulator) == []

        second = await launch_bot_process(config, log)
        await emulator.wait_for(lambda: emulator.gateway.identify_count >= 2 and emulator.gateway.ready, timeout=120)
        # The killed job's 100 steps at 128 px run again: minutes on a busy 2-core machine.
        await emulator.wait_for(lambda: len(results(emulator)) >= 3, timeout=300)
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
    jobs = rows(tmp_path / "bot.sqlite3", "SELECT status, attempts FROM jobs ORDER BY id")
    assert [status for status, _ in jobs] == ["done", "done", "done"], log.read_text()[-3000:]
    assert jobs[0][1] == 2  # the killed job ran again
    assert "database closed" in log.read_text()
    assert emulator.token not in log.read_text()
