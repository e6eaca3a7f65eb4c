"""/comic character add, list and remove: the comic's recurring characters."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.add_to_comic import comic_title
from bot.cogs.comic._context import NO_PINGS, ComicContext, quote
from bot.discord_limits import CONTENT_MAX
from bot.embeds import shorten
from bot.errors import UserFacingError
from storage.comics import CharacterNotFound, ComicFull


class CharacterCommands(app_commands.Group, name="character", description="The comic's recurring characters"):
    """``/comic character``: characters are woven into every panel prompt that names them."""

    def __init__(self, context: ComicContext) -> None:
        super().__init__()
        self.context = context

    @app_commands.command(name="add")
    @app_commands.describe(
        name="The name you will use in panel prompts",
        description="How they look, woven into every prompt that names them",
    )
    async def character_add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 40],
        description: app_commands.Range[str, 1, 300],
    ) -> None:
        """Add a character (or change one's description) so they look alike in every panel."""
        comic = await self.context.editable(interaction, "change the characters of")
        name, description = " ".join(name.split()), " ".join(description.split())
        if not any(ch.isalnum() for ch in name):
            raise UserFacingError("A character's name needs at least one letter or digit.")
        if not description:
            raise UserFacingError("The description is empty; say how the character looks.")
        # Descriptions are woven into panel prompts: the blocked words apply to them too.
        self.context.check_words(name, description)
        try:
            character, created = await self.context.storage.comics.set_character(
                comic.id, name, description, max_characters=self.context.settings.max_characters
            )
        except ComicFull as error:
            raise UserFacingError(str(error)) from None
        verb = "joins" if created else "is updated in"
        await interaction.response.send_message(
            f"🧑‍🎨 **{quote(character.name, 40)}** {verb} {comic_title(comic)}: {quote(description, 300)}",
            allowed_mentions=NO_PINGS,
        )

    @app_commands.command(name="list")
    async def character_list(self, interaction: discord.Interaction) -> None:
        """Show the characters of your active comic."""
        comic = await self.context.active(interaction)
        characters = await self.context.storage.comics.characters(comic.id)
        if not characters:
            raise UserFacingError(f"{comic_title(comic)} has no characters yet; add one with `/comic character add`.")
        lines = [f"• **{quote(c.name, 40)}**: {quote(c.description, 300)}" for c in characters]
        await interaction.response.send_message(
            shorten(f"Characters of {comic_title(comic)}:\n" + "\n".join(lines), CONTENT_MAX), ephemeral=True
        )

    @app_commands.command(name="remove")
    @app_commands.describe(name="The character's name")
    async def character_remove(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 40]) -> None:
        """Remove a character (panels already drawn keep their look)."""
        comic = await self.context.editable(interaction, "change the characters of")
        try:
            removed = await self.context.storage.comics.remove_character(comic.id, " ".join(name.split()))
        except CharacterNotFound:
            raise UserFacingError(f"{comic_title(comic)} has no character called **{quote(name, 40)}**.") from None
        await interaction.response.send_message(
            f"**{quote(removed.name, 40)}** leaves {comic_title(comic)}.", allowed_mentions=NO_PINGS
        )
