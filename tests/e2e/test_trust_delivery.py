"""Delivery and restart faults through the real bot (defects 5 and 14): every job ends once, with a reason.

Jobs are written into the database before the bot starts, as a crash or an older run leaves them,
so which fault a job meets never depends on timing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from playground import DiscordEmulator
from rules.request import GenerationRequest
from storage import Storage
from storage.jobs import NewJob
from tests.harness import RESULT_WAIT, next_result, results, rows, settings_for, start_bot
from tests.reliability import record_reliability

REQUEST = GenerationRequest(prompt="a lighthouse at dusk", seed=7, steps=2, guidance=5.0, width=64, height=64)
GONE_CHANNEL = 4242


async def write_jobs(data: Path, *jobs: NewJob) -> list[int]:
    """Record jobs as a previous run left them (queued), before any bot starts; their ids."""
    storage = await Storage.open(data / "bot.sqlite3", data / "images")
    try:
        return [(await storage.jobs.create(job)).id for job in jobs]
    finally:
        await storage.close()


def new_job(
    emu: DiscordEmulator, user: int, *, channel_id: int | None = None, request_json: str | None = None
) -> NewJob:
    return NewJob(
        kind="imagine",
        requester_id=user,
        guild_id=emu.guild_id,
        channel_id=emu.channel_id if channel_id is None else channel_id,
        request_json=REQUEST.to_json() if request_json is None else request_json,
    )


def job_state(db: Path, job_id: int) -> tuple[str, str | None, int]:
    [(status, error, attempts)] = rows(db, "SELECT status, error, attempts FROM jobs WHERE id = ?", job_id)
    return status, error, attempts


async def until_finished(emu: DiscordEmulator, db: Path, job_id: int) -> tuple[str, str | None, int]:
    def finished() -> tuple[str, str | None, int] | None:
        state = job_state(db, job_id)
        return state if state[0] not in ("queued", "running") else None

    return await emu.wait_for(finished, RESULT_WAIT)


def take_unknown_channel_problems(emu: DiscordEmulator) -> int:
    """The emulator's complaints about posting into the deleted channel are this test's fault: count them."""
    expected = [p for p in emu.problems if f"unknown channel {GONE_CHANNEL}" in p]
    emu.problems[:] = [p for p in emu.problems if p not in expected]
    return len(expected)


async def test_result_for_a_deleted_channel_fails_once_and_is_not_regenerated(
    emulator: DiscordEmulator, engine: object, tmp_path: Path
) -> None:
    """Defect 5: a 404 on delivery ends the job ``failed`` with the reason; a restart does not redo it."""
    alice = emulator.add_member("alice")
    [job_id] = await write_jobs(tmp_path, new_job(emulator, alice, channel_id=GONE_CHANNEL))
    db = tmp_path / "bot.sqlite3"
    settings = settings_for(emulator, tmp_path)
    bot = await start_bot(emulator, engine, settings)
    try:
        status, error, attempts = await until_finished(emulator, db, job_id)
    finally:
        await bot.stop()
    assert status == "failed" and error is not None and "404" in error
    assert attempts == 1
    again = await start_bot(emulator, engine, settings)
    try:
        await asyncio.sleep(0)  # recover() ran in setup_hook, before start_bot returned
        assert job_state(db, job_id) == (status, error, 1)
    finally:
        await again.stop()
    assert results(emulator) == []
    assert take_unknown_channel_problems(emulator) >= 1
    record_reliability("defect", "5. failed delivery (404 channel gone) re-queued forever", 1, "failed with reason")


async def test_job_started_too_often_is_given_up_and_the_member_told(
    emulator: DiscordEmulator, engine: object, tmp_path: Path
) -> None:
    """Defect 5: ``attempts`` is checked against ``[queue] max_attempts`` at every start."""
    alice = emulator.add_member("alice")
    [job_id] = await write_jobs(tmp_path, new_job(emulator, alice))
    db = tmp_path / "bot.sqlite3"
    rows(db, "SELECT 1")  # the file exists; bump the attempts as three crashed runs would have
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("UPDATE jobs SET status = 'running', attempts = 2 WHERE id = ?", (job_id,))
    con.commit()
    con.close()
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path, queue={"max_attempts": 2}))
    try:
        status, error, attempts = await until_finished(emulator, db, job_id)
        note = await emulator.wait_for(
            lambda: next((m for m in emulator.messages() if "given up" in m.content), None), 10
        )
    finally:
        await bot.stop()
    assert (status, attempts) == ("failed", 2) and error is not None and "2 attempts" in error
    assert f"<@{alice}>" in note.content or note.channel_id == emulator.channel_id
    assert results(emulator) == []
    record_reliability("defect", "5. attempts never checked at restarts", 1, "given up at max_attempts, member told")


async def test_recover_survives_a_bad_row_and_a_damaged_source_image(
    emulator: DiscordEmulator, engine: object, tmp_path: Path
) -> None:
    """Defect 14 (confirmed): one bad row or damaged source file stopped the whole bot from starting."""
    alice = emulator.add_member("alice")
    storage = await Storage.open(tmp_path / "bot.sqlite3", tmp_path / "images")
    try:
        damaged = await asyncio.to_thread(storage.files.write, b"this is not a png at all")
    finally:
        await storage.close()
    from_damaged = REQUEST.replace(init_image=damaged.relative_path, strength=0.5).to_json()
    bad, broken, good = await write_jobs(
        tmp_path,
        new_job(emulator, alice, request_json="{not json"),
        new_job(emulator, alice, request_json=from_damaged),
        new_job(emulator, alice),
    )
    db = tmp_path / "bot.sqlite3"
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path))
    try:
        await next_result(emulator, 0)
        assert (await until_finished(emulator, db, good))[0] == "done"
    finally:
        await bot.stop()
    for job_id in (bad, broken):
        status, error, _ = job_state(db, job_id)
        assert status == "failed" and error is not None and "not re-queued" in error
    record_reliability(
        "defect", "14. recover() stops the bot on one bad row / damaged image", 2, "confirmed; row failed, bot starts"
    )


async def test_damaged_source_of_a_reaction_job_fails_its_row(
    emulator: DiscordEmulator, engine: object, tmp_path: Path
) -> None:
    """Defect 14 (confirmed): when queueing raised, the job row stayed ``queued`` (and ran at the next start)."""
    alice = emulator.add_member("alice")
    db = tmp_path / "bot.sqlite3"
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path))
    try:
        await emulator.send_slash_command("imagine", {"prompt": "a fox", "steps": 2, "count": 1}, user_id=alice)
        result = await next_result(emulator, 0)
        [(path,)] = rows(db, "SELECT path FROM images")
        (tmp_path / "images" / path).write_bytes(b"garbage, not an image")
        await emulator.add_reaction(result.id, "🎨", user_id=alice)
        note = await emulator.wait_for(
            lambda: next((m for m in emulator.messages() if "can't be read" in m.content), None), 30
        )
    finally:
        await bot.stop()
    assert f"<@{alice}>" in note.content
    states = rows(db, "SELECT id, status, error FROM jobs ORDER BY id")
    assert [s for _, s, _ in states] == ["done", "failed"]
    assert "not queued" in (states[1][2] or "")
    record_reliability(
        "defect", "14. job row stays queued when enqueue raises", 1, "confirmed; row failed, member told"
    )


async def test_restart_finds_a_result_posted_before_more_than_100_messages(
    emulator: DiscordEmulator, engine: object, tmp_path: Path
) -> None:
    """Defect 14 (confirmed): a crash between posting and recording, then a busy channel, posted twice."""
    alice = emulator.add_member("alice")
    db = tmp_path / "bot.sqlite3"
    settings = settings_for(emulator, tmp_path)
    bot = await start_bot(emulator, engine, settings)
    try:
        await emulator.send_slash_command("imagine", {"prompt": "a heron", "steps": 2, "count": 1}, user_id=alice)
        await next_result(emulator, 0)
    finally:
        await bot.stop()
    # As if the process died after the post and before the row was recorded.
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("UPDATE jobs SET status = 'running', finished_at = NULL")
    con.execute("DELETE FROM message_images")
    con.execute("DELETE FROM messages WHERE kind = 'result'")
    con.commit()
    con.close()
    for index in range(120):
        await emulator.post_message(f"chat {index}", user_id=alice)
    again = await start_bot(emulator, engine, settings)
    try:
        assert (await until_finished(emulator, db, 1))[0] == "done"
    finally:
        await again.stop()
    assert len(results(emulator)) == 1
    assert rows(db, "SELECT COUNT(*) FROM messages WHERE kind = 'result'") == [(1,)]
    record_reliability(
        "defect", "14. _already_posted scans only the last 100 messages", 1, "confirmed; found, not reposted"
    )


async def test_expired_interaction_tokens_are_forgotten(
    emulator: DiscordEmulator, engine: object, tmp_path: Path
) -> None:
    """Interaction tokens are secrets for 15 minutes and useless after: the database does not keep them."""
    import sqlite3
    import time

    alice = emulator.add_member("alice")
    old_job = NewJob(kind="imagine", requester_id=alice, guild_id=emulator.guild_id, channel_id=emulator.channel_id,
                     request_json=REQUEST.to_json(), application_id=emulator.application_id,
                     interaction_token="old.interaction.token")
    [job_id] = await write_jobs(tmp_path, old_job)
    db = tmp_path / "bot.sqlite3"
    con = sqlite3.connect(db)
    con.execute("UPDATE jobs SET status = 'done', interaction_at = ? WHERE id = ?", (time.time() - 3600, job_id))
    con.commit()
    con.close()
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path))
    try:
        assert rows(db, "SELECT interaction_token FROM jobs WHERE id = ?", job_id) == [(None,)]
    finally:
        await bot.stop()
    record_reliability("secrets", "interaction tokens kept after expiry", 1, "cleared at start and every minute")


async def test_bot_token_is_never_written_anywhere(
    emulator: DiscordEmulator, engine: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A whole run at DEBUG, then every log line, exception, database row and image file searched for the token."""
    import logging
    import sqlite3

    caplog.set_level(logging.DEBUG)
    alice = emulator.add_member("alice")
    token = emulator.token
    db = tmp_path / "bot.sqlite3"
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path))
    try:
        await emulator.send_slash_command("imagine", {"prompt": "a tokenless fox", "steps": 2, "count": 2},
                                          user_id=alice)
        result = await next_result(emulator, 0)
        await emulator.add_reaction(result.id, "🔄", user_id=alice)
        await next_result(emulator, 1)
        # A comic made from the result and exported: the export's bytes are searched too.
        await emulator.send_slash_command("comic", {"title": "No secrets here"}, user_id=alice, subcommand="new")
        await emulator.add_reaction(result.id, "📖", user_id=alice)
        await emulator.wait_for(
            lambda: rows(db, "SELECT count(*) FROM comic_panels WHERE image_id IS NOT NULL") == [(1,)], 60
        )
        export = await emulator.send_slash_command("comic", {"format": "cbz"}, user_id=alice, subcommand="export")
        exported = await emulator.wait_for(
            lambda: [a.data for m in export.followups for a in m.attachments] or None, 60
        )
    finally:
        await bot.stop()
    texts = [caplog.text]
    texts += [repr(record.exc_info) for record in caplog.records if record.exc_info]
    con = sqlite3.connect(db)
    try:
        texts += ["\n".join(con.iterdump())]
    finally:
        con.close()
    blobs = await asyncio.to_thread(lambda: [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()])
    blobs += exported
    assert len(caplog.records) > 50 and len(blobs) >= 3
    assert not [t for t in texts if token in t]
    assert not [b for b in blobs if token.encode() in b]
    record_reliability("secrets", "bot token in DEBUG logs, exceptions, database rows, image files, a CBZ export",
                       len(caplog.records) + len(blobs), "never found")
