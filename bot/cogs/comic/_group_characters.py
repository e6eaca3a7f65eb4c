"""/comic character add, list, remove, reference, train and weight: the comic's recurring characters."""

from __future__ import annotations

import io

import discord
from discord import app_commands

from bot.add_to_comic import comic_title
from bot.cogs.comic._context import NO_PINGS, ComicContext, quote
from bot.cogs.comic._references import (
    add_reference_image,
    find_character,
    read_reference,
    reference_strips,
    start_training,
)
from bot.discord_limits import CONTENT_MAX
from bot.embeds import shorten
from bot.errors import UserFacingError
from storage.comics import CharacterNotFound, ComicFull

#: Discord takes at most 10 files per message: one thumbnail strip per character, the first ten.
MAX_FILES = 10


class CharacterCommands(app_commands.Group, name="character", description="The comic's recurring characters"):
    """``/comic character``: characters are woven into every panel prompt that names them."""

    def __init__(self, context: ComicContext) -> None:
        super().__init__()
        self.context = context

    @app_commands.command(name="add")
    @app_commands.describe(
        name="The name you will use in panel prompts",
        description="How they look, woven into every prompt that names them",
        image="A reference picture of them (add more with /comic character reference)",
    )
    async def character_add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 40],
        description: app_commands.Range[str, 1, 300],
        image: discord.Attachment | None = None,
    ) -> None:
        """Add a character (or change one's description) so they look alike in every panel."""
        comic = await self.context.editable(interaction, "change the characters of")
        picture = None
        if image is not None:
            await interaction.response.defer(thinking=True)  # the upload is downloaded and checked first
            picture = await read_reference(self.context, image)
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
        text = f"🧑‍🎨 **{quote(character.name, 40)}** {verb} {comic_title(comic)}: {quote(description, 300)}"
        if picture is None:
            await interaction.response.send_message(text, allowed_mentions=NO_PINGS)
            return
        count, _ = await add_reference_image(self.context, character, picture)
        await interaction.followup.send(
            f"{text} ({count} reference picture{'s' if count != 1 else ''})", allowed_mentions=NO_PINGS
        )

    @app_commands.command(name="reference")
    @app_commands.describe(name="The character's name", image="A picture of them (PNG, JPEG or WebP)")
    async def character_reference(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 40], image: discord.Attachment
    ) -> None:
        """Add a reference picture of a character (up to 10): what /comic character train learns from."""
        comic = await self.context.editable(interaction, "change the characters of")
        character = await find_character(self.context, comic, name)
        await interaction.response.defer(thinking=True)
        count, created = await add_reference_image(self.context, character, await read_reference(self.context, image))
        done = "has this picture already" if not created else "gets a reference picture"
        await interaction.followup.send(
            f"🖼️ **{quote(character.name, 40)}** {done} ({count} in all). "
            "Train them with `/comic character train` once you have a few.",
            allowed_mentions=NO_PINGS,
        )

    @app_commands.command(name="train")
    @app_commands.describe(name="The character's name", steps="Training steps (default from the bot's config)")
    async def character_train(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 40],
        steps: app_commands.Range[int, 1, 100_000] | None = None,
    ) -> None:
        """Train a LoRA of a character on its reference pictures; panels naming them then use it."""
        comic = await self.context.editable(interaction, "train the characters of")
        character = await find_character(self.context, comic, name)
        await start_training(self.context, interaction, character, steps)

    @app_commands.command(name="weight")
    @app_commands.describe(name="The character's name", weight="How strongly their trained LoRA applies (1 = fully)")
    async def character_weight(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 40],
        weight: app_commands.Range[float, -2.0, 2.0],
    ) -> None:
        """Set how strongly a character's trained LoRA is applied in panels and --cref."""
        comic = await self.context.editable(interaction, "change the characters of")
        character = await find_character(self.context, comic, name)
        await self.context.storage.characters.set_weight(character.id, weight)
        trained = await self.context.storage.characters.lora(character.id)
        note = "" if trained else " (it applies once they are trained)"
        await interaction.response.send_message(
            f"⚖️ **{quote(character.name, 40)}**'s LoRA weight is now {weight:g}{note}.", allowed_mentions=NO_PINGS
        )

    @app_commands.command(name="list")
    async def character_list(self, interaction: discord.Interaction) -> None:
        """Show the characters of your active comic."""
        comic = await self.context.active(interaction)
        characters = await self.context.storage.comics.characters(comic.id)
        if not characters:
            raise UserFacingError(f"{comic_title(comic)} has no characters yet; add one with `/comic character add`.")
        trained = await self.context.trained(comic)
        references = await self.context.storage.characters.references_of([c.id for c in characters])
        strips = await reference_strips(self.context, characters)
        lines: list[str] = []
        files: list[discord.File] = []
        for character in characters:
            count = len(references.get(character.id, []))
            notes = [f"{count} reference picture{'s' if count != 1 else ''}"] if count else []
            if character.name in trained:
                notes.append(f"trained LoRA, weight {trained[character.name].weight:g}")
            strip = strips.get(character.id)
            if strip is not None and len(files) < MAX_FILES:
                filename = f"character{len(files) + 1}.png"
                files.append(discord.File(io.BytesIO(strip), filename=filename))
                notes.append(f"strip: {filename}")
            suffix = f" ({'; '.join(notes)})" if notes else ""
            lines.append(f"• **{quote(character.name, 40)}**: {quote(character.description, 300)}{suffix}")
        await interaction.response.send_message(
            shorten(f"Characters of {comic_title(comic)}:\n" + "\n".join(lines), CONTENT_MAX), ephemeral=True,
            files=files,
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
