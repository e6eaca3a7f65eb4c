"""The Cancel button on a job's status message: the one button the core knows.

It is a :class:`discord.ui.DynamicItem` whose custom_id carries the job id; the bot registers
the class once (``add_dynamic_items``), so a click on a status message posted before the last
restart is routed here just the same. The buttons on results belong to the cog that makes
results (``bot.cogs.imagine``), which registers them itself.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import discord

from bot.emojis import CANCEL


class _Outcome(Protocol):
    """A cancel request's answer (:class:`bot.job_runner.CancelOutcome`)."""

    @property
    def accepted(self) -> bool: ...

    @property
    def message(self) -> str: ...


class _Canceller(Protocol):
    """What the Cancel button needs: the job runner's cancel for a member."""

    async def request_cancel(self, job_id: int, *, user_id: int, moderator: bool) -> _Outcome: ...


@runtime_checkable
class _RunsJobs(Protocol):
    """A client with a job runner (the bot)."""

    @property
    def runner(self) -> _Canceller: ...


class CancelJobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"job:cancel:(?P<job_id>[0-9]+)"):
    """Cancel a queued or running job (its requester, or a member who can manage messages)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                emoji=CANCEL,
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
        client = interaction.client
        if not isinstance(client, _RunsJobs):
            await interaction.response.send_message("This button doesn't work right now.", ephemeral=True)
            return
        moderator = bool(interaction.permissions.manage_messages)
        outcome = await client.runner.request_cancel(self.job_id, user_id=interaction.user.id, moderator=moderator)
        if outcome.accepted:
            await interaction.response.defer()
        else:
            await interaction.response.send_message(outcome.message, ephemeral=True)


def cancel_view(job_id: int) -> discord.ui.View:
    """The view on a status message: one Cancel button."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelJobButton(job_id))
    return view
