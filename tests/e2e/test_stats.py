"""/stats: the figures in its embed equal the counts taken from the bot's SQLite rows.

The real bot makes images for two members (with a style), fails one job for real (its source
image is gone from disk), and makes one image in another server, which must not count; then an
admin's /stats is read field by field and compared with SQL over the same rows.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from playground import DiscordEmulator, EmuMessage
from tests.e2e.test_settings import admin, imagine
from tests.harness import next_result, rows, settings_for, start_bot


def fields(message: EmuMessage) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message.embeds[0]["fields"]}


def ranked(pairs: list[tuple[Any, Any]], *, mention: bool = False) -> str:
    """The embed's numbered lines for ``(name, count)`` rows."""
    if not pairs:
        return "none"
    return "\n".join(
        f"{n}. {f'<@{name}>' if mention else name}: {count}" for n, (name, count) in enumerate(pairs, start=1)
    )


async def test_stats_figures_equal_the_counts_from_the_rows(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    other_guild, other_channel = emulator.add_guild("elsewhere")
    settings = settings_for(emulator, tmp_path, discord={"guild_ids": [emulator.guild_id, other_guild]},
                            styles={"ink": {"prefix": "ink", "negative": "color"}})
    bot = await start_bot(emulator, engine, settings)
    db = tmp_path / "bot.sqlite3"
    try:
        boss = await admin(emulator)
        ann, bob = emulator.add_member("ann"), emulator.add_member("bob")
        await imagine(emulator, ann, "a kettle", count=2, style="ink")
        await next_result(emulator, 0)
        await imagine(emulator, ann, "a kettle", count=1)
        await next_result(emulator, 1)
        await imagine(emulator, bob, "a teapot", count=1, style="ink")
        bobs = await next_result(emulator, 2)
        await imagine(emulator, bob, "a teapot elsewhere", channel_id=other_channel, count=1)
        await next_result(emulator, 3)
        # A real failure: the image an upscale starts from is gone from disk.
        [(path,)] = rows(db, "SELECT images.path FROM images JOIN messages USING (job_id) WHERE messages.message_id = ?"
                         " AND messages.kind = 'result'", bobs.id)
        bot.storage.files.path_of(path).unlink()
        await emulator.add_reaction(bobs.id, "🔍", user_id=bob)
        await emulator.wait_for(lambda: rows(db, "SELECT 1 FROM jobs WHERE status = 'failed'") or None, timeout=30)

        sent = await emulator.send_slash_command("stats", {"days": 7}, user_id=boss)
        # Deferred (counting a large archive can pass Discord's 3 s), then one follow-up.
        answer = await emulator.wait_for(lambda: sent.followups[0] if sent.followups else None, timeout=30)
    finally:
        await bot.stop()

    guild = emulator.guild_id
    assert answer.ephemeral
    shown = fields(answer)
    [(images,)] = rows(db, "SELECT COUNT(*) FROM images WHERE guild_id = ?", guild)
    [(jobs,)] = rows(db, "SELECT COUNT(*) FROM jobs WHERE guild_id = ?", guild)
    by_status = dict(rows(db, "SELECT status, COUNT(*) FROM jobs WHERE guild_id = ? GROUP BY status", guild))
    assert (images, jobs, by_status) == (4, 4, {"done": 3, "failed": 1})  # the other server's job is left out
    assert f"**{images}** images from **{jobs}** jobs" in answer.embeds[0]["description"]
    assert f"({by_status['done']} done, {by_status['failed']} failed, 0 cancelled" in answer.embeds[0]["description"]

    busiest = rows(db, "SELECT requester_id, COUNT(*) FROM images WHERE guild_id = ? GROUP BY 1 ORDER BY 2 DESC", guild)
    assert shown["Busiest members (images)"] == ranked(busiest, mention=True)
    styles = [json.loads(text)["extra"].get("style")
              for (text,) in rows(db, "SELECT request_json FROM jobs WHERE guild_id = ?", guild)]
    assert styles.count("ink") == 3  # ann's first, bob's, and the upscale of bob's
    assert shown["Top styles (jobs)"] == ranked([("ink", styles.count("ink"))])
    models = {json.loads(params)["extra"]["model"] for (params,) in rows(
        db, "SELECT params_json FROM images WHERE guild_id = ?", guild)}
    assert shown["Top models (images)"] == ranked([(models.pop(), images)])
    assert shown["Top LoRAs (jobs)"] == "none"
    failures = rows(db, "SELECT error FROM jobs WHERE guild_id = ? AND status = 'failed'", guild)
    assert failures == [("source image missing",)]
    assert shown["Failures by kind"] == ranked([("source image missing", 1)])

    timings = rows(db, "SELECT started_at - created_at, finished_at - started_at FROM jobs "
                       "WHERE guild_id = ? AND status = 'done'", guild)
    wait = statistics.median(t[0] for t in timings)
    run = statistics.median(t[1] for t in timings)
    assert shown["Median wait"] == (f"{wait:.1f} s" if wait < 120 else f"{wait / 60:.1f} min")
    assert shown["Median run time"] == (f"{run:.1f} s" if run < 120 else f"{run / 60:.1f} min")

    for name, table in (("Images per day", "images"), ("Jobs per day", "jobs")):
        per_day = rows(db, f"SELECT date(created_at, 'unixepoch'), COUNT(*) FROM {table} WHERE guild_id = ? "
                           "GROUP BY 1", guild)
        days = dict(entry.split(":") for entry in shown[name].split())
        assert len(days) == 7, shown[name]
        assert {day: int(count) for day, count in days.items() if count != "0"} == {
            day[5:]: count for day, count in per_day}

    [chart] = answer.attachments
    assert chart.filename == "stats.png" and chart.image().size == (480, 200)
    assert answer.embeds[0]["image"]["url"] == "attachment://stats.png"
