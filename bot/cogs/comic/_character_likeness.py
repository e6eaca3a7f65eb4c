"""/comic character likeness: how strongly a character's reference pictures shape its panels (IP-Adapter).

A character with reference pictures is drawn through IP-Adapter when the bot has IP-Adapter
weights configured and the character has no trained LoRA (see :mod:`rules.character_routes`).
The scale trades likeness (higher) for following the panel's prompt (lower); it is stored per
character, and the default (0.6) applies until it is set.
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.cogs.comic._context import NO_PINGS, ComicContext
from bot.errors import UserFacingError
from rules.character_routes import DEFAULT_IP_ADAPTER_SCALE
from rules.request import MAX_IP_ADAPTER_SCALE
from storage.comics import CharacterNotFound


def likeness_command(context: ComicContext) -> app_commands.Command[app_commands.Group, ..., None]:
    """The ``likeness`` subcommand of ``/comic character``, bound to ``context``."""

    @app_commands.command(name="likeness")
    @app_commands.describe(
        name="The character's name",
        scale=f"0 ignores the reference pictures, 1 follows them closely (default {DEFAULT_IP_ADAPTER_SCALE:g})",
    )
    async def likeness(
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 40],
        scale: app_commands.Range[float, 0.0, MAX_IP_ADAPTER_SCALE],
    ) -> None:
        """Set how strongly a character's reference pictures shape its panels (IP-Adapter)."""
        comic = await context.editable(interaction, "change the characters of")
        try:
            record = await context.storage.comics.set_character_scale(comic.id, " ".join(name.split()), scale)
        except CharacterNotFound as error:
            raise UserFacingError(str(error)) from None
        note = "" if context.ip_adapter_configured else (
            " This bot has no IP-Adapter configured (`[model] ip_adapter`), so it takes effect once it has."
        )
        await interaction.response.send_message(
            f"🎚️ {discord.utils.escape_markdown(record.name)}'s likeness scale is now {scale:g}.{note}",
            allowed_mentions=NO_PINGS,
        )

    return likeness
