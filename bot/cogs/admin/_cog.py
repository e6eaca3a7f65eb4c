"""/settings (a command group) and /stats: per-server administration, for members with Manage Server.

Discord hides both from other members (``default_member_permissions``); a server can still grant
them to others in its integration settings, so the bot checks Manage Server itself as well and
refuses anyone else with a short ephemeral note. Every /settings answer is ephemeral.

Each setting command checks every value it was given before storing any (all or none are saved),
through :class:`bot.guild_rules.ServerRules`, which stores them in SQLite and applies them to the
next job at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.admin._access import REQUIRED, require_manage_server
from bot.cogs.admin._show import settings_embed, shown_values
from bot.cogs.admin._stats import stats_chart, stats_embed
from bot.errors import UserFacingError
from bot.services import Services
from rules.server_settings import LABELS, ROLE_LIMITS_KEY, SettingError
from rules.styles import match_styles

log = logging.getLogger(__name__)

#: Days /stats covers unless asked otherwise, and at most.
STATS_DEFAULT_DAYS = 14
STATS_MAX_DAYS = 90

ListAction = Literal["add", "remove", "clear"]
FlaggedAction = Literal["withhold", "spoiler"]
AgeRestrictedAction = Literal["allow", "withhold", "spoiler"]
#: ``/settings reset`` choices: every key, or everything.
ResetChoice = Literal[
    "everything", "default_steps", "default_guidance", "default_size", "default_count", "default_style",
    "default_model", "max_steps", "max_pixels", "max_pending_per_member", "cooldown_s", "daily_images",
    "channels", "roles", "nsfw_action", "age_restricted_action", "kid_friendly", "role_limits",
]


class SettingsCommands(
    app_commands.Group,
    name="settings",
    description="This server's defaults, limits, channels, roles and NSFW policy (Manage Server)",
    default_permissions=REQUIRED,
    guild_only=True,
):
    """``/settings``: show and change this server's own settings."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Manage Server only, even where the server's integration settings show the command to others."""
        require_manage_server(interaction, "settings")
        return True

    async def _save(self, interaction: discord.Interaction, values: dict[str, Any]) -> None:
        """Check every value, then store them all, and say what is in force now."""
        guild_id = require_manage_server(interaction, "settings")
        if not values:
            raise UserFacingError("Give at least one option to change; `/settings show` lists the values.")
        servers = self.services.servers
        try:
            for key, raw in values.items():
                servers.check(guild_id, key, raw)
            for key, raw in values.items():
                await servers.set(guild_id, key, raw, updated_by=interaction.user.id)
        except SettingError as error:
            raise UserFacingError(str(error)) from None
        shown = shown_values(servers.effective(guild_id))
        lines = [f"{LABELS[key]}: **{shown[key]}**" for key in values if key in shown]
        if ROLE_LIMITS_KEY in values:
            lines.append("Role limits saved; `/settings show` lists them.")
        await interaction.response.send_message("Saved. " + "; ".join(lines), ephemeral=True)

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Every setting in force here, and whether it comes from this server or the config file."""
        guild_id = require_manage_server(interaction, "settings")
        server = self.services.servers.effective(guild_id)
        name = interaction.guild.name if interaction.guild is not None else None
        await interaction.response.send_message(embed=settings_embed(server, name), ephemeral=True)

    @app_commands.command(name="defaults")
    @app_commands.describe(
        steps="Default denoising steps", guidance="Default guidance (CFG)", size="Default size, e.g. 512x768",
        count="Default images per request", style="Default style preset", model="Default model",
    )
    async def defaults(
        self,
        interaction: discord.Interaction,
        steps: app_commands.Range[int, 1, 150] | None = None,
        guidance: app_commands.Range[float, 0.0, 30.0] | None = None,
        size: app_commands.Range[str, 3, 11] | None = None,
        count: app_commands.Range[int, 1, 4] | None = None,
        style: app_commands.Range[str, 1, 32] | None = None,
        model: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        """Set what /imagine uses when a member leaves an option out."""
        given = {
            "default_steps": steps, "default_guidance": guidance, "default_size": size, "default_count": count,
            "default_style": style, "default_model": model,
        }
        await self._save(interaction, {key: value for key, value in given.items() if value is not None})

    @defaults.autocomplete("style")
    async def _style_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        styles = self.services.settings.styles
        return [app_commands.Choice(name=name, value=name) for name in match_styles(current, styles)]

    @defaults.autocomplete("model")
    async def _model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = [spec.name for spec in self.services.known_models() if current.lower() in spec.name.lower()]
        return [app_commands.Choice(name=name[:100], value=name[:100]) for name in names[:25]]

    @app_commands.command(name="limits")
    @app_commands.describe(
        max_steps="Most steps a request may ask for (at most the config's)",
        max_pixels="Most pixels (width x height) an image may have (at most the config's)",
        pending_per_member="Most jobs one member may have waiting or running (at most the config's)",
        cooldown_seconds="Seconds a member waits between requests (0: none)",
        daily_images="Images a member may make in any 24 hours (0: no limit)",
    )
    async def limits(
        self,
        interaction: discord.Interaction,
        max_steps: app_commands.Range[int, 1, 1000] | None = None,
        max_pixels: app_commands.Range[int, 64, 67_108_864] | None = None,
        pending_per_member: app_commands.Range[int, 1, 1000] | None = None,
        cooldown_seconds: app_commands.Range[int, 0, 86_400] | None = None,
        daily_images: app_commands.Range[int, 0, 10_000] | None = None,
    ) -> None:
        """Set this server's limits (the config's limits stay the ceiling)."""
        given = {
            "max_steps": max_steps, "max_pixels": max_pixels, "max_pending_per_member": pending_per_member,
            "cooldown_s": cooldown_seconds, "daily_images": daily_images,
        }
        await self._save(interaction, {key: value for key, value in given.items() if value is not None})

    @app_commands.command(name="role-limit")
    @app_commands.describe(
        role="The role", daily_images="Its members' images per 24 hours (0: no limit)",
        cooldown_seconds="Its members' seconds between requests (0: none)",
        remove="Drop this role's own limits",
    )
    async def role_limit(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        daily_images: app_commands.Range[int, 0, 10_000] | None = None,
        cooldown_seconds: app_commands.Range[int, 0, 86_400] | None = None,
        remove: bool = False,
    ) -> None:
        """Give a role its own daily quota or cooldown (a member gets the most generous of their roles')."""
        guild_id = require_manage_server(interaction, "settings")
        current = dict(self.services.servers.stored(guild_id).get(ROLE_LIMITS_KEY, {}))
        if remove:
            current.pop(str(role.id), None)
        else:
            if daily_images is None and cooldown_seconds is None:
                raise UserFacingError("Give `daily_images` or `cooldown_seconds` (or `remove`).")
            mine = dict(current.get(str(role.id), {}))
            if daily_images is not None:
                mine["daily_images"] = daily_images
            if cooldown_seconds is not None:
                mine["cooldown_s"] = cooldown_seconds
            current[str(role.id)] = mine
        await self._save(interaction, {ROLE_LIMITS_KEY: current})

    async def _edit_list(
        self, interaction: discord.Interaction, key: str, action: ListAction, item: int | None, noun: str
    ) -> None:
        guild_id = require_manage_server(interaction, "settings")
        listed = [int(v) for v in self.services.servers.stored(guild_id).get(key, [])]
        if action == "clear":
            listed = []
        elif item is None:
            raise UserFacingError(f"Name the {noun} to {action}.")
        elif action == "add" and item not in listed:
            listed.append(item)
        elif action == "remove":
            if item not in listed:
                raise UserFacingError(f"That {noun} is not on the list.")
            listed.remove(item)
        await self._save(interaction, {key: listed})

    @app_commands.command(name="channels")
    @app_commands.describe(action="Add a channel, remove one, or clear the list (draw everywhere)",
                           channel="The channel (threads follow their channel)")
    async def channels(
        self, interaction: discord.Interaction, action: ListAction, channel: discord.TextChannel | None = None
    ) -> None:
        """Channels where I draw (an empty list: every channel)."""
        await self._edit_list(interaction, "channels", action, channel.id if channel else None, "channel")

    @app_commands.command(name="roles")
    @app_commands.describe(action="Add a role, remove one, or clear the list (everyone may draw)", role="The role")
    async def roles(
        self, interaction: discord.Interaction, action: ListAction, role: discord.Role | None = None
    ) -> None:
        """Roles whose members may draw (an empty list: everyone)."""
        await self._edit_list(interaction, "roles", action, role.id if role else None, "role")

    @app_commands.command(name="nsfw")
    @app_commands.describe(
        flagged="Images the safety checker flags, in ordinary channels: withhold them or post them as spoilers",
        age_restricted="The same in age-restricted channels: allow, withhold or spoiler",
        kid_friendly="Withhold flagged images everywhere and refuse prompts with adult or violent words",
    )
    async def nsfw_policy(
        self,
        interaction: discord.Interaction,
        flagged: FlaggedAction | None = None,
        age_restricted: AgeRestrictedAction | None = None,
        kid_friendly: bool | None = None,
    ) -> None:
        """This server's NSFW policy."""
        given = {"nsfw_action": flagged, "age_restricted_action": age_restricted, "kid_friendly": kid_friendly}
        await self._save(interaction, {key: value for key, value in given.items() if value is not None})

    @app_commands.command(name="reset")
    @app_commands.describe(setting="The setting to hand back to the config file (or everything)")
    async def reset(self, interaction: discord.Interaction, setting: ResetChoice) -> None:
        """Forget one of this server's values (or all), so the config file's applies again."""
        guild_id = require_manage_server(interaction, "settings")
        key = None if setting == "everything" else setting
        forgotten = await self.services.servers.reset(guild_id, key)
        what = "every setting" if key is None else LABELS[key]
        text = f"Reset {what}: the config file's value applies." if forgotten else f"{what} was not set here."
        await interaction.response.send_message(text, ephemeral=True)


class Admin(commands.Cog):
    """/settings and /stats, for members with Manage Server."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.group = SettingsCommands(services)

    async def cog_load(self) -> None:
        """Add ``/settings``."""
        self.bot.tree.add_command(self.group)

    async def cog_unload(self) -> None:
        """Remove ``/settings``."""
        self.bot.tree.remove_command(self.group.name)

    @app_commands.command(name="stats")
    @app_commands.describe(days="How many days back, today included (default 14)")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def stats(
        self, interaction: discord.Interaction, days: app_commands.Range[int, 1, STATS_MAX_DAYS] = STATS_DEFAULT_DAYS
    ) -> None:
        """Images and jobs per day, waits, busiest members, top styles and models, failures (Manage Server)."""
        guild_id = require_manage_server(interaction, "stats")
        # A large archive takes a while to count: answer Discord within its 3 s first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        stats = await self.services.storage.stats.guild(guild_id, days=days)
        chart = await asyncio.to_thread(stats_chart, stats)
        await interaction.followup.send(embed=stats_embed(stats), file=chart, ephemeral=True)
