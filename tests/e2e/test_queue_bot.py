"""The GPU queue through the whole bot: cancel, faults, timeouts, places, previews, batches, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from playground import DiscordEmulator, EmuMessage
from rules.request import GenerationRequest
from tests.harness import RunningBot, rows, settings_for, start_bot
from tests.harness import image_posts as results


def result_for(emu: DiscordEmulator, job_id: int) -> list[EmuMessage]:
    return [m for m in results(emu) if (m.embeds[0].get("footer") or {}).get("text", "").startswith(f"Job {job_id} ·")]


def job_rows(db: Path) -> list[tuple[Any, ...]]:
    return rows(db, "SELECT id, status, error FROM jobs ORDER BY id")


async def start(emu: DiscordEmulator, user: int, prompt: str, **options: object) -> EmuMessage:
    """Send /imagine and return its status message (the interaction's response)."""
    interaction = await emu.send_slash_command("imagine", {"prompt": prompt, **options}, user_id=user)
    return await emu.wait_for(lambda: interaction.original, timeout=10)


async def until_running(emu: DiscordEmulator, status: EmuMessage) -> None:
    await emu.wait_for(lambda: "step " in status.content, timeout=30)


async def test_cancel_queued_by_button_and_running_by_reaction(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    alice, bob = emulator.add_member("alice"), emulator.add_member("bob")
    # 128x128 for 100 steps takes tens of seconds on a CPU: surely still running when the ❌ comes.
    running = await start(emulator, alice, "a long one", steps=100, width=128, height=128)
    queued = await start(emulator, bob, "waiting", steps=3)
    assert any(c == "job:cancel:2" for c, _, _ in queued.buttons())

    await emulator.click_button(queued.id, "job:cancel:2", user_id=bob)
    await emulator.wait_for(lambda: "Cancelled" in queued.content, timeout=10)
    assert queued.buttons() == []

    await until_running(emulator, running)
    await emulator.add_reaction(running.id, "❌", user_id=alice)
    await emulator.wait_for(lambda: "Cancelled" in running.content, timeout=30)
    await asyncio.sleep(0.5)
    assert results(emulator) == []
    assert [(r[0], r[1]) for r in job_rows(tmp_path / "bot.sqlite3")] == [(1, "cancelled"), (2, "cancelled")]


async def test_only_the_requester_or_a_moderator_may_cancel(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    alice, carol = emulator.add_member("alice"), emulator.add_member("carol")
    mod = emulator.add_member("mod", moderator=True)
    status = await start(emulator, alice, "mine", steps=100, width=128, height=128)  # tens of seconds
    # The status message is recorded just after the response; a ❌ on it counts from then on.
    await emulator.wait_for(
        lambda: rows(tmp_path / "bot.sqlite3", "SELECT kind FROM messages WHERE message_id = ?", status.id), 10
    )
    refused = await emulator.click_button(status.id, "job:cancel:1", user_id=carol)
    [note] = refused.followups or [refused.original]
    assert note is not None and note.ephemeral and "Only the member" in note.content
    await emulator.add_reaction(status.id, "❌", user_id=carol)
    await emulator.wait_for(lambda: carol not in status.reactions.get("❌", set()), timeout=10)
    assert "Cancelled" not in status.content

    await emulator.click_button(status.id, "job:cancel:1", user_id=mod)
    await emulator.wait_for(lambda: "Cancelled" in status.content, timeout=30)
    assert job_rows(tmp_path / "bot.sqlite3")[0][1] == "cancelled"


async def test_out_of_memory_fails_one_job_and_the_next_runs(
    emulator: DiscordEmulator, running_bot: RunningBot, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dave = emulator.add_member("dave")
    unet = engine.pipeline.unet
    real_forward = unet.forward
    calls = {"oom": 0, "released": 0}

    def failing_forward(*args: Any, **kwargs: Any) -> Any:
        if calls["oom"] == 0:
            calls["oom"] += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(*args, **kwargs)

    real_release = engine.release_memory

    def counting_release() -> None:
        calls["released"] += 1
        real_release()

    monkeypatch.setattr(unet, "forward", failing_forward)
    monkeypatch.setattr(engine, "release_memory", counting_release)
    failed = await start(emulator, dave, "too big")
    await emulator.wait_for(lambda: "out of memory" in failed.content, timeout=30)
    assert calls == {"oom": 1, "released": 1}
    assert failed.buttons() == []
    await start(emulator, dave, "fits")
    await emulator.wait_for(lambda: len(results(emulator)) == 1, timeout=30)


async def test_a_job_past_the_time_limit_is_stopped(emulator: DiscordEmulator, engine: Any, tmp_path: Path) -> None:
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path, queue={"job_timeout_s": 0.5}))
    try:
        status = await start(emulator, emulator.add_member("erin"), "forever", steps=100)
        await emulator.wait_for(lambda: "time limit" in status.content, timeout=30)
        [(_, state, error)] = job_rows(tmp_path / "bot.sqlite3")
        assert state == "failed" and error == "timed out"
    finally:
        await bot.stop()


async def test_waiting_members_see_their_place_move_and_previews_show(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, queue={"preview_interval_s": 1.0})
    bot = await start_bot(emulator, engine, settings)
    try:
        users = [emulator.add_member(name) for name in ("u1", "u2", "u3")]
        first = await start(emulator, users[0], "first", steps=100)
        await until_running(emulator, first)
        await start(emulator, users[1], "second", steps=40)
        third = await start(emulator, users[2], "third", steps=41)  # not batchable with the second
        assert "position 2" in third.content
        await emulator.wait_for(lambda: any(a.filename == "preview.png" for a in first.attachments), timeout=30)
        # 181 steps in all before the third is done: minutes on a busy 2-core machine.
        await emulator.wait_for(lambda: "next up" in third.content or "step " in third.content, timeout=180)
        await emulator.wait_for(lambda: "Done" in third.content, timeout=180)
        assert third.attachments == [] and first.attachments == []
    finally:
        await bot.stop()


async def test_compatible_jobs_batch_and_match_their_solo_images(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_sizes: list[int] = []
    real_run_batch = engine.run_batch

    def recording_run_batch(requests: Any, *args: Any, **kwargs: Any) -> Any:
        batch_sizes.append(len(requests))
        return real_run_batch(requests, *args, **kwargs)

    monkeypatch.setattr(engine, "run_batch", recording_run_batch)
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path, queue={"max_batch_images": 4}))
    try:
        users = [emulator.add_member(f"b{i}") for i in range(4)]
        blocker = await start(emulator, users[0], "blocker", steps=100, width=128, count=1)  # keeps it busy
        await until_running(emulator, blocker)
        for index, user in enumerate(users[1:]):
            await start(emulator, user, f"batched {index}", seed=100 + index, count=1)
        await emulator.wait_for(lambda: len(results(emulator)) == 4, timeout=90)
        assert batch_sizes == [1, 3], "the three compatible jobs should run as one pipeline call"
        for index in range(3):
            [message] = result_for(emulator, 2 + index)
            solo = GenerationRequest(
                prompt=f"batched {index}", seed=100 + index, steps=3, guidance=5.0, width=64, height=64
            )
            alone = np.asarray(engine.run(solo)[0], dtype=np.int16)
            diff = np.abs(np.asarray(message.attachments[0].image(), dtype=np.int16) - alone)
            assert diff.max() <= 1  # bit-equal on this CPU backend; 1 level of tolerance for other backends
    finally:
        await bot.stop()


async def test_stop_mid_queue_then_restart_completes_every_job_once(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path)
    first = await start_bot(emulator, engine, settings)
    users = [emulator.add_member(f"r{i}") for i in range(3)]
    try:
        running = await start(emulator, users[0], "one", steps=100)
        await start(emulator, users[1], "two", steps=5)
        await start(emulator, users[2], "three", steps=5)
        await until_running(emulator, running)
    finally:
        await first.stop()
    assert [r[1] for r in job_rows(tmp_path / "bot.sqlite3")] == ["queued", "queued", "queued"]
    assert results(emulator) == []

    second = await start_bot(emulator, engine, settings)
    try:
        await emulator.wait_for(lambda: len(results(emulator)) == 3, timeout=180)
        # A job is marked done just after its result is posted: once all three are, nothing is left to
        # post, so a duplicate would already be among the messages.
        await emulator.wait_for(
            lambda: [r[1] for r in job_rows(tmp_path / "bot.sqlite3")] == ["done", "done", "done"], timeout=30
        )
        assert [len(result_for(emulator, job_id)) for job_id in (1, 2, 3)] == [1, 1, 1]
    finally:
        await second.stop()


async def test_after_the_token_expires_results_go_to_the_channel_with_a_mention(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path)
    first = await start_bot(emulator, engine, settings)
    grace = emulator.add_member("grace")
    try:
        status = await start(emulator, grace, "late", steps=100)
        await until_running(emulator, status)
    finally:
        await first.stop()
    emulator.expire_interaction_tokens()
    second = await start_bot(emulator, engine, settings)
    try:
        [result] = await emulator.wait_for(lambda: results(emulator), timeout=180)  # 100 steps on a busy CPU
        assert result.content == f"<@{grace}>" and result.interaction_id is None
        assert result.allowed_mentions is not None and result.allowed_mentions["parse"] == ["users"]
    finally:
        await second.stop()


async def test_past_the_per_user_cap_the_member_is_told_and_nothing_is_queued(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path, queue={"max_pending_per_user": 1}))
    try:
        ivy = emulator.add_member("ivy")
        first = await start(emulator, ivy, "one", steps=100)
        refused = await emulator.send_slash_command("imagine", {"prompt": "two"}, user_id=ivy)
        note = await emulator.wait_for(lambda: refused.original, timeout=10)
        assert note.ephemeral and "You already have 1 job queued (the limit is 1)" in note.content
        assert [r[0] for r in job_rows(tmp_path / "bot.sqlite3")] == [1]
        await emulator.click_button(first.id, "job:cancel:1", user_id=ivy)
    finally:
        await bot.stop()
