"""Buttons that keep working after a restart: their meaning lives in the custom_id.

Each button is a :class:`discord.ui.DynamicItem` whose custom_id carries the job or image id it
acts on; the bot registers the classes once (``add_dynamic_items``), so a click on a message
posted before the last restart is routed here just the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from bot.bot import ArtBot

CANCEL_EMOJI = "❌"


class CancelJobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"job:cancel:(?P<job_id>[0-9]+)"):
    """Cancel a queued or running job (its requester, or a member who can manage messages)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                emoji=CANCEL_EMOJI,
                custom_id=f"job:cancel:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any, /
    ) -> CancelJobButton:
        """Rebuild the button from a click's custom_id."""
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Cancel the job if the clicker may; tell them privately if not."""
        bot: ArtBot = interaction.client  # type: ignore[assignment]
        moderator = bool(interaction.permissions.manage_messages)
        outcome = await bot.runner.request_cancel(self.job_id, user_id=interaction.user.id, moderator=moderator)
        if outcome.accepted:
            await interaction.response.defer()
        else:
            await interaction.response.send_message(outcome.message, ephemeral=True)


def cancel_view(job_id: int) -> discord.ui.View:
    """The view on a status message: one Cancel button."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelJobButton(job_id))
    return view


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (CancelJobButton,)
