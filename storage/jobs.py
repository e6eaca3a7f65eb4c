"""Job rows: every request a user makes is written here before it is queued, and kept."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiosqlite

from storage.database import transaction

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
ACTIVE_STATUSES: tuple[JobStatus, ...] = ("queued", "running")


@dataclass(frozen=True)
class JobRecord:
    """One row of ``jobs``."""

    id: int
    kind: str
    status: JobStatus
    requester_id: int
    guild_id: int | None
    channel_id: int
    request_json: str
    parent_image_id: int | None
    application_id: int | None
    interaction_token: str | None
    interaction_at: float | None
    status_message_id: int | None
    reply_to_message_id: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    error: str | None
    delivery_started_at: float | None = None

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> JobRecord:
        """Build a record from a row selected with ``SELECT *``."""
        return cls(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - Row has no __iter__ of keys


@dataclass(frozen=True)
class NewJob:
    """What is known about a job when a user asks for it."""

    kind: str
    requester_id: int
    guild_id: int | None
    channel_id: int
    request_json: str
    parent_image_id: int | None = None
    application_id: int | None = None
    interaction_token: str | None = None
    reply_to_message_id: int | None = None


class JobRepository:
    """Reads and writes ``jobs`` rows."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def create(self, job: NewJob) -> JobRecord:
        """Insert a job as ``queued`` and return it."""
        now = time.time()
        async with transaction(self._db):
            cursor = await self._db.execute(
                """INSERT INTO jobs (kind, status, requester_id, guild_id, channel_id, request_json,
                                     parent_image_id, application_id, interaction_token, interaction_at,
                                     reply_to_message_id, created_at)
                   VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    job.kind,
                    job.requester_id,
                    job.guild_id,
                    job.channel_id,
                    job.request_json,
                    job.parent_image_id,
                    job.application_id,
                    job.interaction_token,
                    now if job.interaction_token else None,
                    job.reply_to_message_id,
                    now,
                ),
            )
        job_id = cursor.lastrowid
        assert job_id is not None
        return await self.get(job_id)

    async def get(self, job_id: int) -> JobRecord:
        """The job with this id (KeyError if there is none)."""
        async with self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise KeyError(job_id)
        return JobRecord.from_row(row)

    async def active(self) -> list[JobRecord]:
        """Jobs that were queued or running, oldest first: what a restart must pick up again."""
        async with self._db.execute(
            "SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY id"
        ) as cursor:
            rows = await cursor.fetchall()
        return [JobRecord.from_row(row) for row in rows]

    async def count(self, statuses: Sequence[JobStatus] = ACTIVE_STATUSES) -> int:
        """How many jobs have one of these statuses."""
        marks = ", ".join("?" for _ in statuses)
        async with self._db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", tuple(statuses)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def mark_running(self, job_id: int) -> None:
        """The worker picked the job up."""
        async with transaction(self._db):
            await self._db.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1 WHERE id = ?",
                (time.time(), job_id),
            )

    async def mark_queued(self, job_id: int) -> None:
        """Put a job back in the queue (shutdown while it ran)."""
        async with transaction(self._db):
            await self._db.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL WHERE id = ? AND status = 'running'",
                (job_id,),
            )

    async def finish(self, job_id: int, status: JobStatus, error: str | None = None) -> None:
        """Record how a job ended."""
        async with transaction(self._db):
            await self._db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                (status, time.time(), error, job_id),
            )

    async def mark_delivering(self, job_id: int) -> None:
        """Posting the result starts now (a restart after this looks for the posted result first)."""
        async with transaction(self._db):
            await self._db.execute("UPDATE jobs SET delivery_started_at = ? WHERE id = ?", (time.time(), job_id))

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        """Remember the message that shows the job's progress."""
        async with transaction(self._db):
            await self._db.execute("UPDATE jobs SET status_message_id = ? WHERE id = ?", (message_id, job_id))
