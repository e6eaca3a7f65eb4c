"""What members can do and see: caps under a burst, safety around comics, /history's scope, permissions.

Each test here once failed on the code before its fix (see the commit messages). The real bot runs
against the emulator with the tiny model; a *gated* engine (the real engine, held until the test
opens its gate) keeps jobs queued for as long as a test needs them queued, without timing luck.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from playground import DiscordEmulator, EmuInteraction, EmuMessage
from tests.harness import RunningBot, next_result, results, rows, settings_for, start_bot
from tests.reliability import record_reliability

#: The longest a gated engine waits for its gate (a test that forgets to open it still ends).
GATE_WAIT_S = 120.0


class GatedEngine:
    """The real engine; each pipeline call waits until :attr:`gate` is set."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.gate.wait(GATE_WAIT_S)
        return self._engine.run(*args, **kwargs)

    def run_batch(self, *args: Any, **kwargs: Any) -> Any:
        self.gate.wait(GATE_WAIT_S)
        return self._engine.run_batch(*args, **kwargs)


@pytest.fixture
async def gated(engine: Any) -> AsyncIterator[GatedEngine]:
    wrapper = GatedEngine(engine)
    try:
        yield wrapper
    finally:
        wrapper.gate.set()


async def answer_of(emu: DiscordEmulator, interaction: EmuInteraction) -> EmuMessage:
    """The interaction's first answer: its original response, or its first follow-up."""
    def found() -> EmuMessage | None:
        if interaction.original is not None and interaction.original.content:
            return interaction.original
        return interaction.followups[0] if interaction.followups else None

    return await emu.wait_for(found, timeout=15)


def job_count(db: Path) -> int:
    [(count,)] = rows(db, "SELECT COUNT(*) FROM jobs")
    return int(count)  # type: ignore[call-overload]


# -- defect 11: the per-member cap under a burst ------------------------------------------------------


async def test_a_burst_of_30_imagine_queues_only_the_members_cap(
    emulator: DiscordEmulator, gated: GatedEngine, tmp_path: Path
) -> None:
    bot = await start_bot(emulator, gated, settings_for(emulator, tmp_path, queue={"max_pending_per_user": 3}))
    try:
        ivy = emulator.add_member("ivy")
        sent = await asyncio.gather(*(
            emulator.send_slash_command("imagine", {"prompt": f"burst {n}", "count": 1}, user_id=ivy)
            for n in range(30)
        ))
        answers = [await answer_of(emulator, interaction) for interaction in sent]
        refused = [a for a in answers if a.ephemeral and "the limit is 3" in a.content]
        queued = [a for a in answers if not a.ephemeral]
        assert (len(queued), len(refused)) == (3, 27)
        assert job_count(tmp_path / "bot.sqlite3") == 3
        gated.gate.set()
        await emulator.wait_for(lambda: len(results(emulator)) == 3 or None, timeout=120)
    finally:
        await bot.stop()
    record_reliability("defect", "11. per-member cap under a burst: 30 /imagine at once, cap 3", 30,
                       "3 queued, 27 refused with message")


async def test_a_servers_share_of_the_queue_is_enforced_with_a_message(
    emulator: DiscordEmulator, gated: GatedEngine, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, queue={"max_pending_per_user": 3, "max_pending_per_guild": 4})
    bot = await start_bot(emulator, gated, settings)
    try:
        members = [emulator.add_member(f"m{n}") for n in range(3)]
        sent = await asyncio.gather(*(
            emulator.send_slash_command("imagine", {"prompt": f"share {n}", "count": 1}, user_id=member)
            for member in members for n in range(2)
        ))
        answers = [await answer_of(emulator, interaction) for interaction in sent]
        refused = [a for a in answers if a.ephemeral and "This server already has 4 jobs" in a.content]
        assert (len(refused), job_count(tmp_path / "bot.sqlite3")) == (2, 4)
        gated.gate.set()
        await emulator.wait_for(lambda: len(results(emulator)) == 4 or None, timeout=120)
    finally:
        await bot.stop()
    record_reliability("defect", "13. per-server share of the queue: 6 jobs, share 4", 6, "4 queued, 2 refused with message")
