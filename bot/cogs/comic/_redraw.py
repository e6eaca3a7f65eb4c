"""Redraw a panel at its frame's shape: the button ``/comic move`` offers when a panel's frame changed shape.

A panel is drawn at the shape of the frame it fills (:mod:`rules.frame_size`). Moving panels can
put a picture into a frame of another shape, where cover-cropping would cut part of it away; the
move's reply then carries one Redraw button per such panel. The button is a
:class:`discord.ui.DynamicItem` whose custom_id holds the panel's id, so it works after a restart;
a click looks the panel up where it is *now*, and redraws it with the same seed and prompt at the
shape of its current frame.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from typing import Any

import discord
from discord.ext import commands

from bot.add_to_comic import comic_title
from bot.cogs.comic._context import ComicContext
from bot.cogs.comic._panels import take_of, with_take
from bot.errors import UserFacingError, reply_ephemeral
from bot.jobs import JobOrigin
from rules.frame_size import shape_differs
from rules.request import GenerationRequest
from storage.comics import ComicRecord, ComicStorageError, PanelPlan, PanelRecord

#: At most this many Redraw buttons on one reply (one row).
MAX_REDRAW_BUTTONS = 5

_CONTEXTS: weakref.WeakKeyDictionary[discord.Client, ComicContext] = weakref.WeakKeyDictionary()


class RedrawButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"comic:redraw:(?P<panel_id>[0-9]+)"):
    """Redraw one panel at the shape of the frame it fills now."""

    def __init__(self, panel_id: int, *, label: str = "Redraw to fit") -> None:
        super().__init__(discord.ui.Button(label=label, style=discord.ButtonStyle.primary,
                                           custom_id=f"comic:redraw:{panel_id}"))
        self.panel_id = panel_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RedrawButton:
        """Rebuild the button from a click's custom_id."""
        return cls(int(match["panel_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Queue the redraw; the click is answered with its status message (or a short refusal)."""
        context = _CONTEXTS.get(interaction.client)
        try:
            if context is None:
                raise UserFacingError("This button doesn't work right now; try again shortly.")
            await redraw_to_fit(context, interaction, self.panel_id)
        except UserFacingError as error:
            await reply_ephemeral(interaction, str(error))


def register(bot: commands.Bot, context: ComicContext) -> None:
    """Route this bot's Redraw clicks to ``context`` (the comic cog calls it on load)."""
    _CONTEXTS[bot] = context
    bot.add_dynamic_items(RedrawButton)


def unregister(bot: commands.Bot) -> None:
    """Stop routing Redraw clicks (the comic cog calls it on unload)."""
    bot.remove_dynamic_items(RedrawButton)
    _CONTEXTS.pop(bot, None)


async def misfits(context: ComicContext, comic: ComicRecord, panels: Sequence[PanelRecord]) -> list[PanelRecord]:
    """The drawn ``panels`` whose picture's shape differs from their frame's by more than 15%."""
    count = await context.storage.comics.panel_count(comic.id)
    found: list[PanelRecord] = []
    for panel in panels:
        image = await context.current_image(panel) if panel.job_id is not None else None
        if image is None:
            continue
        if shape_differs((image.width, image.height), context.frame(comic, count, panel.position)):
            found.append(panel)
    return found


def redraw_view(panels: Sequence[PanelRecord]) -> discord.ui.View | None:
    """A view with a Redraw button per panel (the first :data:`MAX_REDRAW_BUTTONS`), or None for none."""
    if not panels:
        return None
    view = discord.ui.View(timeout=None)
    for panel in panels[:MAX_REDRAW_BUTTONS]:
        view.add_item(RedrawButton(panel.id, label=f"Redraw panel {panel.position} to fit"))
    return view


async def redraw_to_fit(context: ComicContext, interaction: discord.Interaction, panel_id: int) -> None:
    """Redraw the panel with this id at the shape of its current frame (same prompt, seed and take)."""
    comics = context.storage.comics
    panel = await comics.panel_by_id(panel_id)
    if panel is None:
        raise UserFacingError("That panel was removed.")
    comic = await comics.get(panel.comic_id)
    if await comics.role(comic, interaction.user.id) == "viewer":
        raise UserFacingError(f"Only the owner and collaborators can redraw panels of {comic_title(comic)}.")
    if panel.job_id is None:
        raise UserFacingError("That panel was added from an existing picture; it has no drawing to redo.")
    count = await comics.panel_count(comic.id)
    await context.check_capacity(interaction)
    origin = JobOrigin.of(interaction)

    def plan(stored: PanelRecord) -> PanelPlan:
        if stored.id != panel_id:
            raise ComicStorageError("That panel moved again just now; press the button again.")
        old = GenerationRequest.from_json(stored.params_json)
        width, height = context.draw_size(comic, count, stored.position)
        drawn = with_take(old, comic_id=comic.id, comic_seed=comic.seed, panel_id=stored.id, take=take_of(old))
        drawn = drawn.replace(width=width, height=height, seed=stored.seed)
        return PanelPlan(drawn.seed, drawn.to_json(), origin.new_job(drawn))

    try:
        change = await comics.update_panel(comic.id, panel.position, {}, plan)
    except ComicStorageError as error:
        raise UserFacingError(str(error)) from None
    assert change.before is not None and change.job_id is not None
    context.stop_drawing(change.before)
    request = await context.storage.jobs.get(change.job_id)
    size = GenerationRequest.from_json(request.request_json)
    await context.start_panel_job(
        interaction, change.job_id,
        f"📐 Panel {change.after.position} of {comic_title(comic)} is redrawn to fit its frame "
        f"({size.width}x{size.height})",
    )
