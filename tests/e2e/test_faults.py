"""Faults injected through the emulator while the real bot works: the member still gets exactly one
correct result or one clear message, and nothing is lost.

Each test arms one fault (:mod:`playground.faults`, or the emulator's gateway drop, or an OS-level
fault: a second SQLite connection holding the database, a file where the image folder should be),
runs /imagine as a member would and checks what the member sees and what the database holds.
Every outcome is recorded for docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from playground import DiscordEmulator, EmuInteraction, EmuMessage
from playground.faults import ROUTE_OWN_REACTION
from tests.harness import RunningBot, rows
from tests.harness import image_posts as results
from tests.reliability import record_reliability

FOLLOWUP = "/webhooks/{webhook_id}/{webhook_token}"
#: Long enough that the status shows a step before the result (the tiny model at 128 px).
SLOW = {"steps": 40, "width": 128, "height": 128, "count": 1}


def footers(emu: DiscordEmulator, job_id: int) -> list[EmuMessage]:
    return [m for m in results(emu) if (m.embeds[0].get("footer") or {}).get("text", "").startswith(f"Job {job_id} ·")]


async def mid_generation(emu: DiscordEmulator, inter: EmuInteraction) -> None:
    """Until the job's status shows a step (or, on a fast machine, its result is already out)."""
    await emu.wait_for(
        lambda: (inter.original is not None and "step " in (inter.original.content or "")) or results(emu),
        timeout=60,
    )


async def exactly_one_result(emu: DiscordEmulator, db: Path, job_id: int = 1) -> EmuMessage:
    """The job's one result (after it was recorded), checked against its row and image file."""
    [message] = await emu.wait_for(lambda: footers(emu, job_id) or None, timeout=90)
    await emu.wait_for(lambda: rows(db, "SELECT status FROM jobs WHERE id = ?", job_id) == [("done",)], 30)
    await asyncio.sleep(0.5)  # a duplicate would show up here
    assert len(footers(emu, job_id)) == 1
    [(path, sha)] = rows(db, "SELECT path, sha256 FROM images WHERE job_id = ?", job_id)
    assert (db.parent / "images" / path).is_file() and len(sha) == 64
    return message


def notes(emu: DiscordEmulator, text: str) -> list[EmuMessage]:
    """Every message (ephemeral ones too) whose text contains ``text``."""
    return [m for m in emu.world.messages.values() if text in (m.content or "") and not m.deleted]


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 30, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("resume", [True, False], ids=["resume", "full-reconnect"])
async def test_gateway_drop_mid_generation(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path, resume: bool
) -> None:
    alice = emulator.add_member("alice")
    identifies, resumes = emulator.gateway.identify_count, emulator.gateway.resume_count
    inter = await emulator.send_slash_command("imagine", {"prompt": "a drop", **SLOW}, user_id=alice)
    await mid_generation(emulator, inter)
    await emulator.disconnect_gateway(resume=resume)
    await emulator.wait_until_ready(timeout=60)
    if resume:
        assert emulator.gateway.resume_count == resumes + 1 and emulator.gateway.identify_count == identifies
    else:
        assert emulator.gateway.identify_count == identifies + 1
    await exactly_one_result(emulator, tmp_path / "bot.sqlite3")
    # The bot still answers commands after the drop.
    await emulator.send_slash_command("imagine", {"prompt": "after", "count": 1}, user_id=alice)
    await exactly_one_result(emulator, tmp_path / "bot.sqlite3", 2)
    kind = "resumable close (4000), client RESUMEs" if resume else "session dropped, INVALID_SESSION, IDENTIFY"
    record_reliability("fault", f"gateway drop mid-generation: {kind}", 1, "one result, bot answers after")


