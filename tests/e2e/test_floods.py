"""Floods of /imagine against the real bot: every one answered within Discord's 3 s, nobody stuck behind
a flooder, every accepted job finished.

Acknowledgement latencies (the emulator's clock, from dispatch to the bot's first response) are
recorded as p50/p99 figures for docs/RELIABILITY.md, not asserted against a tight number: the 3 s
Discord deadline is the only bound (the emulator records a problem past it).
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from playground import DiscordEmulator, EmuInteraction
from tests.harness import rows, settings_for, start_bot
from tests.reliability import record_reliability

CAP = 3
SLOW = {"steps": 6, "width": 64, "height": 64, "count": 1}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def burst(emu: DiscordEmulator, senders: list[int], options: dict[str, Any]) -> list[EmuInteraction]:
    """Everyone in ``senders`` runs /imagine at once (no wait between them); until every one is answered."""
    sent = await asyncio.gather(*(
        emu.send_slash_command("imagine", {"prompt": f"flood {n}", **options}, user_id=user, ack_timeout=None)
        for n, user in enumerate(senders)
    ))
    await emu.wait_for(lambda: all(inter.responded_at is not None for inter in sent), timeout=60)
    return list(sent)


def latencies(sent: list[EmuInteraction]) -> list[float]:
    values = [inter.ack_ms for inter in sent]
    assert all(v is not None and v < 3000 for v in values), values
    return [float(v) for v in values if v is not None]


def figure(name: str, values: list[float]) -> None:
    p50, p99 = statistics.median(values), percentile(values, 99)
    record_reliability("flood", f"acknowledgement latency, {name}", len(values),
                       f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(values):.0f} ms")


async def all_finished(emu: DiscordEmulator, db: Path, timeout: float = 240) -> None:  # noqa: ASYNC109
    await emu.wait_for(
        lambda: rows(db, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')") == [(0,)], timeout
    )


async def test_one_member_floods_100(emulator: DiscordEmulator, engine: Any, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path, queue={"max_pending_per_user": CAP})
    bot = await start_bot(emulator, engine, settings)
    db = tmp_path / "bot.sqlite3"
    try:
        flooder, other = emulator.add_member("flooder"), emulator.add_member("other")
        sent = await burst(emulator, [flooder] * 100, SLOW)
        values = latencies(sent)
        figure("one member, 100 /imagine at once", values)
        [(accepted,)] = rows(db, "SELECT count(*) FROM jobs WHERE requester_id = ?", flooder)
        # The other member's job is not stuck behind the flood.
        await emulator.send_slash_command("imagine", {"prompt": "mine", "count": 1}, user_id=other)
        await all_finished(emulator, db)
        [(b_created, b_started)] = rows(db, "SELECT created_at, started_at FROM jobs WHERE requester_id = ?", other)
        # Not stuck behind the flood: between the other member's request and its start, at most one
        # pipeline call of the flooder's ran (one batch: the jobs the worker had already taken up).
        ahead = rows(db, "SELECT DISTINCT started_at FROM jobs WHERE requester_id = ? AND started_at > ? "
                         "AND started_at < ?", flooder, b_created, b_started)
        starts = sorted(started for (started,) in ahead)
        calls = sum(1 for earlier, later in zip([None, *starts], starts, strict=False)
                    if earlier is None or later - earlier > 0.05)  # a batch's jobs start within milliseconds
        assert calls <= 1, (b_created, b_started, starts)
        assert rows(db, "SELECT status FROM jobs WHERE requester_id = ?", other) == [("done",)]
    finally:
        await bot.stop()
    record_reliability("flood", "one member sends 100 /imagine in a burst", 100,
                       f"all acknowledged < 3 s; {accepted} accepted; another member's job not stuck")


async def test_burst_respects_the_per_member_cap(emulator: DiscordEmulator, engine: Any, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path, queue={"max_pending_per_user": CAP})
    bot = await start_bot(emulator, engine, settings)
    db = tmp_path / "bot.sqlite3"
    try:
        flooder = emulator.add_member("flooder")
        # Slow jobs, so none finishes during the burst: at most CAP can be accepted.
        await burst(emulator, [flooder] * 30, {**SLOW, "steps": 60, "width": 128, "height": 128})
        [(accepted,)] = rows(db, "SELECT count(*) FROM jobs WHERE requester_id = ?", flooder)
        record_reliability("flood", "per-member cap under a burst of 30", 30,
                           f"xfail (defect 11): {accepted} accepted (cap {CAP})")
        assert accepted <= CAP
        record_reliability("flood", "per-member cap under a burst of 30", 30, f"{accepted} accepted (cap {CAP})")
    finally:
        await bot.stop()


async def test_five_members_times_twenty(emulator: DiscordEmulator, engine: Any, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path, queue={"max_pending_per_user": CAP})
    bot = await start_bot(emulator, engine, settings)
    db = tmp_path / "bot.sqlite3"
    try:
        members = [emulator.add_member(f"m{i}") for i in range(5)]
        sent = await burst(emulator, [members[n % 5] for n in range(100)], {**SLOW, "steps": 3})
        values = latencies(sent)
        figure("5 members x 20 /imagine at once", values)
        await all_finished(emulator, db)
        per_member = dict(rows(db, "SELECT requester_id, count(*) FROM jobs WHERE status = 'done' "
                                   "GROUP BY requester_id"))
        assert set(per_member) == set(members)  # everyone got at least one result
    finally:
        await bot.stop()
    record_reliability("flood", "5 members x 20 /imagine in one burst", 100,
                       f"all acknowledged < 3 s; every member served ({sorted(per_member.values())} done)")


async def three_servers(emulator: DiscordEmulator, engine: Any, tmp_path: Path) -> tuple[Any, list[int], list[int]]:
    """A bot in the main guild and two more; returns it, each guild's channel, and each guild's first member."""
    extra = [emulator.add_guild(name) for name in ("second", "third")]
    settings = settings_for(emulator, tmp_path, queue={"max_pending_per_user": 10},
                            discord={"guild_ids": [emulator.guild_id, *(g for g, _ in extra)]})
    bot = await start_bot(emulator, engine, settings)
    await emulator.wait_for(lambda: all(emulator.commands(g) for g, _ in extra), 30)
    return bot, [emulator.channel_id, *(c for _, c in extra)], [emulator.guild_id, *(g for g, _ in extra)]


async def send_in(emu: DiscordEmulator, plan: list[tuple[int, int]], options: dict[str, Any]) -> list[EmuInteraction]:
    """(member, channel) pairs, all at once; until every one is answered."""
    sent = await asyncio.gather(*(
        emu.send_slash_command("imagine", {"prompt": f"server flood {n}", **options}, user_id=user,
                               channel_id=channel, ack_timeout=None)
        for n, (user, channel) in enumerate(plan)
    ))
    await emu.wait_for(lambda: all(inter.responded_at is not None for inter in sent), timeout=60)
    return list(sent)


async def test_three_servers_share_the_queue(emulator: DiscordEmulator, engine: Any, tmp_path: Path) -> None:
    bot, channels, guilds = await three_servers(emulator, engine, tmp_path)
    db = tmp_path / "bot.sqlite3"
    try:
        members = [emulator.add_member(f"s{i}") for i in range(6)]
        # Two members per server, five /imagine each, all in one burst.
        plan = [(members[2 * g + k], channels[g]) for _ in range(5) for g in range(3) for k in range(2)]
        sent = await send_in(emulator, plan, {**SLOW, "steps": 3})
        values = latencies(sent)
        figure("3 servers x 2 members x 5 /imagine at once", values)
        await all_finished(emulator, db)
        per_guild = dict(rows(db, "SELECT guild_id, count(*) FROM jobs WHERE status = 'done' GROUP BY guild_id"))
        assert per_guild == {g: 10 for g in guilds}
        for message in emulator.messages():
            if message.embeds and message.attachments:
                assert message.channel_id in channels
    finally:
        await bot.stop()
    record_reliability("flood", "3 servers x 2 members x 5 /imagine in one burst", 30,
                       "all acknowledged < 3 s; each server's 10 jobs done in its own channel")


async def test_a_busy_server_does_not_starve_the_others(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    bot, channels, guilds = await three_servers(emulator, engine, tmp_path)
    db = tmp_path / "bot.sqlite3"
    try:
        busy = [emulator.add_member(f"busy{i}") for i in range(6)]
        quiet = [emulator.add_member("quiet1"), emulator.add_member("quiet2")]
        plan = [(user, channels[0]) for user in busy for _ in range(2)]
        plan += [(quiet[0], channels[1]), (quiet[1], channels[2])]
        await send_in(emulator, plan, {**SLOW, "steps": 3})
        await all_finished(emulator, db)
        first = [guild for (guild,) in rows(db, "SELECT guild_id FROM jobs ORDER BY started_at LIMIT 4")]
        assert set(guilds) <= set(first)
        record_reliability("flood", "a busy server (6 members) and two quiet ones: the quiet ones' turn", 14,
                           "each server among the first 4 jobs started")
    finally:
        await bot.stop()
