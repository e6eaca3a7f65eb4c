"""Comic pages for the studio, rendered by the same code as /comic show and /comic export.

Reads the panels from the archive, lays speakers out as the bot does, and renders with
:func:`bot.cogs.comic._pages.render_pages`; exports with :mod:`composition.comic_export`.
"""

from __future__ import annotations

import io
from pathlib import Path

from bot.cogs.comic._pages import PanelSource, file_basename, render_pages
from bot.cogs.comic._panels import speaker_sides
from composition.comic_export import ComicInfo, export_cbz, export_pdf
from composition.comic_render import RenderedPage
from studio.archive import Archive


def _render(archive: Archive, comic_id: int, images_dir: Path, panels_per_page: int) -> list[RenderedPage]:
    comic = archive.comic(comic_id)
    if comic is None:
        return []
    panels = archive.panels(comic_id)
    if not panels:
        return []
    sides = speaker_sides([(p.speaker, p.dialogue) for p in panels])
    sources = [
        PanelSource(images_dir / p.image_path if p.image_path else None, p.caption, p.dialogue, side)
        for p, side in zip(panels, sides, strict=True)
    ]
    return render_pages(comic.title, sources, layout=comic.layout, panels_per_page=panels_per_page)


def pages_png(archive: Archive, comic_id: int, images_dir: Path, panels_per_page: int) -> list[bytes]:
    """Every page of the comic as PNG bytes (empty: no such comic, or no panels)."""
    out = []
    for page in _render(archive, comic_id, images_dir, panels_per_page):
        buffer = io.BytesIO()
        page.image.save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def export(archive: Archive, comic_id: int, images_dir: Path, panels_per_page: int, fmt: str) -> bytes:
    """The comic as one PDF or CBZ file."""
    comic = archive.comic(comic_id)
    pages = _render(archive, comic_id, images_dir, panels_per_page)
    if comic is None or not pages:
        return b""
    if fmt == "pdf":
        return export_pdf(pages, title=comic.title, author=f"member {comic.owner_id}")
    info = ComicInfo(
        title=comic.title, writer=f"member {comic.owner_id}",
        notes=f"Made with panelbot; comic #{comic.id}, {comic.panel_count} panels.", manga=comic.layout == "manga",
    )
    return export_cbz(pages, info)


def basename(title: str, comic_id: int) -> str:
    """The download's file name stem (as /comic export names it)."""
    return file_basename(title, comic_id)
