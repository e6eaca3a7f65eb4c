"""Comic pages and export files from stored panels: the blocking Pillow work behind ``show`` and ``export``.

Everything here reads files and encodes large images: call it through ``asyncio.to_thread``.
No Discord and no database: the cog gathers the panels and sends the files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

from bot.discord_limits import MAX_FILES_PER_MESSAGE, UPLOAD_HEADROOM
from composition.comic_export import ComicInfo, ExportFile, ExportFormat, fit_to_limit
from composition.comic_layout import frame_of, layout_comic, paginate, smallest_frame_size
from composition.comic_lettering import SpeakerSide, TextDoesNotFit, check_panel_text, layout_title
from composition.comic_render import PanelArt, RenderedPage, render_comic
from composition.upload_fit import split_into_uploads

#: A panel that has no picture yet (still being drawn, or its job failed) is a light grey frame.
PLACEHOLDER_COLOUR: Final = (225, 225, 225)
PLACEHOLDER_SIZE: Final = (512, 512)


@dataclass(frozen=True)
class PanelSource:
    """One panel to render: where its picture is (None: not drawn yet) and its text."""

    image_path: Path | None
    caption: str | None
    dialogue: str | None
    speaker_side: SpeakerSide


def page_count(panels: int, panels_per_page: int) -> int:
    """How many pages ``panels`` panels fill."""
    return len(paginate(panels, panels_per_page)) if panels else 0


def check_text(caption: str | None, dialogue: str | None, *, layout: str, panels_per_page: int) -> None:
    """Raise :class:`TextDoesNotFit` if the text would not fit the smallest panel this comic can have."""
    frame = smallest_frame_size(layout=layout, panels_per_page=panels_per_page)
    check_panel_text(caption, dialogue, frame_size=frame)


def check_title(title: str, *, layout: str, panels_per_page: int) -> None:
    """Raise :class:`TextDoesNotFit` if the title would not fit the title banner of page 1."""
    box = layout_comic(1, layout=layout, panels_per_page=panels_per_page)[0].title_box
    if box is not None:
        layout_title(title, box)


def frame_shape(title: str, n_panels: int, index: int, *, layout: str, panels_per_page: int) -> tuple[int, int]:
    """The (width, height) of the frame panel ``index`` (0-based) fills in a comic of ``n_panels`` panels,
    laid out as :func:`render_pages` lays it out."""
    frame = frame_of(n_panels, index, layout=layout, panels_per_page=panels_per_page, with_title=bool(title.strip()))
    return frame.size


def _load(path: Path | None, frame: tuple[int, int] | None = None) -> Image.Image:
    """A panel's picture, decoded no larger than needed to cover ``frame`` (None: a 1×1 stand-in).

    A JPEG is decoded at a reduced scale (``draft``); any other image is reduced by a whole factor
    right after decoding, so a comic of many large panels holds only frame-sized pictures.
    """
    if frame is None:
        return Image.new("RGB", (1, 1), PLACEHOLDER_COLOUR)
    if path is None:
        return Image.new("RGB", PLACEHOLDER_SIZE, PLACEHOLDER_COLOUR)
    try:
        with Image.open(path) as image:
            image.draft("RGB", frame)
            factor = min(image.width // max(frame[0], 1), image.height // max(frame[1], 1))
            picture = image.convert("RGB")
        return picture.reduce(factor) if factor >= 2 else picture
    except (OSError, ValueError, Image.DecompressionBombError):  # a missing or broken file must not stop the comic
        return Image.new("RGB", PLACEHOLDER_SIZE, PLACEHOLDER_COLOUR)


def render_pages(
    title: str,
    panels: Sequence[PanelSource],
    *,
    layout: str,
    panels_per_page: int,
    only_page: int | None = None,
) -> list[RenderedPage]:
    """Render the comic's pages, or just page ``only_page`` (raises :class:`TextDoesNotFit` before drawing).

    Only the pictures of the pages drawn are read, each decoded at about its frame's size.
    """
    frames: dict[int, tuple[int, int]] = {}
    pages = layout_comic(len(panels), layout=layout, panels_per_page=panels_per_page, with_title=bool(title.strip()))
    for page in pages:
        if only_page is None or page.page_number == only_page:
            frames.update((frame.index, frame.size) for frame in page.frames)
    art = [
        PanelArt(_load(panel.image_path, frames.get(index)), caption=panel.caption, dialogue=panel.dialogue,
                 speaker_side=panel.speaker_side)
        for index, panel in enumerate(panels)
    ]
    return render_comic(
        title, art, layout=layout, panels_per_page=panels_per_page,
        only_pages=None if only_page is None else {only_page},
    )


def export_files(
    pages: Sequence[RenderedPage],
    *,
    fmt: ExportFormat,
    upload_limit: int,
    info: ComicInfo,
    basename: str,
) -> list[ExportFile]:
    """The comic as ``fmt`` files, each small enough to upload (re-encoded or split as needed)."""
    return fit_to_limit(
        pages,
        fmt=fmt,
        limit_bytes=max(upload_limit - UPLOAD_HEADROOM, 1),
        title=info.title,
        author=info.writer,
        info=info,
        basename=basename,
    )


def upload_batches(files: Sequence[ExportFile], upload_limit: int) -> list[list[ExportFile]]:
    """Group files, in order, into messages of at most ten files and ``upload_limit`` bytes (less overhead)."""
    by_name = {file.filename: file for file in files}
    groups = split_into_uploads(
        [(file.filename, file.data) for file in files], max(upload_limit - UPLOAD_HEADROOM, 1), MAX_FILES_PER_MESSAGE
    )
    return [[by_name[name] for name, _ in group] for group in groups]


def file_basename(title: str, comic_id: int) -> str:
    """A safe file name stem for a comic: its title in lowercase ASCII words, and its id."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    stem = "-".join(words)[:40].strip("-")
    return f"{stem}-{comic_id}" if stem else f"comic-{comic_id}"


__all__ = [
    "PanelSource",
    "TextDoesNotFit",
    "check_text",
    "check_title",
    "export_files",
    "file_basename",
    "frame_shape",
    "page_count",
    "render_pages",
    "upload_batches",
]
