"""Render a comic: panel images cropped into their frames, lettered, on white pages.

:func:`render_comic` is the entry point. It lays the panels out with
:mod:`composition.comic_layout`, fits all text first with :mod:`composition.comic_lettering`
(so a :class:`~composition.comic_lettering.TextDoesNotFit` is raised before anything is
drawn), then draws each page. Every :class:`RenderedPage` carries the geometry it was
drawn with, so callers and tests can check where things went.

Rendering is CPU work of a few hundred milliseconds per page: call it from a worker
thread or an executor, never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageOps

from composition.comic_layout import (
    A4_200DPI,
    MAX_PANELS_PER_PAGE,
    Box,
    PageGeometry,
    PanelFrame,
    check_layout,
    layout_comic,
)
from composition.comic_lettering import (
    SPEAKER_SIDES,
    LetteringStyle,
    PlacedText,
    ShapeName,
    SpeakerSide,
    TextKind,
    corner_radius,
    layout_panel_text,
    layout_title,
    load_font,
)

log = logging.getLogger(__name__)

PAGE_BACKGROUND = (255, 255, 255)
BORDER_COLOUR = (0, 0, 0)
_SUPERSAMPLE = 3  # bubbles are drawn at 3x and scaled down for smooth edges


@dataclass(frozen=True)
class PanelArt:
    """One panel: its picture and the text lettered onto it."""

    image: Image.Image
    caption: str | None = None
    dialogue: str | None = None
    speaker_side: SpeakerSide = "left"


@dataclass(frozen=True)
class TextBox:
    """Where one caption or speech bubble went on a page (page pixels).

    ``shape_box`` is the fill area of the caption rectangle or bubble (``shape``: 'rectangle',
    'ellipse' or 'rounded'); ``text_box`` bounds the drawn glyphs and ``line_boxes`` each
    line's glyphs; ``tail`` is a bubble's tail as (base, tip, base), None for captions.
    """

    panel_index: int
    kind: TextKind
    shape: ShapeName
    shape_box: Box
    text_box: Box
    line_boxes: tuple[Box, ...]
    font_size: int
    tail: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None
    speaker_side: SpeakerSide | None

    @property
    def tail_tip(self) -> tuple[int, int] | None:
        """The point of the tail, or None."""
        return self.tail[1] if self.tail else None


@dataclass(frozen=True)
class RenderedPage:
    """One finished page and the geometry it was drawn with.

    ``frames`` are in reading order and carry the panel's index in the whole comic;
    ``title_box`` is the title banner (page 1 only, when there is a title).
    """

    page_number: int
    image: Image.Image
    frames: tuple[PanelFrame, ...]
    text_boxes: tuple[TextBox, ...]
    title_box: Box | None


def _to_text_box(panel_index: int, item: PlacedText) -> TextBox:
    return TextBox(
        panel_index=panel_index,
        kind=item.kind,
        shape=item.shape,
        shape_box=item.shape_box,
        text_box=item.text_box,
        line_boxes=item.line_boxes,
        font_size=item.block.font_size,
        tail=item.tail,
        speaker_side=item.speaker_side,
    )


def _flatten(image: Image.Image) -> Image.Image:
    """RGB version of any image, with transparency composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*PAGE_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def crop_to_frame(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale ``image`` to cover ``size`` and centre-crop the overflow: never stretched."""
    return ImageOps.fit(_flatten(image), size, method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def _check_inputs(title: str, panels: Sequence[PanelArt], page_size: tuple[int, int]) -> None:
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    if len(panels) == 0:
        raise ValueError("panels must hold at least one PanelArt, got none")
    for i, panel in enumerate(panels):
        if not isinstance(panel, PanelArt):
            raise TypeError(f"panels[{i}] must be a PanelArt, got {type(panel).__name__}")
        if panel.image.width < 1 or panel.image.height < 1:
            raise ValueError(f"panels[{i}].image is empty ({panel.image.size})")
        if panel.speaker_side not in SPEAKER_SIDES:
            raise ValueError(f"panels[{i}].speaker_side must be one of {', '.join(SPEAKER_SIDES)}; "
                             f"got {panel.speaker_side!r}")
    if len(page_size) != 2 or min(page_size) < 300:
        raise ValueError(f"page_size must be (width, height) of at least 300 px each, got {page_size!r}")


def render_comic(
    title: str,
    panels: Sequence[PanelArt],
    *,
    layout: str = "auto",
    page_size: tuple[int, int] = A4_200DPI,
    panels_per_page: int = MAX_PANELS_PER_PAGE,
    font_path: Path | None = None,
    only_pages: Collection[int] | None = None,
) -> list[RenderedPage]:
    """Lay out, crop, letter and draw a comic; one :class:`RenderedPage` per page.

    ``only_pages`` (page numbers from 1) draws just those pages, the others being left out of
    the result; every text is still fitted first, and panels on pages not drawn are never read,
    so their ``image`` may be a 1×1 stand-in.

    ``layout`` is one of ``auto``, ``grid``, ``strip``, ``wide-top``, ``manga``; panels beyond
    ``panels_per_page`` flow onto further pages (balanced, see
    :func:`composition.comic_layout.paginate`). The title banner is on page 1 only and is
    left out for an empty title. ``font_path`` replaces the bundled Comic Neue for all text.

    Raises :class:`~composition.comic_lettering.TextDoesNotFit` (before drawing anything)
    when a caption, dialogue or the title is too long, and ``ValueError``/``TypeError``
    for bad arguments.
    """
    _check_inputs(title, panels, page_size)
    name = check_layout(layout)
    geometry = PageGeometry.for_page_size(page_size)
    style = LetteringStyle().scaled(page_size[0] / A4_200DPI[0]).with_font(font_path)
    load_font(style.regular_font, 12)
    load_font(style.bold_font, 12)
    caption_corner: Literal["left", "right"] = "right" if name == "manga" else "left"

    page_layouts = layout_comic(len(panels), layout=name, panels_per_page=panels_per_page,
                                geometry=geometry, with_title=bool(title.strip()))
    # Fit every text before drawing: a text that does not fit fails fast.
    lettering: list[list[tuple[int, PlacedText]]] = []
    title_item: PlacedText | None = None
    for page in page_layouts:
        items: list[tuple[int, PlacedText]] = []
        if page.title_box is not None:
            title_item = layout_title(title, page.title_box, style=style)
        for frame in page.frames:
            panel = panels[frame.index]
            placed = layout_panel_text(panel.caption, panel.dialogue, frame.box,
                                       speaker_side=panel.speaker_side, border=geometry.border,
                                       style=style, caption_corner=caption_corner)
            items.extend((frame.index, item) for item in placed)
        lettering.append(items)

    pages: list[RenderedPage] = []
    for page, items in zip(page_layouts, lettering, strict=True):
        if only_pages is not None and page.page_number not in only_pages:
            continue
        image = Image.new("RGB", page_size, PAGE_BACKGROUND)
        draw = ImageDraw.Draw(image)
        for frame in page.frames:
            x0, y0, x1, y1 = frame.box
            image.paste(crop_to_frame(panels[frame.index].image, frame.size), (x0, y0))
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=BORDER_COLOUR, width=geometry.border)
        for _, item in items:
            if item.kind == "caption":
                draw_caption(image, item, style)
            else:
                draw_bubble(image, item, style)
        if page.title_box is not None and title_item is not None:
            _draw_title(image, title_item, geometry, style)
        if len(page_layouts) > 1:
            _draw_page_number(image, page.page_number, geometry, style)
        pages.append(RenderedPage(
            page_number=page.page_number,
            image=image,
            frames=page.frames,
            text_boxes=tuple(_to_text_box(index, item) for index, item in items),
            title_box=page.title_box,
        ))
    log.debug("rendered %d panels on %d pages (%s layout)", len(panels), len(pages), name)
    return pages


def draw_text(image: Image.Image, item: PlacedText, style: LetteringStyle) -> None:
    """Draw the glyphs of ``item`` (not its shape)."""
    draw = ImageDraw.Draw(image)
    font = load_font(item.block.font_path, item.block.font_size)
    for line, origin in zip(item.block.lines, item.line_origins, strict=True):
        draw.text(origin, line, font=font, fill=style.ink, anchor=item.block.anchor)


def draw_caption(image: Image.Image, item: PlacedText, style: LetteringStyle) -> None:
    """Draw a caption box (fill, outline just outside the fill area) and its text."""
    x0, y0, x1, y1 = item.shape_box
    o = style.outline
    draw = ImageDraw.Draw(image)
    draw.rectangle((x0 - o, y0 - o, x1 + o - 1, y1 + o - 1), fill=style.ink)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=style.caption_fill)
    draw_text(image, item, style)


def draw_bubble(image: Image.Image, item: PlacedText, style: LetteringStyle) -> None:
    """Draw a speech bubble joined seamlessly to its tail, outlined and anti-aliased, then its text.

    The outer (ink) shape is the bubble grown by the outline width plus the tail stroked
    at twice that width; the inner (paper) shape is the bubble and the bare tail on top.
    Both are drawn as masks at 3x and scaled down.
    """
    x0, y0, x1, y1 = item.shape_box
    o = style.outline
    xs = [x0, x1, *(p[0] for p in item.tail or ())]
    ys = [y0, y1, *(p[1] for p in item.tail or ())]
    pad = 2 * o + 2
    left, top, right, bottom = min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad
    k = _SUPERSAMPLE

    def local(x: float, y: float) -> tuple[float, float]:
        return ((x - left) * k, (y - top) * k)

    outer = Image.new("L", ((right - left) * k, (bottom - top) * k), 0)
    inner = Image.new("L", outer.size, 0)
    draw_outer, draw_inner = ImageDraw.Draw(outer), ImageDraw.Draw(inner)
    grown = [*local(x0 - o, y0 - o), *local(x1 + o, y1 + o)]
    exact = [*local(x0, y0), *local(x1, y1)]
    if item.shape == "rounded":
        radius = corner_radius(item.shape_box, item.block.font_size)
        draw_outer.rounded_rectangle(grown, radius=(radius + o) * k, fill=255)
        draw_inner.rounded_rectangle(exact, radius=radius * k, fill=255)
    else:
        draw_outer.ellipse(grown, fill=255)
        draw_inner.ellipse(exact, fill=255)
    if item.tail is not None:
        tail = [local(*point) for point in item.tail]
        draw_outer.polygon(tail, fill=255)
        draw_outer.line([*tail, tail[0]], fill=255, width=2 * o * k, joint="curve")
        draw_inner.polygon(tail, fill=255)
    size = (right - left, bottom - top)
    outer = outer.resize(size, Image.Resampling.BOX)
    inner = inner.resize(size, Image.Resampling.BOX)
    image.paste(style.ink, (left, top, right, bottom), outer)
    image.paste(style.bubble_fill, (left, top, right, bottom), inner)
    draw_text(image, item, style)


def _draw_title(image: Image.Image, item: PlacedText, geometry: PageGeometry, style: LetteringStyle) -> None:
    """The title, centred in its banner, over a short rule."""
    draw_text(image, item, style)
    x0, _, x1, y1 = item.shape_box
    text_left, _, text_right, text_bottom = item.text_box
    rule_half = max((text_right - text_left) // 2 + geometry.gutter, (x1 - x0) // 5)
    centre = (x0 + x1) // 2
    rule_y = min(y1 - geometry.border, text_bottom + (y1 - text_bottom) // 2)
    ImageDraw.Draw(image).rectangle(
        (centre - rule_half, rule_y, centre + rule_half, rule_y + geometry.border - 1), fill=BORDER_COLOUR
    )


def _draw_page_number(image: Image.Image, number: int, geometry: PageGeometry, style: LetteringStyle) -> None:
    """A small page number centred in the bottom margin."""
    font = load_font(style.regular_font, style.caption_sizes[1])
    width, height = image.size
    ImageDraw.Draw(image).text((width // 2, height - geometry.margin // 2), str(number),
                               font=font, fill=style.ink, anchor="mm")
