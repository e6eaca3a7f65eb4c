"""/models: the models members can pick (``model`` option, ``--model``), their defaults, and where each is loaded."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot import embeds
from bot.discord_limits import EMBED_FIELD_MAX
from bot.services import Services, services_of
from rules.models import ModelSpec, ModelState

log = logging.getLogger(__name__)

#: Discord shows at most 25 fields in an embed.
MAX_FIELDS = 25


def model_field(spec: ModelSpec, states: list[ModelState], *, default: bool, native: int) -> tuple[str, str]:
    """One model as an embed field: (title, lines)."""
    mine = [state for state in states if state.name == spec.name]
    family = next((state.family for state in mine if state.family), "") or "not known until loaded"
    where = [state.device for state in mine if state.loaded]
    if where:
        loaded = "loaded on " + ", ".join(where)
    elif mine:
        loaded = "not loaded (loads when a job asks for it)"
    else:
        loaded = "on the cluster's workers"
    width, height = spec.width or native, spec.height or native
    if spec.width and not spec.height:
        height = spec.width
    if spec.height and not spec.width:
        width = spec.height
    lines = [
        f"{spec.display_name}" if spec.display_name else "",
        f"Family: {family} · {loaded}",
        f"Default size {width}x{height}"
        + (f" · {spec.steps} steps" if spec.steps is not None else "")
        + (f" · guidance {spec.guidance:g}" if spec.guidance is not None else "")
        + (f" · {spec.scheduler}" if spec.scheduler else ""),
    ]
    errors = [state.error for state in mine if state.error]
    if errors:
        lines.append("⚠️ The last load failed; the owner can find why in the log.")
    title = f"{spec.name} (default)" if default else spec.name
    return embeds.shorten(title, 256), embeds.shorten("\n".join(line for line in lines if line), EMBED_FIELD_MAX)


class Models(commands.Cog):
    """/models lists the configured models."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        if not services.settings.discord.allow_dms:
            for command in self.__cog_app_commands__:
                command.guild_only = True

    @app_commands.command(name="models")
    async def models(self, interaction: discord.Interaction) -> None:
        """List the models you can pick with `model:` or `--model`, and which are loaded now."""
        services = self.services
        specs = services.known_models()
        states = await asyncio.to_thread(services.model_states)
        embed = discord.Embed(
            title="Models",
            description="Pick one with the `model` option of /imagine or `--model NAME` in the prompt.",
            colour=discord.Colour.blurple(),
        )
        for index, spec in enumerate(specs[:MAX_FIELDS]):
            name, value = model_field(
                spec, states, default=index == 0, native=services.native_size_of(spec, states)
            )
            embed.add_field(name=name, value=value, inline=False)
        if len(specs) > MAX_FIELDS:
            embed.set_footer(text=f"and {len(specs) - MAX_FIELDS} more")
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    """Load the cog with the bot's services."""
    await bot.add_cog(Models(bot, services_of(bot)))
