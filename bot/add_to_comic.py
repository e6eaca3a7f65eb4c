"""📖 on a result (the reaction or the button): its image becomes the next panel of the member's active comic.

One implementation for both doors; it answers with the text to tell the member.
"""

from __future__ import annotations

from discord.utils import escape_markdown

from bot import embeds
from bot.emojis import ADD_TO_COMIC
from rules.request import GenerationRequest
from storage import Storage
from storage.comics import ComicRecord, ComicStorageError, NewPanel, PanelPlan, PanelRecord
from storage.errors import NotFound


def comic_title(comic: ComicRecord) -> str:
    """A comic's title as the bot writes it in messages: bold, escaped, at most 100 characters."""
    return f"**{escape_markdown(embeds.shorten(comic.title, 100))}**"


async def add_image_to_comic(
    storage: Storage, image_id: int, *, user_id: int, guild_id: int | None, max_panels: int
) -> str:
    """Add the image as the next panel of the member's active comic; what to tell them."""
    comic = await storage.comics.active(user_id, guild_id)
    if comic is None:
        return "You have no active comic here; start one with `/comic new` first."
    if await storage.comics.role(comic, user_id) == "viewer":
        return f"Only the owner and collaborators can add panels to {comic_title(comic)}."
    try:
        image = await storage.images.get(image_id)
    except NotFound:
        return "That image is no longer in the database."
    if image.flagged:
        return "That image was withheld by the safety checker; it can't go into a comic."
    if image.deleted_at is not None:
        return "That result was deleted; its image can't go into a comic."
    prompt = GenerationRequest.from_json(image.params_json).prompt

    def plan(stored: PanelRecord) -> PanelPlan:
        return PanelPlan(seed=image.seed, params_json=image.params_json, job=None)

    try:
        change = await storage.comics.add_panel(
            comic.id, NewPanel(prompt, image_id=image.id), plan, max_panels=max_panels
        )
    except ComicStorageError as error:
        return str(error)
    return f"{ADD_TO_COMIC} Added as panel {change.after.position} of {comic_title(comic)}."
