"""Server administration: /settings (each server's defaults, limits, channels, roles and NSFW policy)
and /stats (what the server made, from SQLite). Both need Manage Server."""

from __future__ import annotations

from discord.ext import commands

from bot.cogs.admin._cog import Admin
from bot.services import services_of

__all__ = ["Admin", "setup"]


async def setup(bot: commands.Bot) -> None:
    """Load the cog with the bot's services."""
    await bot.add_cog(Admin(bot, services_of(bot)))
