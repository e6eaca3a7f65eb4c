"""The one place app-command errors become replies: known ones a short note, unknown ones an apology.

Errors that concern one user are answered ephemerally; the log gets the full traceback of
anything unexpected (never the token: discord.py does not log it and neither do we).
"""

from __future__ import annotations

import contextlib
import logging

import discord
from discord import app_commands

log = logging.getLogger(__name__)


class UserFacingError(app_commands.AppCommandError):
    """An error whose message is meant for the user as it is."""


async def reply_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Answer (or follow up) with a message only the user sees.

    After a public defer ("thinking…"), that placeholder is removed first, so nothing is left in
    the channel for a request that was refused.
    """
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
        return
    if interaction.response.type == discord.InteractionResponseType.deferred_channel_message:
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
    await interaction.followup.send(text, ephemeral=True)


async def on_app_command_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
    """Tree-wide handler installed by the bot."""
    original = getattr(error, "original", error)
    if isinstance(error, UserFacingError):
        text = str(error)
    elif isinstance(error, app_commands.CheckFailure):
        text = "You can't use this command here."
    elif isinstance(error, app_commands.TransformerError):
        text = f"I couldn't read `{error.value}`; check that option's format."
    else:
        log.error(
            "command %s failed", interaction.command.name if interaction.command else "?", exc_info=original
        )
        text = "Sorry, something went wrong on my side. The owner has the details in the log."
    try:
        await reply_ephemeral(interaction, text)
    except discord.HTTPException:
        log.warning("could not tell the user about an error: the interaction is gone")
