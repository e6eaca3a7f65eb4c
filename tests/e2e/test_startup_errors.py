"""``run_bot.py`` start-up failures (defect 12): one line naming what to fix, exit status 2, no traceback.

Each case starts the real entry point as its own process against the emulator; the failure is
real (a missing or broken model, a refused token, a locked, unwritable or too new database).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest
import torch

from playground import DiscordEmulator
from tests.harness import launch_bot_process, write_config_file
from tests.reliability import record_reliability

#: A line the logging module wrote (``2026-01-01 12:00:00,000 INFO name: ...``), not the error line.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
#: A started bot would run until stopped; every case here must exit well before this.
EXIT_WAIT = 120.0


async def start_and_fail(config: Path, log: Path) -> tuple[int, list[str], str]:
    """Run the bot to its exit: (status, the lines that are not log lines, everything it printed)."""
    process = await launch_bot_process(config, log)
    try:
        status = await asyncio.wait_for(process.wait(), EXIT_WAIT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = await asyncio.to_thread(log.read_text, errors="replace")
    # Indented lines continue the log record above them (a warning's source line); tracebacks are checked apart.
    lines = [line for line in text.splitlines() if line.strip() and not LOG_LINE.match(line) and line[0] != " "]
    return status, lines, text


def config_for(
    tmp_path: Path,
    emu: DiscordEmulator,
    model: str | Path,
    *,
    data: Path | None = None,
    replace: dict[str, str] | None = None,
) -> Path:
    config = tmp_path / "config.toml"
    write_config_file(config, emu, Path(model), data or tmp_path / "data")
    text = config.read_text()
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    return config


def assert_one_line(status: int, lines: list[str], text: str, *needles: str) -> str:
    assert status == 2, text
    assert "Traceback" not in text, text
    assert len(lines) == 1, text
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


async def test_missing_hub_model_is_one_line(emulator: DiscordEmulator, tmp_path: Path) -> None:
    config = config_for(tmp_path, emulator, "nobody-here/no-such-model")
    line = assert_one_line(*await start_and_fail(config, tmp_path / "bot.log"), "model.id", "nobody-here/no-such-model")
    assert "download" in line
    record_reliability("defect", "12. start-up: model not found on the hub (offline)", 1, "one line, exit 2")


async def test_model_folder_that_cannot_be_loaded_is_one_line(emulator: DiscordEmulator, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model_index.json").write_text("{ this is not json")
    config = config_for(tmp_path, emulator, broken)
    assert_one_line(*await start_and_fail(config, tmp_path / "bot.log"), "model.id", "broken-model")
    record_reliability("defect", "12. start-up: model folder not loadable", 1, "one line, exit 2")


async def test_refused_token_is_found_before_the_model_loads(emulator: DiscordEmulator, tmp_path: Path) -> None:
    """The model here is missing too: a token check after the model would report the model instead."""
    config = config_for(
        tmp_path, emulator, tmp_path / "no-model-yet", replace={f'token = "{emulator.token}"': 'token = "wrong.token"'}
    )
    assert_one_line(*await start_and_fail(config, tmp_path / "bot.log"), "discord.token")
    refused = [p for p in emulator.problems if "Authorization" in p]
    assert refused, "the emulator saw no login with the wrong token"
    emulator.problems[:] = [p for p in emulator.problems if p not in refused]
    record_reliability("defect", "12. start-up: token refused, checked before the model", 1, "one line, exit 2")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
async def test_cuda_device_without_a_gpu_is_one_line(
    emulator: DiscordEmulator, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = config_for(tmp_path, emulator, tiny_model_dir, replace={'device = "cpu"': 'device = "cuda"'})
    assert_one_line(*await start_and_fail(config, tmp_path / "bot.log"), "model.device", "cuda")
    record_reliability("defect", "12. start-up: CUDA device without a GPU", 1, "one line, exit 2")


async def test_database_newer_than_the_code_is_one_line(
    emulator: DiscordEmulator, tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    con = sqlite3.connect(data / "bot.sqlite3")
    con.execute("PRAGMA user_version = 999")
    con.close()
    config = config_for(tmp_path, emulator, tiny_model_dir, data=data)
    assert_one_line(*await start_and_fail(config, tmp_path / "bot.log"), "storage.database", "newer")
    record_reliability("defect", "12. start-up: database newer than the code", 1, "one line, exit 2")


async def test_database_locked_by_another_process_is_one_line(
    emulator: DiscordEmulator, tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    holder = sqlite3.connect(data / "bot.sqlite3", isolation_level=None)
    try:
        holder.execute("CREATE TABLE held (x)")
        holder.execute("BEGIN EXCLUSIVE")
        config = config_for(tmp_path, emulator, tiny_model_dir, data=data)
        assert_one_line(*await start_and_fail(config, tmp_path / "bot.log"), "storage.database", "locked")
    finally:
        holder.close()
    record_reliability("defect", "12. start-up: database locked by another process", 1, "one line, exit 2")


async def test_database_that_cannot_be_created_is_one_line(
    emulator: DiscordEmulator, tiny_model_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    config = config_for(tmp_path, emulator, tiny_model_dir, data=blocker)
    assert_one_line(*await start_and_fail(config, tmp_path / "bot.log"), "storage.database")
    record_reliability("defect", "12. start-up: database folder not writable", 1, "one line, exit 2")
