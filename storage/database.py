"""Opening the SQLite database: WAL mode, foreign keys, and ordered schema migrations.

The schema version lives in ``PRAGMA user_version``. Each entry of :data:`MIGRATIONS` moves the
schema one version forward and runs in its own transaction, so a crash mid-migration leaves the
database at the previous version, never half-changed.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

MIGRATIONS: Sequence[str] = (
    # 1: jobs, images, posted messages, comics (schema now, used by /comic).
    """
    CREATE TABLE jobs (
        id                  INTEGER PRIMARY KEY,
        kind                TEXT    NOT NULL,
        status              TEXT    NOT NULL
                            CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        requester_id        INTEGER NOT NULL,
        guild_id            INTEGER,
        channel_id          INTEGER NOT NULL,
        request_json        TEXT    NOT NULL,
        parent_image_id     INTEGER REFERENCES images(id),
        application_id      INTEGER,
        interaction_token   TEXT,
        interaction_at      REAL,
        status_message_id   INTEGER,
        reply_to_message_id INTEGER,
        created_at          REAL    NOT NULL,
        started_at          REAL,
        finished_at         REAL,
        attempts            INTEGER NOT NULL DEFAULT 0,
        error               TEXT
    );
    CREATE INDEX jobs_by_status ON jobs (status, id);
    CREATE INDEX jobs_by_requester ON jobs (requester_id, id);

    CREATE TABLE images (
        id              INTEGER PRIMARY KEY,
        job_id          INTEGER NOT NULL REFERENCES jobs(id),
        idx             INTEGER NOT NULL,
        seed            INTEGER NOT NULL,
        params_json     TEXT    NOT NULL,
        path            TEXT    NOT NULL,
        sha256          TEXT    NOT NULL,
        width           INTEGER NOT NULL,
        height          INTEGER NOT NULL,
        parent_image_id INTEGER REFERENCES images(id),
        requester_id    INTEGER NOT NULL,
        guild_id        INTEGER,
        created_at      REAL    NOT NULL,
        UNIQUE (job_id, idx)
    );
    CREATE INDEX images_by_requester ON images (requester_id, id);
    CREATE INDEX images_by_parent ON images (parent_image_id);

    CREATE TABLE messages (
        message_id  INTEGER PRIMARY KEY,
        channel_id  INTEGER NOT NULL,
        guild_id    INTEGER,
        job_id      INTEGER NOT NULL REFERENCES jobs(id),
        kind        TEXT    NOT NULL CHECK (kind IN ('status', 'result')),
        created_at  REAL    NOT NULL
    );
    CREATE INDEX messages_by_job ON messages (job_id);

    CREATE TABLE message_images (
        message_id  INTEGER NOT NULL REFERENCES messages(message_id) ON DELETE CASCADE,
        position    INTEGER NOT NULL,
        image_id    INTEGER NOT NULL REFERENCES images(id),
        PRIMARY KEY (message_id, position)
    );

    CREATE TABLE comics (
        id          INTEGER PRIMARY KEY,
        owner_id    INTEGER NOT NULL,
        guild_id    INTEGER,
        channel_id  INTEGER NOT NULL,
        title       TEXT    NOT NULL,
        style       TEXT,
        layout      TEXT    NOT NULL DEFAULT 'auto',
        seed        INTEGER NOT NULL,
        created_at  REAL    NOT NULL,
        updated_at  REAL    NOT NULL
    );
    CREATE INDEX comics_by_owner ON comics (owner_id, id);

    CREATE TABLE comic_panels (
        id           INTEGER PRIMARY KEY,
        comic_id     INTEGER NOT NULL REFERENCES comics(id) ON DELETE CASCADE,
        position     INTEGER NOT NULL,
        prompt       TEXT    NOT NULL,
        caption      TEXT,
        dialogue     TEXT,
        speaker      TEXT,
        seed         INTEGER NOT NULL,
        params_json  TEXT    NOT NULL,
        job_id       INTEGER REFERENCES jobs(id),
        image_id     INTEGER REFERENCES images(id),
        created_at   REAL    NOT NULL,
        UNIQUE (comic_id, position)
    );

    CREATE TABLE comic_characters (
        id           INTEGER PRIMARY KEY,
        comic_id     INTEGER NOT NULL REFERENCES comics(id) ON DELETE CASCADE,
        name         TEXT    NOT NULL COLLATE NOCASE,
        description  TEXT    NOT NULL,
        UNIQUE (comic_id, name)
    );

    CREATE TABLE comic_collaborators (
        comic_id  INTEGER NOT NULL REFERENCES comics(id) ON DELETE CASCADE,
        user_id   INTEGER NOT NULL,
        PRIMARY KEY (comic_id, user_id)
    );

    CREATE TABLE active_comics (
        user_id   INTEGER NOT NULL,
        guild_id  INTEGER NOT NULL DEFAULT 0,
        comic_id  INTEGER NOT NULL REFERENCES comics(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, guild_id)
    );

    CREATE TABLE guild_settings (
        guild_id       INTEGER PRIMARY KEY,
        settings_json  TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: when posting a job's result began, so a restart can tell whether it may already be posted.
    """
    ALTER TABLE jobs ADD COLUMN delivery_started_at REAL;
    """,
    # 3: what the safety policy decided for each image, and deleted results, so the studio's
    # gallery never shows a withheld or deleted image; indexes for the gallery's filters.
    """
    ALTER TABLE images ADD COLUMN safety TEXT CHECK (safety IN ('post', 'spoiler', 'withhold'));
    ALTER TABLE images ADD COLUMN deleted_at REAL;
    CREATE INDEX images_by_guild ON images (guild_id, id);
    CREATE INDEX jobs_by_channel ON jobs (channel_id, id);
    CREATE INDEX comic_panels_by_job ON comic_panels (job_id);
    """,
    # 4: whether the safety checker flagged an image: it stays out of /history, comics and reactions;
    # /history also pages by server.
    """
    ALTER TABLE images ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX images_by_requester_guild ON images (requester_id, guild_id, id);
    """,
    # 5: per-server settings (/settings), one row per key, replacing the never-used guild_settings
    # table; indexes for the cooldown and daily quota (a member's jobs in a server by time) and /stats.
    """
    DROP TABLE IF EXISTS guild_settings;
    CREATE TABLE server_settings (
        guild_id    INTEGER NOT NULL,
        key         TEXT    NOT NULL,
        value_json  TEXT    NOT NULL,
        updated_by  INTEGER,
        updated_at  REAL    NOT NULL,
        PRIMARY KEY (guild_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX jobs_by_guild_member_time ON jobs (guild_id, requester_id, created_at);
    CREATE INDEX jobs_by_guild_time ON jobs (guild_id, created_at, status);
    CREATE INDEX images_by_guild_time ON images (guild_id, created_at, requester_id);
    """,
    # 6: characters' reference pictures (content-addressed files in the image store) and their
    # trained LoRAs (a file in the data folder, the rare token bound to the character, the weight
    # panels apply it at).
    """
    CREATE TABLE character_references (
        id            INTEGER PRIMARY KEY,
        character_id  INTEGER NOT NULL REFERENCES comic_characters(id) ON DELETE CASCADE,
        file          TEXT    NOT NULL,
        sha256        TEXT    NOT NULL,
        position      INTEGER NOT NULL,
        created_at    REAL    NOT NULL,
        UNIQUE (character_id, sha256),
        UNIQUE (character_id, position)
    );

    CREATE TABLE character_loras (
        character_id  INTEGER PRIMARY KEY REFERENCES comic_characters(id) ON DELETE CASCADE,
        path          TEXT    NOT NULL,
        token         TEXT    NOT NULL,
        steps         INTEGER NOT NULL,
        job_id        INTEGER REFERENCES jobs(id),
        trained_at    REAL    NOT NULL
    );

    ALTER TABLE comic_characters ADD COLUMN lora_weight REAL NOT NULL DEFAULT 1.0;
    """,
    # 7: how strongly a character's reference pictures shape its panels through IP-Adapter
    # (NULL: the default).
    """
    ALTER TABLE comic_characters ADD COLUMN ip_adapter_scale REAL;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


_write_locks: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def transaction(db: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """Run the block's writes as one transaction: all of them are committed, or none.

    The connection is shared by every coroutine of the bot, so writes are serialised with a lock:
    another coroutine's statement can never land inside this transaction (and be rolled back
    with it). Every write in the repositories goes through here, single statements included.
    """
    lock = _write_locks.setdefault(db, asyncio.Lock())
    async with lock:
        await db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        try:
            await db.execute("COMMIT")
        except BaseException:
            # A COMMIT can fail (a deferred constraint, a full disk, a lock): never leave it open,
            # or every later write of the bot would land in this dead transaction.
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise


async def write(db: aiosqlite.Connection, sql: str, parameters: Sequence[Any] = ()) -> list[aiosqlite.Row]:
    """Run one write statement on its own, committed, in a single trip to the database thread.

    Like :func:`transaction`, it waits for the write lock, so it never lands inside another
    coroutine's open transaction. With ``RETURNING`` it gives back the written rows.
    """
    lock = _write_locks.setdefault(db, asyncio.Lock())
    async with lock:
        return list(await db.execute_fetchall(sql, parameters))


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer version of the bot than this one."""


async def connect(path: Path | str) -> aiosqlite.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute("PRAGMA busy_timeout = 5000")
        await migrate(db)
    except BaseException:
        await db.close()
        raise
    return db


async def schema_version(db: aiosqlite.Connection) -> int:
    """The schema version recorded in the database file."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply every migration newer than the file's version, each in its own transaction."""
    version = await schema_version(db)
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the database is at schema version {version}, newer than this bot's {SCHEMA_VERSION}; "
            "upgrade the bot"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[number - 1]
        try:
            await db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        except BaseException:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
        log.info("database schema migrated to version %d", number)
    return SCHEMA_VERSION
