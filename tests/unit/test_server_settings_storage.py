"""The server_settings rows, a member's usage for the quota, /stats' counts and its chart, on real SQLite."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

from PIL import Image

from composition.bar_chart import bar_chart_png
from storage import Storage
from storage.database import write

GUILD, OTHER = 100, 200
#: Noon UTC on 2026-11-20, and a day before.
NOON = datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp()
DAY = 86400.0


async def test_settings_rows_are_set_replaced_and_reset(storage: Storage, tmp_path: Path) -> None:
    repo = storage.guild_settings
    assert await repo.all() == {}
    await repo.set(GUILD, "max_steps", 20, updated_by=7)
    await repo.set(GUILD, "channels", [1, 2])
    await repo.set(GUILD, "max_steps", 25)
    await repo.set(OTHER, "kid_friendly", True)
    assert await repo.get(GUILD) == {"max_steps": 25, "channels": [1, 2]}
    assert await repo.all() == {GUILD: {"max_steps": 25, "channels": [1, 2]}, OTHER: {"kid_friendly": True}}
    assert await repo.reset(GUILD, "channels") == 1
    assert await repo.reset(GUILD, "channels") == 0
    assert await repo.reset(OTHER) == 1
    assert await repo.all() == {GUILD: {"max_steps": 25}}
    con = sqlite3.connect(tmp_path / "bot.sqlite3")
    try:
        assert con.execute("SELECT key, value_json FROM server_settings").fetchall() == [("max_steps", "25")]
    finally:
        con.close()


async def add_job(storage: Storage, *, user: int, guild: int | None, created: float, status: str = "done",
                  count: int = 1, extra: dict[str, object] | None = None, loras: object = None,
                  started: float | None = None, finished: float | None = None, error: str | None = None,
                  images: int = 0, model: str | None = None) -> int:
    request: dict[str, object] = {"prompt": "p", "count": count, "extra": extra or {}}
    if loras is not None:
        request["loras"] = loras
    [row] = await write(
        storage.db,
        "INSERT INTO jobs (kind, status, requester_id, guild_id, channel_id, request_json, created_at, started_at, "
        "finished_at, error) VALUES ('txt2img', ?, ?, ?, 1, ?, ?, ?, ?, ?) RETURNING id",
        (status, user, guild, json.dumps(request), created, started, finished, error),
    )
    job_id = int(row[0])
    for index in range(images):
        params = {"prompt": "p", "extra": {"model": "tiny-sd"}, **({"model": model} if model else {})}
        await write(
            storage.db,
            "INSERT INTO images (job_id, idx, seed, params_json, path, sha256, width, height, requester_id, "
            "guild_id, created_at) VALUES (?, ?, 0, ?, 'x.png', 'x', 8, 8, ?, ?, ?)",
            (job_id, index, json.dumps(params), user, guild, created),
        )
    return job_id


async def test_usage_counts_a_members_jobs_in_one_server(storage: Storage) -> None:
    await add_job(storage, user=1, guild=GUILD, created=NOON - 2 * DAY, count=4)  # before the window
    await add_job(storage, user=1, guild=GUILD, created=NOON - 100, count=2)
    await add_job(storage, user=1, guild=GUILD, created=NOON - 50, count=3, status="queued")
    await add_job(storage, user=1, guild=GUILD, created=NOON - 40, count=4, status="failed")
    await add_job(storage, user=1, guild=GUILD, created=NOON - 30, count=4, status="cancelled")
    await add_job(storage, user=1, guild=OTHER, created=NOON - 20, count=4)
    await add_job(storage, user=2, guild=GUILD, created=NOON - 10, count=4)
    counted, last = await storage.jobs.usage(1, GUILD, NOON - DAY)
    assert counted == [(NOON - 100, 2), (NOON - 50, 3)]
    assert last == NOON - 30  # a cancelled request still started the cooldown
    assert await storage.jobs.usage(3, GUILD, 0) == ([], None)
    assert (await storage.jobs.usage(1, None, 0)) == ([], None)


async def test_stats_count_one_servers_rows(storage: Storage) -> None:
    await add_job(storage, user=1, guild=GUILD, created=NOON, started=NOON + 2, finished=NOON + 12, images=2,
                  extra={"style": "ink"}, loras=["ghibli", {"name": "inkwash", "weight": 0.8}])
    await add_job(storage, user=1, guild=GUILD, created=NOON - DAY, started=NOON - DAY + 4,
                  finished=NOON - DAY + 8, images=1, extra={"style": "ink"}, loras=["ghibli"], model="sdxl")
    await add_job(storage, user=2, guild=GUILD, created=NOON, started=NOON + 6, finished=NOON + 7, images=1,
                  extra={"style": "comic"})
    await add_job(storage, user=2, guild=GUILD, created=NOON, status="failed", error="timed out")
    await add_job(storage, user=2, guild=GUILD, created=NOON, status="failed", error="not queued: OSError: disk")
    await add_job(storage, user=3, guild=GUILD, created=NOON, status="failed", error="not queued: ValueError: x")
    await add_job(storage, user=3, guild=GUILD, created=NOON, status="cancelled")
    await add_job(storage, user=9, guild=OTHER, created=NOON, images=3, extra={"style": "ink"})
    await add_job(storage, user=9, guild=GUILD, created=NOON - 10 * DAY, images=3)  # before the period

    stats = await storage.stats.guild(GUILD, days=3, today=date(2026, 11, 20))
    assert stats.images_per_day == [(date(2026, 11, 18), 0), (date(2026, 11, 19), 1), (date(2026, 11, 20), 3)]
    assert stats.jobs_per_day == [(date(2026, 11, 18), 0), (date(2026, 11, 19), 1), (date(2026, 11, 20), 6)]
    assert (stats.images, stats.jobs) == (4, 7)
    assert stats.jobs_by_status == {"done": 3, "failed": 3, "cancelled": 1}
    assert stats.median_wait_s == 4.0  # waits 2, 4, 6
    assert stats.median_run_s == 4.0  # runs 10, 4, 1
    assert stats.busiest_members == [(1, 3), (2, 1)]
    assert stats.top_styles == [("ink", 2), ("comic", 1)]
    assert stats.top_models == [("tiny-sd", 3), ("sdxl", 1)]
    assert stats.top_loras == [("ghibli", 2), ("inkwash", 1)]
    assert stats.failures == [("not queued", 2), ("timed out", 1)]

    empty = await storage.stats.guild(12345, days=1, today=date(2026, 11, 20))
    assert (empty.images, empty.jobs, empty.median_wait_s, empty.top_loras) == (0, 0, None, [])


def test_the_chart_is_a_small_png_with_one_bar_per_day() -> None:
    png = bar_chart_png(["11-18", "11-19", "11-20"], [0, 1, 3], [0, 1, 6], size=(300, 120))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (300, 120)
    assert len(png) < 20_000
    # The tallest bar (day 3's jobs, inner) reaches near the top; day 1 has no bar at all.
    pixels = image.convert("RGB")
    column = [pixels.getpixel((250, y)) for y in range(120)]
    assert (87, 242, 135) in column[24:40]
    assert all(pixels.getpixel((50, y)) != (88, 101, 242) for y in range(24, 100))