@pytest.mark.parametrize("is_global", [False, True], ids=["route", "global"])
async def test_rest_429_on_result_post(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path, is_global: bool
) -> None:
    alice = emulator.add_member("alice")
    fault = emulator.faults.rate_limit("POST", FOLLOWUP, retry_after=0.3, times=2, is_global=is_global)
    await emulator.send_slash_command("imagine", {"prompt": "limited", "count": 1}, user_id=alice)
    await exactly_one_result(emulator, tmp_path / "bot.sqlite3")
    assert fault.fired == 2
    scope = "global" if is_global else "per route"
    record_reliability("fault", f"REST 429 {scope} (retry_after 0.3 s) x2 on the result post", 2,
                       "waited, one result")


@pytest.mark.parametrize("status", [500, 502])
async def test_server_error_on_upload(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path, status: int
) -> None:
    alice = emulator.add_member("alice")
    fault = emulator.faults.server_error(status, times=2)
    await emulator.send_slash_command("imagine", {"prompt": "flaky", "count": 1}, user_id=alice)
    await exactly_one_result(emulator, tmp_path / "bot.sqlite3")
    assert fault.fired == 2
    record_reliability("fault", f"HTTP {status} on the next 2 uploads", 2, "retried with backoff, one result")


async def test_interaction_token_expired_before_result(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    alice = emulator.add_member("alice")
    inter = await emulator.send_slash_command("imagine", {"prompt": "late", **SLOW}, user_id=alice)
    await mid_generation(emulator, inter)
    emulator.expire_interaction_tokens()
    result = await exactly_one_result(emulator, tmp_path / "bot.sqlite3")
    if result.interaction_id is None:  # posted in the channel instead: it mentions the requester
        assert f"<@{alice}>" in (result.content or "")
    record_reliability("fault", "interaction token expired mid-generation", 1, "one result (in the channel)")


async def test_status_message_deleted_meanwhile(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    alice, mod = emulator.add_member("alice"), emulator.add_member("mod", moderator=True)
    inter = await emulator.send_slash_command("imagine", {"prompt": "gone status", **SLOW}, user_id=alice)
    await mid_generation(emulator, inter)
    assert inter.original is not None
    await emulator.delete_message_as(inter.original.id, user_id=mod)
    await exactly_one_result(emulator, tmp_path / "bot.sqlite3")
    record_reliability("fault", "status message deleted mid-generation", 1, "one result")


async def test_result_message_deleted_before_reactions(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    alice, mod = emulator.add_member("alice"), emulator.add_member("mod", moderator=True)
    # Reactions are slowed, so the result is deleted while the bot is still adding them.
    slow = emulator.faults.rate_limit("PUT", ROUTE_OWN_REACTION, retry_after=0.5, times=1)
    await emulator.send_slash_command("imagine", {"prompt": "gone result", "count": 1}, user_id=alice)
    [result] = await emulator.wait_for(lambda: footers(emulator, 1) or None, timeout=90)
    await emulator.delete_message_as(result.id, user_id=mod)
    db = tmp_path / "bot.sqlite3"
    await emulator.wait_for(lambda: rows(db, "SELECT status FROM jobs WHERE id = 1") == [("done",)], 30)
    await emulator.wait_for(lambda: slow.fired == 1, 10)
    assert footers(emulator, 1) == []
    # The bot carries on.
    await emulator.send_slash_command("imagine", {"prompt": "next", "count": 1}, user_id=alice)
    await exactly_one_result(emulator, db, 2)
    record_reliability("fault", "result message deleted while the bot adds its reactions", 1,
                       "job done once, bot carries on")


async def test_bot_lacks_add_reactions(emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path) -> None:
    alice = emulator.add_member("alice")
    fault = emulator.faults.deny_bot_permission(emulator.channel_id, "add_reactions")
    await emulator.send_slash_command("imagine", {"prompt": "no reactions", "count": 1}, user_id=alice)
    result = await exactly_one_result(emulator, tmp_path / "bot.sqlite3")
    assert fault.fired >= 1 and result.reactions == {}
    record_reliability("fault", "bot lacks Add Reactions (403 / 50013)", 1, "one result without reactions")


async def test_bot_lacks_attach_files(emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path) -> None:
    alice = emulator.add_member("alice")
    await emulator.send_slash_command("imagine", {"prompt": "first", "count": 1}, user_id=alice)
    first = await exactly_one_result(emulator, tmp_path / "bot.sqlite3")
    # A 🔄 reroll posts its status and result in the channel, where the bot may not attach files.
    fault = emulator.faults.deny_bot_permission(emulator.channel_id, "attach_files")
    await emulator.add_reaction(first.id, "🔄", user_id=alice)
    db = tmp_path / "bot.sqlite3"
    await emulator.wait_for(lambda: fault.fired >= 1, 30)
    await emulator.wait_for(lambda: rows(db, "SELECT status FROM jobs WHERE id = 2") == [("failed",)], 10)
    said = [m for m in emulator.messages() if "permission" in (m.content or "").lower()]
    assert len(said) == 1
    record_reliability("fault", "bot lacks Attach Files (403 / 50013)", 1, "job failed, one clear message")


async def test_attachment_404(emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path) -> None:
    alice = emulator.add_member("alice")
    emulator.faults.break_attachment("gone.png", "404")
    inter = await emulator.send_slash_command(
        "imagine", {"prompt": "from a photo"}, user_id=alice, attachments={"image": ("gone.png", png(), "image/png")}
    )
    await emulator.wait_for(lambda: notes(emulator, "couldn't download"), 20)
    assert inter.responded_at is not None
    assert rows(tmp_path / "bot.sqlite3", "SELECT count(*) FROM jobs") == [(0,)]
    record_reliability("fault", "attachment URL answers 404", 1, "one clear message, no job")


async def test_attachment_stalls(emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path) -> None:
    alice = emulator.add_member("alice")
    emulator.faults.break_attachment("slow.png", "stall")
    inter = await emulator.send_slash_command(
        "imagine", {"prompt": "from a photo"}, user_id=alice, attachments={"image": ("slow.png", png(), "image/png")}
    )
    await emulator.wait_for(lambda: notes(emulator, "couldn't download"), 10)
    assert inter.responded_at is not None
    record_reliability("fault", "attachment URL stalls", 1, "one clear message, no job")


async def test_disk_full_while_writing_an_image(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    # OS-level: a plain file where the image folder should be, so every write under it fails.
    images = tmp_path / "images"
    shutil.rmtree(images, ignore_errors=True)
    images.write_bytes(b"not a folder")
    alice = emulator.add_member("alice")
    inter = await emulator.send_slash_command("imagine", {"prompt": "no room", "count": 1}, user_id=alice)
    db = tmp_path / "bot.sqlite3"
    await emulator.wait_for(lambda: rows(db, "SELECT status FROM jobs WHERE id = 1") == [("failed",)], 20)
    await emulator.wait_for(lambda: inter.original is not None and "⚠️" in (inter.original.content or ""), 5)
    record_reliability("fault", "image folder unwritable while writing an image", 1, "job failed, one clear message")


async def test_database_locked_by_another_process(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    alice = emulator.add_member("alice")
    other = sqlite3.connect(db, timeout=1, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        inter = await emulator.send_slash_command("imagine", {"prompt": "locked", "count": 1}, user_id=alice,
                                                  ack_timeout=None)
        await asyncio.sleep(2.0)  # the bot is now waiting on the lock (its busy timeout is 5 s)
    finally:
        other.execute("ROLLBACK")
        other.close()
    await emulator.wait_for(lambda: inter.responded_at is not None, 10)
    assert inter.ack_ms is not None and inter.ack_ms < 3000
    await exactly_one_result(emulator, db)
    record_reliability("fault", "database held (BEGIN EXCLUSIVE) by another process for 2 s", 1,
                       "acknowledged in time, one result")
