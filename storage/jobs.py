"""Job rows: every request a user makes is written here before it is queued, and kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiosqlite

from storage.database import write
from storage.errors import NotFound

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


def insert_parameters(job: NewJob, now: float) -> list[Any]:
    """The values of one new ``jobs`` row, in the order of :data:`INSERT_JOB`'s columns."""
    return [
        job.kind, job.requester_id, job.guild_id, job.channel_id, job.request_json,
        job.parent_image_id, job.application_id, job.interaction_token,
        now if job.interaction_token else None, job.reply_to_message_id, now,
    ]


async def insert_job(db: aiosqlite.Connection, job: NewJob) -> int:
    """Insert one ``queued`` job row inside the caller's transaction; return its id."""
    rows = await db.execute_fetchall(f"{INSERT_JOB} {_INSERT_ROW} RETURNING id", insert_parameters(job, time.time()))
    return int(next(iter(rows))[0])


_INSERT_COLUMNS = (
    "kind, status, requester_id, guild_id, channel_id, request_json, parent_image_id, application_id, "
    "interaction_token, interaction_at, reply_to_message_id, created_at"
)
_INSERT_ROW = "(?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_JOB = f"INSERT INTO jobs ({_INSERT_COLUMNS}) VALUES"
#: Most rows written by one group commit (11 parameters each, far below SQLite's limit).
MAX_GROUP_ROWS = 200


class JobRepository:
    """Reads and writes ``jobs`` rows.

    :meth:`create` is on the path of every interaction's acknowledgement. When many members ask at
    once, the rows that arrive while one write is in flight are written together by the next one
    (a group commit): one statement and one trip to the database thread for all of them, instead
    of one trip each waiting behind the others.
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._waiting: list[tuple[NewJob, float, asyncio.Future[JobRecord]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def create(self, job: NewJob) -> JobRecord:
        """Insert a job as ``queued`` (committed when this returns) and return its row."""
        future: asyncio.Future[JobRecord] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, time.time(), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:MAX_GROUP_ROWS], self._waiting[MAX_GROUP_ROWS:]
            parameters = [value for job, now, _ in group for value in insert_parameters(job, now)]
            values = ", ".join([_INSERT_ROW] * len(group))
            try:
                rows = await write(self._db, f"{INSERT_JOB} {values} RETURNING *", parameters)
            except BaseException as error:
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(error)
                if not isinstance(error, Exception):
                    raise
                continue
            # SQLite numbers the rows of one INSERT in VALUES order.
            records = sorted((JobRecord.from_row(row) for row in rows), key=lambda record: record.id)
            for (_, _, future), record in zip(group, records, strict=True):
                if not future.done():
                    future.set_result(record)

    async def get(self, job_id: int) -> JobRecord:
        """The job with this id (:class:`NotFound` if there is none)."""
        async with self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise _no_job(job_id)
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

    async def usage(
        self, requester_id: int, guild_id: int | None, since: float
    ) -> tuple[list[tuple[float, int]], float | None]:
        """A member's jobs in one server (None: in DMs) for the cooldown and the daily quota.

        Returns ``(created_at, images asked for)`` of the jobs since ``since`` that are not failed
        or cancelled, oldest first, and when the member's latest job there (any outcome) was asked for.
        """
        async with self._db.execute(
            "SELECT created_at, COALESCE(json_extract(request_json, '$.count'), 1) FROM jobs "
            "WHERE guild_id IS ? AND requester_id = ? AND created_at >= ? AND status NOT IN ('failed', 'cancelled') "
            "ORDER BY created_at",
            (guild_id, requester_id, since),
        ) as cursor:
            counted = [(float(row[0]), int(row[1])) async for row in cursor]
        async with self._db.execute(
            "SELECT MAX(created_at) FROM jobs WHERE guild_id IS ? AND requester_id = ?", (guild_id, requester_id)
        ) as cursor:
            row = await cursor.fetchone()
        return counted, (float(row[0]) if row and row[0] is not None else None)

    async def mark_running(self, job_id: int) -> None:
        """The worker picked the job up."""
        await self._update(
            job_id,
            "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1 WHERE id = ? RETURNING id",
            (time.time(), job_id),
        )

    async def mark_queued(self, job_id: int) -> None:
        """Put a job back in the queue (shutdown while it ran); nothing changes unless it was running."""
        await write(
            self._db,
            "UPDATE jobs SET status = 'queued', started_at = NULL WHERE id = ? AND status = 'running'",
            (job_id,),
        )

    async def finish(self, job_id: int, status: JobStatus, error: str | None = None) -> None:
        """Record how a job ended."""
        await self._update(
            job_id,
            "UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ? RETURNING id",
            (status, time.time(), error, job_id),
        )

    async def mark_delivering(self, job_id: int) -> None:
        """Posting the result starts now (a restart after this looks for the posted result first)."""
        await self._update(
            job_id, "UPDATE jobs SET delivery_started_at = ? WHERE id = ? RETURNING id", (time.time(), job_id)
        )

    async def forget_expired_tokens(self, ttl_s: float, now: float | None = None) -> int:
        """Clear interaction tokens older than ``ttl_s`` (Discord's 15 minutes): useless, and secret. How many."""
        cutoff = (time.time() if now is None else now) - ttl_s
        rows = await write(
            self._db,
            "UPDATE jobs SET interaction_token = NULL "
            "WHERE interaction_token IS NOT NULL AND interaction_at < ? RETURNING id",
            (cutoff,),
        )
        return len(rows)

    async def _update(self, job_id: int, sql: str, parameters: Sequence[Any]) -> None:
        """Run an ``UPDATE ... WHERE id = ? RETURNING id`` of one job; :class:`NotFound` if it has no row."""
        if not await write(self._db, sql, parameters):
            raise _no_job(job_id)


def _no_job(job_id: int) -> NotFound:
    return NotFound(f"There is no job #{job_id}.")
