"""/comic: chain generated panels into lettered comic pages that members share and export."""

from __future__ import annotations

from discord.ext import commands

from bot.cogs.comic._cog import Comic
from bot.services import services_of

__all__ = ["Comic", "setup"]


async def setup(bot: commands.Bot) -> None:
    """Load the cog with the bot's services."""
    await bot.add_cog(Comic(bot, services_of(bot)))
