"""/comic: chain generated panels into lettered comic pages that members share and export."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cogs.comic._cog import Comic

if TYPE_CHECKING:
    from bot.bot import ArtBot


async def setup(bot: ArtBot) -> None:
    """Load the cog."""
    await bot.add_cog(Comic(bot))
