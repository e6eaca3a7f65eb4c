"""The ``/stats`` embed and its chart, from :class:`storage.stats.GuildStats`."""

from __future__ import annotations

import io

import discord

from bot.discord_limits import EMBED_FIELD_MAX
from bot.embeds import shorten, shorten_lines
from composition.bar_chart import bar_chart_png
from storage.stats import GuildStats

CHART_FILENAME = "stats.png"


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _ranked(pairs: list[tuple[str, int]], *, mention: bool = False) -> str:
    if not pairs:
        return "none"
    lines = [
        f"{n}. {f'<@{name}>' if mention else discord.utils.escape_markdown(shorten(name, 60))}: {count}"
        for n, (name, count) in enumerate(pairs, start=1)
    ]
    return shorten_lines(lines, EMBED_FIELD_MAX)


def stats_embed(stats: GuildStats) -> discord.Embed:
    """One embed of the figures; the chart is attached as ``stats.png``."""
    days = len(stats.images_per_day)
    statuses = stats.jobs_by_status
    embed = discord.Embed(
        title=f"Stats for the last {days} day{'s' if days != 1 else ''}",
        description=(
            f"{stats.since.isoformat()} to {stats.until.isoformat()} (UTC): **{stats.images}** images from "
            f"**{stats.jobs}** jobs ({statuses.get('done', 0)} done, {statuses.get('failed', 0)} failed, "
            f"{statuses.get('cancelled', 0)} cancelled, "
            f"{statuses.get('queued', 0) + statuses.get('running', 0)} waiting or running)."
        ),
        colour=discord.Colour.blurple(),
    )
    embed.add_field(name="Median wait", value=_seconds(stats.median_wait_s))
    embed.add_field(name="Median run time", value=_seconds(stats.median_run_s))
    embed.add_field(name="Busiest members (images)", value=_ranked(
        [(str(user), count) for user, count in stats.busiest_members], mention=True), inline=False)
    embed.add_field(name="Top styles (jobs)", value=_ranked(stats.top_styles))
    embed.add_field(name="Top models (images)", value=_ranked(stats.top_models))
    embed.add_field(name="Top LoRAs (jobs)", value=_ranked(stats.top_loras))
    embed.add_field(name="Failures by kind", value=_ranked(stats.failures), inline=False)
    days_line = " ".join(f"{day.strftime('%m-%d')}:{count}" for day, count in stats.images_per_day[-14:])
    embed.add_field(name="Images per day", value=shorten(days_line, EMBED_FIELD_MAX) or "none", inline=False)
    jobs_line = " ".join(f"{day.strftime('%m-%d')}:{count}" for day, count in stats.jobs_per_day[-14:])
    embed.add_field(name="Jobs per day", value=shorten(jobs_line, EMBED_FIELD_MAX) or "none", inline=False)
    embed.set_image(url=f"attachment://{CHART_FILENAME}")
    return embed


def stats_chart(stats: GuildStats) -> discord.File:
    """Images (wide bars) and jobs (narrow bars) per day, as a small PNG."""
    png = bar_chart_png(
        [day.strftime("%m-%d") for day, _ in stats.images_per_day],
        [count for _, count in stats.images_per_day],
        [count for _, count in stats.jobs_per_day],
        title="images (blue) and jobs (green) per day",
    )
    return discord.File(io.BytesIO(png), filename=CHART_FILENAME)
