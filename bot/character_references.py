"""A result's image as a reference picture of a character (the "Add as reference" button and its menu).

The button asks which character (a menu of the member's active comic's characters); the choice
adds the image, already in the content-addressed image store, as that character's reference.
"""

from __future__ import annotations

import asyncio

from bot.add_to_comic import comic_title
from bot.embeds import shorten
from storage import Storage
from storage.characters import TooManyReferences
from storage.comics import CharacterRecord, ComicRecord
from storage.errors import NotFound


async def _editable_comic(storage: Storage, user_id: int, guild_id: int | None) -> ComicRecord | str:
    comic = await storage.comics.active(user_id, guild_id)
    if comic is None:
        return "You have no active comic here; start one with `/comic new` and add characters first."
    if await storage.comics.role(comic, user_id) == "viewer":
        return f"Only the owner and collaborators can change the characters of {comic_title(comic)}."
    return comic


async def _usable_image(storage: Storage, image_id: int) -> str | None:
    """Why the image can't be a reference, or None."""
    try:
        image = await storage.images.get(image_id)
    except NotFound:
        return "That image is no longer in the database."
    if image.flagged:
        return "That image was withheld by the safety checker; it can't be a reference picture."
    if image.deleted_at is not None:
        return "That result was deleted; its image can't be a reference picture."
    return None


async def reference_choices(
    storage: Storage, image_id: int, *, user_id: int, guild_id: int | None
) -> tuple[str, list[CharacterRecord]]:
    """What to ask the member, and the characters to choose from (none: the text says why)."""
    problem = await _usable_image(storage, image_id)
    if problem is not None:
        return problem, []
    comic = await _editable_comic(storage, user_id, guild_id)
    if isinstance(comic, str):
        return comic, []
    characters = await storage.comics.characters(comic.id)
    if not characters:
        return f"{comic_title(comic)} has no characters yet; add one with `/comic character add`.", []
    return f"Which character of {comic_title(comic)} is this a picture of?", characters[:25]


async def add_as_reference(
    storage: Storage, image_id: int, character_id: int, *, user_id: int, guild_id: int | None, max_references: int
) -> str:
    """Add the image as a reference of the character (of the member's active comic); what to tell them."""
    problem = await _usable_image(storage, image_id)
    if problem is not None:
        return problem
    comic = await _editable_comic(storage, user_id, guild_id)
    if isinstance(comic, str):
        return comic
    character = next((c for c in await storage.comics.characters(comic.id) if c.id == character_id), None)
    if character is None:
        return f"That character is no longer in {comic_title(comic)}."
    image = await storage.images.get(image_id)
    if not await asyncio.to_thread(storage.files.path_of(image.path).exists):
        return "That image's file is missing from disk."
    try:
        _, created = await storage.characters.add_reference(
            character.id, image.path, image.sha256, max_references=max_references
        )
    except TooManyReferences as error:
        return str(error)
    count = len(await storage.characters.references(character.id))
    name = shorten(character.name, 40)
    if not created:
        return f"**{name}** has this picture already ({count} reference pictures)."
    return f"🖼️ Added as a reference picture of **{name}** ({count} in all)."
