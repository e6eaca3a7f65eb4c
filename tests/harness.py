"""Runs the real bot (config -> storage -> queue -> ArtBot) against the Discord emulator in-process.

Builds exactly the objects ``run_bot.py`` builds, with the tiny model's engine and a temporary
SQLite file, so a test can stop the bot and start a new one on the same database. Also the one home
of the helpers the end-to-end tests share: finding the bot's results among the emulator's
messages and reading the bot's SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.bot import ArtBot
from bot.config import Settings, parse_settings
from generation.queue import JobQueue
from generation.workers import build_queue
from playground import DiscordEmulator, EmuMessage
from storage import Storage

REPO = Path(__file__).resolve().parents[1]
#: Seconds a test waits for a generated result (the tiny model on a slow, shared CPU).
RESULT_WAIT = 60.0


def rows(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Run one query against the bot's SQLite file (opened and closed per call) and fetch every row."""
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def results(emu: DiscordEmulator) -> list[EmuMessage]:
    """Result messages: an embed whose footer names the job ("Job 12 · ..."), in posting order."""
    return [
        m for m in emu.messages()
        if m.embeds and (m.embeds[0].get("footer") or {}).get("text", "").startswith("Job ")
    ]


def image_posts(emu: DiscordEmulator) -> list[EmuMessage]:
    """Messages that carry both an attachment and an embed (a generated image), in posting order."""
    return [m for m in emu.messages() if m.attachments and m.embeds]


async def next_result(emu: DiscordEmulator, before: int) -> EmuMessage:
    """The result after the first ``before`` ones, once recorded (the bot seeds 🔄 on every result after
    recording it)."""
    message = await emu.wait_for(lambda: results(emu)[before] if len(results(emu)) > before else None, RESULT_WAIT)
    await emu.wait_for(lambda: "🔄" in message.reactions, 10)
    return message


def settings_for(emulator: DiscordEmulator, data_dir: Path, **sections: dict[str, Any]) -> Settings:
    """Settings pointing at the emulator and a data folder; ``sections`` override per section."""
    raw: dict[str, dict[str, Any]] = {
        "discord": {
            "token": emulator.token,
            "guild_ids": [emulator.guild_id],
            "api_base": emulator.api_base,
            "gateway_url": emulator.gateway_url,
            "progress_interval_s": 1.0,
        },
        "model": {"id": "tiny", "device": "cpu", "dtype": "float32"},
        "storage": {"database": str(data_dir / "bot.sqlite3"), "images_dir": str(data_dir / "images")},
        "generation": {"default_steps": 3, "default_guidance": 5.0},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_settings(raw, env={})


@dataclass
class RunningBot:
    """A bot connected to the emulator, and what it was built from."""

    bot: ArtBot
    storage: Storage
    queue: JobQueue
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Shut down as Ctrl-C does: stop GPU work, disconnect, close the database."""
        await asyncio.wait_for(self.bot.close(), 60)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 30)
        await self.storage.close()


async def start_bot(
    emulator: DiscordEmulator,
    engine: Any,
    settings: Settings,
    *,
    engines_extra: Sequence[Any] = (),
    wait_ready: Callable[[], Awaitable[None]] | None = None,
) -> RunningBot:
    """Open storage, build the queue and the bot, connect, and wait until the emulator saw READY.

    ``engines_extra`` replaces the one engine with several (one worker each), as ``[model] devices`` does.
    ``wait_ready`` replaces the wait for READY (an emulator served from another thread needs its own).
    """
    storage = await Storage.open(settings.storage.database, settings.storage.images_dir)
    engines = list(engines_extra) if engines_extra else [engine]
    queue = build_queue(engines, **dataclasses.asdict(settings.queue))
    bot = ArtBot(settings, storage=storage, queue=queue, model=engines[0], guild_ready_timeout=0.1)
    task = asyncio.create_task(bot.start(settings.discord.token))
    ready = asyncio.create_task(wait_ready() if wait_ready else emulator.wait_until_ready(timeout=30))
    done, _ = await asyncio.wait({task, ready}, timeout=40, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
        raise RuntimeError("the bot stopped before it was ready")
    await ready
    return RunningBot(bot=bot, storage=storage, queue=queue, task=task)


def write_config_file(
    path: Path, emu: DiscordEmulator, model_dir: Path, data: Path, *, extra: str = ""
) -> None:
    """A config.toml for ``run_bot.py`` pointing at the emulator, a model folder and a data folder."""
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
{extra}
"""
    )


async def launch_bot_process(config: Path, log: Path) -> asyncio.subprocess.Process:
    """Start ``run_bot.py --config`` as its own process, its output appended to ``log``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("DISCORD_TOKEN", None)
    handle = log.open("ab")
    return await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "run_bot.py"), "--config", str(config),
        cwd=REPO, env=env, stdout=handle, stderr=handle,
    )
