"""/comic show and export: the active comic rendered into lettered pages, posted or exported as files.

The Pillow work runs in a worker thread (:mod:`._pages`); this module gathers the panels and
sends the files within the interaction's upload limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import io
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import discord
from discord import app_commands

from bot.add_to_comic import comic_title
from bot.cogs.comic import _pages
from bot.cogs.comic._context import NO_PINGS, ComicContext
from bot.cogs.comic._panels import speaker_sides
from bot.discord_limits import CONTENT_MAX
from bot.embeds import shorten
from bot.errors import UserFacingError
from composition.comic_export import ComicInfo, ExportFile
from composition.comic_lettering import TextDoesNotFit
from composition.comic_render import RenderedPage
from storage.comics import CharacterRecord, ComicRecord, PanelRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

ExportChoice = Literal["png", "pdf", "cbz"]


class PageCommands(app_commands.Group, name="comic", description="Make comics from generated panels"):
    """The commands that render pages; the cog moves them into its one ``/comic`` group."""

    def __init__(self, context: ComicContext, client: discord.Client) -> None:
        super().__init__()
        self.context = context
        self.client = client

    @app_commands.command(name="show")
    @app_commands.describe(page="Which page (default: the first)")
    async def show(self, interaction: discord.Interaction, page: app_commands.Range[int, 1, 100] = 1) -> None:
        """Post a rendered page of your active comic."""
        comic = await self.context.active(interaction)
        panels = await self._panels_to_render(comic)
        pages_total = _pages.page_count(len(panels), self.context.settings.panels_per_page)
        if page > pages_total:
            raise UserFacingError(
                f"{comic_title(comic)} has {pages_total} page(s); pick a page from 1 to {pages_total}."
            )
        await interaction.response.defer(thinking=True)
        try:
            rendered, note = await self._render(comic, panels, only_page=page)
        except TextDoesNotFit as error:
            await interaction.followup.send(error.user_message)
            return
        files = await _in_render_pool(
            _pages.export_files, rendered, fmt="png", upload_limit=interaction.filesize_limit,
            info=ComicInfo(title=comic.title, writer=""),
            basename=f"{_pages.file_basename(comic.title, comic.id)}-p{page}",
        )
        text = f"{comic_title(comic)}, page {page} of {pages_total} ({len(panels)} panels){note}"
        await interaction.followup.send(shorten(text, CONTENT_MAX), files=[_file(files[0])], allowed_mentions=NO_PINGS)

    @app_commands.command(name="export")
    @app_commands.describe(format="png: an image per page; pdf: one document; cbz: a comic-book archive")
    async def export(self, interaction: discord.Interaction, format: ExportChoice) -> None:
        """Export your active comic as PNG pages, a PDF or a CBZ."""
        comic = await self.context.active(interaction)
        panels = await self._panels_to_render(comic)
        await interaction.response.defer(thinking=True)
        try:
            rendered, note = await self._render(comic, panels)
        except TextDoesNotFit as error:
            await interaction.followup.send(error.user_message)
            return
        info = await self._info(interaction, comic, panels)
        limit = interaction.filesize_limit
        try:
            files = await _in_render_pool(
                _pages.export_files, rendered, fmt=format, upload_limit=limit, info=info,
                basename=_pages.file_basename(comic.title, comic.id),
            )
        except ValueError:
            log.exception("export of comic %s to %s failed", comic.id, format)
            await interaction.followup.send("This server's upload limit is too small for this comic's pages.")
            return
        split = f", in {len(files)} files" if format != "png" and len(files) > 1 else ""
        head = f"📦 {comic_title(comic)} as {format.upper()}: {len(rendered)} page(s){split}{note}"
        batches = _pages.upload_batches(files, limit)
        for index, batch in enumerate(batches):
            content = head if index == 0 else f"{comic_title(comic)} ({index + 1}/{len(batches)})"
            await interaction.followup.send(
                shorten(content, CONTENT_MAX), files=[_file(f) for f in batch], allowed_mentions=NO_PINGS
            )

    async def _panels_to_render(self, comic: ComicRecord) -> list[PanelRecord]:
        panels = await self.context.storage.comics.panels(comic.id)
        if not panels:
            raise UserFacingError(f"{comic_title(comic)} has no panels yet; add one with `/comic panel`.")
        return panels

    async def _render(
        self, comic: ComicRecord, panels: Sequence[PanelRecord], *, only_page: int | None = None
    ) -> tuple[list[RenderedPage], str]:
        """Render every page, or only ``only_page`` (on the render pool); also a note on blank or redrawn panels."""
        sources = []
        blank: list[str] = []
        redrawing: list[str] = []
        withheld: list[str] = []
        sides = speaker_sides([(p.speaker, p.dialogue) for p in panels])
        for panel, side in zip(panels, sides, strict=True):
            image = await self.context.current_image(panel)
            if image is not None and image.flagged:  # never shown outside its own (withheld) result
                withheld.append(str(panel.position))
                image = None
            elif image is None:
                blank.append(str(panel.position))
            elif panel.drawing:
                redrawing.append(str(panel.position))
            path = self.context.storage.files.path_of(image.path) if image is not None else None
            sources.append(_pages.PanelSource(path, panel.caption, panel.dialogue, side))
        pages = await _in_render_pool(
            _pages.render_pages, comic.title, sources, layout=comic.layout,
            panels_per_page=self.context.settings.panels_per_page, only_page=only_page,
        )
        notes = []
        if blank:
            notes.append(f"panel {', '.join(blank)} not drawn yet (shown blank)")
        if redrawing:
            notes.append(f"panel {', '.join(redrawing)} being redrawn")
        if withheld:
            notes.append(f"panel {', '.join(withheld)} withheld by the safety checker (shown blank)")
        return pages, (f"\n-# {'; '.join(notes)}" if notes else "")

    async def _info(self, interaction: discord.Interaction, comic: ComicRecord, panels: list[PanelRecord]) -> ComicInfo:
        """The metadata an export carries: title, writer (the owner), summary, notes."""
        return ComicInfo(
            title=comic.title,
            writer=await self._member_name(interaction, comic.owner_id),
            summary=_summary(panels, await self.context.storage.comics.characters(comic.id)),
            notes=f"Made with panelbot; comic #{comic.id}, {len(panels)} panels.",
            manga=comic.layout == "manga",
        )

    async def _member_name(self, interaction: discord.Interaction, user_id: int) -> str:
        if interaction.user.id == user_id:
            return interaction.user.display_name
        member = interaction.guild.get_member(user_id) if interaction.guild else None
        if member is not None:
            return member.display_name
        try:
            user = self.client.get_user(user_id) or await self.client.fetch_user(user_id)
        except discord.HTTPException:
            return f"member {user_id}"
        return user.display_name


#: Comic renders and exports run here, at most this many at once; the default executor (and with
#: it the acknowledgement path's small jobs) never waits behind a long render.
RENDER_WORKERS = 2
_RENDER_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=RENDER_WORKERS, thread_name_prefix="comic-render")


async def _in_render_pool(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking render or export on the dedicated render pool."""
    return await asyncio.get_running_loop().run_in_executor(_RENDER_POOL, functools.partial(function, *args, **kwargs))


def _file(export: ExportFile) -> discord.File:
    return discord.File(io.BytesIO(export.data), filename=export.filename)


def _summary(panels: Sequence[PanelRecord], characters: Sequence[CharacterRecord]) -> str:
    """A CBZ summary: the captions in reading order (the story's narration), then who is in it."""
    captions = " ".join(p.caption for p in panels if p.caption)
    names = [c.name for c in characters]
    parts = [captions] if captions else [f"A comic of {len(panels)} panels."]
    if names:
        parts.append("Characters: " + ", ".join(names) + ".")
    return shorten(" ".join(parts), 2000)
