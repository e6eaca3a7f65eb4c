"""/imagine and everything around its results: grids, buttons, reactions, /history, /queue, /cancel."""

from __future__ import annotations

from discord.ext import commands

from bot.cogs.imagine._cog import Imagine
from bot.services import services_of


async def setup(bot: commands.Bot) -> None:
    """Load the cog with the bot's services."""
    await bot.add_cog(Imagine(bot, services_of(bot)))
