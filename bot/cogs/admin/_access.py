"""Who may use the admin commands: members with Manage Server, in a server."""

from __future__ import annotations

import discord

from bot.errors import UserFacingError

#: What Discord hides the commands behind (``default_member_permissions``); the bot checks it too.
REQUIRED = discord.Permissions(manage_guild=True)


def require_manage_server(interaction: discord.Interaction, command: str) -> int:
    """The server's id, if the member has Manage Server there; else a short refusal naming the rule."""
    if interaction.guild_id is None:
        raise UserFacingError(f"/{command} works in a server only.")
    if not interaction.permissions.manage_guild:
        raise UserFacingError(f"Only members with the Manage Server permission can use /{command}.")
    return interaction.guild_id
