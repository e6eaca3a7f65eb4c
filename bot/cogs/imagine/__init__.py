"""/imagine and everything around its results: grids, buttons, reactions, /history, /queue, /cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cogs.imagine._cog import Imagine

if TYPE_CHECKING:
    from bot.bot import ArtBot


async def setup(bot: ArtBot) -> None:
    """Load the cog."""
    await bot.add_cog(Imagine(bot))
