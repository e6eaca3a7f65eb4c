"""SQLite storage on real files: migrations, WAL, job lifecycle, content-addressed images."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from storage import NotFound, Storage
from storage.database import SCHEMA_VERSION, SchemaTooNewError, connect, transaction
from storage.images import NewImage
from storage.jobs import NewJob


def new_job(**changes: object) -> NewJob:
    base = {"kind": "txt2img", "requester_id": 11, "guild_id": 5, "channel_id": 6, "request_json": "{}"}
    base.update(changes)
    return NewJob(**base)  # type: ignore[arg-type]


async def test_schema_is_migrated_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = await connect(path)
    await db.close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        raw.close()
    assert {"jobs", "images", "messages", "message_images", "comics", "comic_panels",
            "comic_characters", "comic_collaborators"} <= tables


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(SchemaTooNewError):
        await connect(path)


async def test_job_lifecycle(storage: Storage) -> None:
    first = await storage.jobs.create(new_job())
    second = await storage.jobs.create(new_job(requester_id=12))
    assert first.status == "queued" and first.created_at > 0
    await storage.jobs.mark_running(first.id)
    assert [j.id for j in await storage.jobs.active()] == [first.id, second.id]
    await storage.jobs.mark_queued(first.id)
    assert (await storage.jobs.get(first.id)).status == "queued"
    await storage.jobs.finish(first.id, "done")
    await storage.jobs.finish(second.id, "failed", "boom")
    assert await storage.jobs.active() == []
    assert (await storage.jobs.get(second.id)).error == "boom"
    assert (await storage.jobs.get(first.id)).attempts == 1


async def test_images_are_content_addressed_and_rows_are_idempotent(storage: Storage) -> None:
    job = await storage.jobs.create(new_job())
    data = b"\x89PNG fake bytes for the store"
    stored = storage.files.write(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.path.read_bytes() == data and stored.sha256 in stored.path.name
    assert storage.files.write(data).path == stored.path
    image = NewImage(job_id=job.id, idx=0, seed=3, params_json="{}", file=stored, width=64, height=64,
                     parent_image_id=None, requester_id=11, guild_id=5)
    [row] = await storage.images.add_many([image])
    [again] = await storage.images.add_many([image])  # a re-run of the job replaces, never duplicates
    assert row.id == again.id
    assert [r.id for r in await storage.images.for_job(job.id)] == [row.id]
    assert [r.id for r in await storage.images.history(11, guild_id=5)] == [row.id]
    assert await storage.images.history(11, guild_id=6) == []
    assert await storage.images.history(11, guild_id=None) == []
    await storage.images.mark_deleted([row.id])
    assert await storage.images.history(11, guild_id=5) == []


async def test_failed_transaction_leaves_nothing_behind(storage: Storage) -> None:
    with pytest.raises(RuntimeError):
        async with transaction(storage.db) as db:
            await db.execute(
                "INSERT INTO jobs (kind, status, requester_id, channel_id, request_json, created_at) "
                "VALUES ('txt2img', 'queued', 1, 1, '{}', 0)"
            )
            raise RuntimeError("crash mid-transaction")
    assert await storage.jobs.count() == 0


async def test_messages_link_to_images(storage: Storage) -> None:
    job = await storage.jobs.create(new_job())
    stored = storage.files.write(b"img")
    rows = await storage.images.add_many(
        [NewImage(job_id=job.id, idx=i, seed=i, params_json="{}", file=stored, width=8, height=8,
                  parent_image_id=None, requester_id=11, guild_id=5) for i in range(2)]
    )
    await storage.messages.add(message_id=900, channel_id=6, guild_id=5, job_id=job.id, kind="result",
                               image_ids=[r.id for r in rows])
    posted = await storage.messages.get(900)
    assert posted.image_ids == tuple(r.id for r in rows) and posted.kind == "result"
    with pytest.raises(NotFound, match="no record of message 901"):
        await storage.messages.get(901)


async def test_a_missing_row_raises_not_found_everywhere(storage: Storage) -> None:
    """One convention: a method given the key of a row that does not exist raises NotFound."""
    job = await storage.jobs.create(new_job())
    missing = job.id + 1
    for lookup in (
        storage.jobs.get(missing),
        storage.jobs.mark_running(missing),
        storage.jobs.mark_delivering(missing),
        storage.jobs.finish(missing, "done"),
        storage.images.get(1),
        storage.messages.get(1),
        storage.messages.add_status(message_id=1, channel_id=6, guild_id=5, job_id=missing),
    ):
        with pytest.raises(NotFound) as caught:
            await lookup
        assert isinstance(caught.value, KeyError)  # what callers caught before NotFound existed
        assert str(caught.value).startswith(("There is no", "The bot has no")), str(caught.value)
    # A status message for a job that has no row is not recorded half-way.
    assert await storage.db.execute_fetchall("SELECT * FROM messages") == []
    # The existing job was not touched by any of it.
    assert (await storage.jobs.get(job.id)).status == "queued"
