"""What /stats shows, counted from the ``jobs`` and ``images`` rows of one server.

Days are UTC calendar days of ``created_at``. Styles come from the stored request's
``extra.style``; models from the request's ``model`` or, for the images, the ``extra.model`` the
runner records; LoRAs from the request's ``loras`` list (names, or objects with a ``name``).
Requests written before those fields existed simply do not count toward them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import aiosqlite

#: How many entries each "top" list keeps.
TOP = 5

_FAILURE_KIND = (
    "CASE WHEN error IS NULL OR error = '' THEN 'unknown' "
    "WHEN instr(error, ':') > 0 THEN substr(error, 1, instr(error, ':') - 1) ELSE error END"
)
_LORA_NAME = (
    "CASE lora.type WHEN 'object' THEN json_extract(lora.value, '$.name') WHEN 'text' THEN lora.value END"
)


@dataclass(frozen=True)
class GuildStats:
    """One server's figures over ``days`` days up to ``until`` (inclusive)."""

    since: date
    until: date
    #: Every day of the period, oldest first, with its count (0 where none).
    images_per_day: list[tuple[date, int]]
    jobs_per_day: list[tuple[date, int]]
    jobs_by_status: dict[str, int]
    #: Seconds from asking to starting, and from starting to finishing, of the period's done jobs (None: no job).
    median_wait_s: float | None
    median_run_s: float | None
    busiest_members: list[tuple[int, int]] = field(default_factory=list)
    top_styles: list[tuple[str, int]] = field(default_factory=list)
    top_models: list[tuple[str, int]] = field(default_factory=list)
    top_loras: list[tuple[str, int]] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)

    @property
    def images(self) -> int:
        return sum(count for _, count in self.images_per_day)

    @property
    def jobs(self) -> int:
        return sum(count for _, count in self.jobs_per_day)


def _day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


class StatsRepository:
    """Counts for /stats."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def _pairs(self, sql: str, parameters: tuple[object, ...]) -> list[tuple[str, int]]:
        async with self._db.execute(sql, parameters) as cursor:
            return [(str(row[0]), int(row[1])) async for row in cursor]

    async def guild(self, guild_id: int, *, days: int = 14, today: date | None = None) -> GuildStats:
        """The figures of one server over the last ``days`` UTC days, today included."""
        until = today or datetime.now(UTC).date()
        since = until - timedelta(days=days - 1)
        start, end = _day_start(since), _day_start(until + timedelta(days=1))
        period = (guild_id, start, end)
        in_jobs = "guild_id = ? AND created_at >= ? AND created_at < ?"
        day = "date(created_at, 'unixepoch')"
        images_by_day = dict(await self._pairs(
            f"SELECT {day}, COUNT(*) FROM images WHERE {in_jobs} GROUP BY 1", period))
        jobs_by_day = dict(await self._pairs(f"SELECT {day}, COUNT(*) FROM jobs WHERE {in_jobs} GROUP BY 1", period))
        every_day = [since + timedelta(days=n) for n in range(days)]
        by_status = dict(await self._pairs(f"SELECT status, COUNT(*) FROM jobs WHERE {in_jobs} GROUP BY 1", period))
        async with self._db.execute(
            f"SELECT started_at - created_at, finished_at - started_at FROM jobs WHERE {in_jobs} "
            "AND status = 'done' AND started_at IS NOT NULL AND finished_at IS NOT NULL",
            period,
        ) as cursor:
            times = [(float(row[0]), float(row[1])) async for row in cursor]
        busiest = await self._pairs(
            f"SELECT requester_id, COUNT(*) FROM images WHERE {in_jobs} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP}",
            period,
        )
        styles = await self._pairs(
            f"SELECT json_extract(request_json, '$.extra.style') AS s, COUNT(*) FROM jobs WHERE {in_jobs} "
            f"AND s IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP}",
            period,
        )
        models = await self._pairs(
            "SELECT COALESCE(json_extract(params_json, '$.model'), json_extract(params_json, '$.extra.model')) AS m, "
            f"COUNT(*) FROM images WHERE {in_jobs} AND m IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP}",
            period,
        )
        loras = await self._pairs(
            f"SELECT {_LORA_NAME} AS name, COUNT(*) FROM jobs, json_each(jobs.request_json, '$.loras') AS lora "
            f"WHERE jobs.{in_jobs.replace(' AND ', ' AND jobs.')} AND name IS NOT NULL "
            f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP}",
            period,
        )
        failures = await self._pairs(
            f"SELECT {_FAILURE_KIND}, COUNT(*) FROM jobs WHERE {in_jobs} AND status = 'failed' "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            period,
        )
        return GuildStats(
            since=since,
            until=until,
            images_per_day=[(d, images_by_day.get(d.isoformat(), 0)) for d in every_day],
            jobs_per_day=[(d, jobs_by_day.get(d.isoformat(), 0)) for d in every_day],
            jobs_by_status=by_status,
            median_wait_s=statistics.median(wait for wait, _ in times) if times else None,
            median_run_s=statistics.median(run for _, run in times) if times else None,
            busiest_members=[(int(user), count) for user, count in busiest],
            top_styles=styles,
            top_models=models,
            top_loras=loras,
            failures=failures,
        )
