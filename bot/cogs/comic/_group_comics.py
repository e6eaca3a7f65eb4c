"""/comic new, list, open, share and unshare: making comics, picking the active one, sharing it."""

from __future__ import annotations

import asyncio
from typing import Literal

import discord
from discord import app_commands

from bot.add_to_comic import comic_title
from bot.cogs.comic import _pages
from bot.cogs.comic._context import NO_PINGS, ComicContext, quote
from bot.discord_limits import CONTENT_MAX
from bot.embeds import shorten
from bot.errors import UserFacingError
from composition.comic_lettering import TextDoesNotFit
from rules.request import random_seed
from rules.styles import match_styles
from storage.comics import ComicStorageError

#: The layouts of :mod:`composition.comic_layout`, spelled out so Discord shows them as choices.
LayoutChoice = Literal["auto", "grid", "strip", "wide-top", "manga"]


class ComicsCommands(app_commands.Group, name="comic", description="Make comics from generated panels"):
    """The commands about whole comics; the cog moves them into its one ``/comic`` group."""

    def __init__(self, context: ComicContext) -> None:
        super().__init__()
        self.context = context

    async def _style_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=name, value=name) for name in match_styles(current, self.context.styles)]

    @app_commands.command(name="new")
    @app_commands.describe(
        title="The comic's title (shown above the first page)",
        style="A style preset for every panel (default: none)",
        layout="How panels are arranged on a page (default: auto)",
    )
    @app_commands.autocomplete(style=_style_autocomplete)
    async def new(
        self,
        interaction: discord.Interaction,
        title: app_commands.Range[str, 1, 100],
        style: app_commands.Range[str, 1, 32] | None = None,
        layout: LayoutChoice | None = None,
    ) -> None:
        """Start a comic in this channel and make it your active comic."""
        title = " ".join(title.split())
        if not title:
            raise UserFacingError("The title is empty; give the comic a name.")
        styles = self.context.styles
        if style is not None and style not in styles:
            names = ", ".join(sorted(styles)) or "none configured"
            raise UserFacingError(f"There is no style `{quote(style, 32)}`; pick one of: {names}.")
        settings = self.context.settings
        layout_name = layout or settings.default_layout
        try:
            await asyncio.to_thread(
                _pages.check_title, title, layout=layout_name, panels_per_page=settings.panels_per_page
            )
        except TextDoesNotFit as error:
            raise UserFacingError(error.user_message) from None
        comic = await self.context.storage.comics.create(
            owner_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id or 0,
            title=title, style=style, layout=layout_name, seed=random_seed(),
        )
        details = f"style {style}, " if style else ""
        await interaction.response.send_message(
            f"📘 New comic {comic_title(comic)} (#{comic.id}; {details}layout {comic.layout}). "
            "It is your active comic: add characters with `/comic character add` and panels with `/comic panel`.",
            allowed_mentions=NO_PINGS,
        )

    @app_commands.command(name="list")
    async def list_comics(self, interaction: discord.Interaction) -> None:
        """List the comics of this server you own, share or can view."""
        comics = self.context.storage.comics
        summaries = await comics.visible(interaction.guild_id, interaction.user.id)
        if not summaries:
            raise UserFacingError("There are no comics in this server yet. Start one with `/comic new`.")
        active = await comics.active(interaction.user.id, interaction.guild_id)
        lines = []
        for summary in summaries:
            comic = summary.comic
            marker = " ← active" if active is not None and active.id == comic.id else ""
            lines.append(f"`#{comic.id}` {comic_title(comic)}: {summary.panel_count} panel(s), {summary.role}{marker}")
        text = "Comics here (`/comic open id` picks one):\n" + "\n".join(lines)
        await interaction.response.send_message(shorten(text, CONTENT_MAX), ephemeral=True)

    @app_commands.command(name="open")
    @app_commands.describe(id="The comic's number, as `/comic list` shows it")
    async def open_comic(self, interaction: discord.Interaction, id: app_commands.Range[int, 1]) -> None:
        """Make a comic your active comic."""
        comics = self.context.storage.comics
        try:
            comic = await comics.get(id)
        except ComicStorageError as error:
            raise UserFacingError(f"{error} `/comic list` shows the comics here.") from None
        if comic.guild_id != interaction.guild_id:
            raise UserFacingError(f"There is no comic #{id} in this server. `/comic list` shows the comics here.")
        await comics.set_active(interaction.user.id, interaction.guild_id, comic.id)
        role = await comics.role(comic, interaction.user.id)
        can = "add and edit panels" if role != "viewer" else "view and export it (the owner and collaborators edit)"
        await interaction.response.send_message(
            f"{comic_title(comic)} (#{comic.id}) is now your active comic. You can {can}.", ephemeral=True
        )

    @app_commands.command(name="share")
    @app_commands.describe(member="Who may add and edit panels")
    async def share(self, interaction: discord.Interaction, member: discord.User) -> None:
        """Let a member add and edit panels of your active comic."""
        comic = await self.context.owned(interaction, "share")
        if member.bot:
            raise UserFacingError("Bots can't edit comics; pick a member.")
        if member.id == comic.owner_id:
            raise UserFacingError(f"You own {comic_title(comic)} already.")
        comics = self.context.storage.comics
        if not await comics.add_collaborator(comic.id, member.id):
            raise UserFacingError(f"{member.mention} can already edit {comic_title(comic)}.")
        made_active = await comics.set_active_if_none(member.id, interaction.guild_id, comic.id)
        hint = "it is now their active comic" if made_active else f"they can pick it with `/comic open {comic.id}`"
        await interaction.response.send_message(
            f"🤝 {member.mention} can now add and edit panels of {comic_title(comic)}; {hint}.",
            allowed_mentions=NO_PINGS,
        )

    @app_commands.command(name="unshare")
    @app_commands.describe(member="Who may no longer edit")
    async def unshare(self, interaction: discord.Interaction, member: discord.User) -> None:
        """Stop a member from editing your active comic (they can still view it)."""
        comic = await self.context.owned(interaction, "unshare")
        if not await self.context.storage.comics.remove_collaborator(comic.id, member.id):
            raise UserFacingError(f"{member.mention} is not a collaborator on {comic_title(comic)}.")
        await interaction.response.send_message(
            f"{member.mention} can no longer edit {comic_title(comic)}.", allowed_mentions=NO_PINGS
        )
