"""The ``/settings show`` embed: every effective value and where it comes from (server or config)."""

from __future__ import annotations

import discord

from bot.discord_limits import EMBED_FIELD_MAX
from bot.embeds import shorten_lines
from rules.server_settings import ACCESS_KEYS, DEFAULT_KEYS, LABELS, LIMIT_KEYS, SAFETY_KEYS, ServerSettings

SERVER_MARK = "server"
CONFIG_MARK = "config"


def _duration(seconds: int) -> str:
    return "off" if not seconds else f"{seconds} s"


def shown_values(server: ServerSettings) -> dict[str, str]:
    """Each key's effective value, as shown."""
    limits = server.limits
    size = server.default_size
    return {
        "default_steps": str(limits.default_steps),
        "default_guidance": f"{limits.default_guidance:g}",
        "default_size": f"{size[0]}x{size[1]}" if size else "the model's native size",
        "default_count": str(limits.default_count),
        "default_style": server.default_style or "none",
        "default_model": server.default_model,
        "max_steps": str(limits.max_steps),
        "max_pixels": f"{limits.max_pixels:,}",
        "max_pending_per_member": str(server.max_pending_per_member),
        "cooldown_s": _duration(server.cooldown_s),
        "daily_images": str(server.daily_images) if server.daily_images else "no limit",
        "channels": ", ".join(f"<#{c}>" for c in server.channel_ids) or "all channels",
        "roles": ", ".join(f"<@&{r}>" for r in server.role_ids) or "everyone",
        "nsfw_action": server.safety.nsfw_action,
        "age_restricted_action": server.safety.age_restricted_action,
        "kid_friendly": "on" if server.kid_friendly else "off",
    }


def _field(server: ServerSettings, values: dict[str, str], keys: tuple[str, ...]) -> str:
    lines = [f"{LABELS[key]}: **{values[key]}** ({server.sources.get(key, CONFIG_MARK)})" for key in keys]
    return shorten_lines(lines, EMBED_FIELD_MAX)


def role_limit_lines(server: ServerSettings) -> list[str]:
    lines = []
    for role, limit in sorted(server.role_limits.items()):
        parts: list[str] = []
        if limit.daily_images is not None:
            parts.append(f"{limit.daily_images or 'no limit'} images a day")
        if limit.cooldown_s is not None:
            parts.append(f"cooldown {_duration(limit.cooldown_s)}")
        lines.append(f"<@&{role}>: {', '.join(parts)}")
    return lines


def settings_embed(server: ServerSettings, guild_name: str | None = None) -> discord.Embed:
    """One embed: defaults, limits, where the bot draws, NSFW policy, role limits."""
    values = shown_values(server)
    embed = discord.Embed(
        title=f"Settings of {guild_name}" if guild_name else "Settings of this server",
        description="Each value says where it comes from: **server** (set with /settings) or **config** "
                    "(the bot's config file, under every server's own values).",
        colour=discord.Colour.blurple(),
    )
    embed.add_field(name="Defaults", value=_field(server, values, DEFAULT_KEYS), inline=False)
    embed.add_field(name="Limits", value=_field(server, values, LIMIT_KEYS), inline=False)
    embed.add_field(name="Where and who", value=_field(server, values, ACCESS_KEYS), inline=False)
    embed.add_field(name="NSFW policy", value=_field(server, values, SAFETY_KEYS), inline=False)
    roles = role_limit_lines(server)
    embed.add_field(
        name="Role limits", value=shorten_lines(roles, EMBED_FIELD_MAX) if roles else "none", inline=False
    )
    if server.kid_friendly:
        embed.set_footer(text="Kid-friendly: flagged images are withheld everywhere and more prompt words are refused.")
    return embed
