"""Comic page geometry: where each panel frame goes on each page.

Pure functions, no drawing. A comic of N panels is split over pages of at most
``panels_per_page`` panels; each page is cut into rows of panels according to a
named layout:

``auto``
    A varied, comic-like arrangement chosen by panel count (1: splash, 3: one wide
    panel over two, 5: two-one-two, ...), with alternating widths in two-panel rows.
``grid``
    Uniform cells in one column (1-2 panels) or two columns; an odd last panel is
    centred in its row.
``strip``
    One full-width panel per row (a vertical strip).
``wide-top``
    One wide, taller panel on top and the rest in rows of two or three below.
``manga``
    The ``auto`` rows read right-to-left: the first panel of every row is the rightmost.

Every frame is an integer box ``(x0, y0, x1, y1)`` in page pixels with ``x1``/``y1``
exclusive (the same convention as :meth:`PIL.Image.Image.crop`). Frames never overlap,
are separated by at least one gutter, lie inside the outer margins, and are listed in
reading order. The first page can reserve a title banner above its panels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

Box = tuple[int, int, int, int]
LayoutName = Literal["auto", "grid", "strip", "wide-top", "manga"]

LAYOUTS: Final[tuple[str, ...]] = ("auto", "grid", "strip", "wide-top", "manga")
MAX_PANELS_PER_PAGE: Final = 6
A4_200DPI: Final[tuple[int, int]] = (1654, 2339)


@dataclass(frozen=True)
class PageGeometry:
    """Fixed measurements of a page, in pixels.

    The defaults suit an A4 page at 200 dpi (1654 x 2339 px); :meth:`for_page_size`
    scales them to any other page size.
    """

    page_size: tuple[int, int] = A4_200DPI
    margin: int = 80
    gutter: int = 36
    border: int = 6
    title_height: int = 200

    @classmethod
    def for_page_size(cls, page_size: tuple[int, int]) -> PageGeometry:
        """Geometry for ``page_size`` with margins, gutters and borders scaled to its width."""
        width, height = page_size
        if width < 300 or height < 300:
            raise ValueError(f"page_size must be at least 300x300 px, got {page_size!r}")
        scale = width / A4_200DPI[0]
        return cls(
            page_size=(width, height),
            margin=max(8, round(80 * scale)),
            gutter=max(6, round(36 * scale)),
            border=max(2, round(6 * scale)),
            title_height=max(40, round(200 * scale)),
        )

    @property
    def content_box(self) -> Box:
        """The area inside the outer margins."""
        width, height = self.page_size
        return (self.margin, self.margin, width - self.margin, height - self.margin)


@dataclass(frozen=True)
class PanelFrame:
    """One panel's place on a page: ``index`` is the panel's position in the whole comic."""

    index: int
    box: Box

    @property
    def size(self) -> tuple[int, int]:
        """Width and height of the frame in pixels."""
        x0, y0, x1, y1 = self.box
        return (x1 - x0, y1 - y0)


@dataclass(frozen=True)
class PageLayout:
    """The frames of one page, in reading order, and the title banner if this page has one."""

    page_number: int
    frames: tuple[PanelFrame, ...]
    title_box: Box | None


def check_layout(layout: str) -> LayoutName:
    """Return ``layout`` if it names a known layout, else raise ``ValueError``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    return layout  # type: ignore[return-value]


def paginate(n_panels: int, panels_per_page: int = MAX_PANELS_PER_PAGE) -> list[int]:
    """Split ``n_panels`` over as few pages as possible, as evenly as possible.

    Earlier pages take the extra panel: 7 panels at 6 per page give ``[4, 3]`` rather
    than a crowded page followed by a lone splash panel.
    """
    if n_panels < 1:
        raise ValueError(f"n_panels must be at least 1, got {n_panels}")
    if not 1 <= panels_per_page <= MAX_PANELS_PER_PAGE:
        raise ValueError(
            f"panels_per_page must be between 1 and {MAX_PANELS_PER_PAGE}, got {panels_per_page}"
        )
    n_pages = math.ceil(n_panels / panels_per_page)
    base, extra = divmod(n_panels, n_pages)
    return [base + 1 if page < extra else base for page in range(n_pages)]


def row_pattern(layout: LayoutName, n: int) -> list[int]:
    """Number of panels in each row, top to bottom, for ``n`` panels (1..6) on a page."""
    if not 1 <= n <= MAX_PANELS_PER_PAGE:
        raise ValueError(f"a page holds 1 to {MAX_PANELS_PER_PAGE} panels, got {n}")
    if layout in ("auto", "manga"):
        return {1: [1], 2: [1, 1], 3: [1, 2], 4: [2, 2], 5: [2, 1, 2], 6: [2, 2, 2]}[n]
    if layout == "grid":
        columns = 1 if n <= 2 else 2
        return [min(columns, n - start) for start in range(0, n, columns)]
    if layout == "strip":
        return [1] * n
    # wide-top
    below = {0: [], 1: [1], 2: [2], 3: [3], 4: [2, 2], 5: [3, 2]}[n - 1]
    return [1, *below]


def _split(start: int, length: int, weights: Sequence[float], gutter: int) -> list[tuple[int, int]]:
    """Cut ``length`` pixels from ``start`` into spans proportional to ``weights``, gutters between."""
    usable = length - gutter * (len(weights) - 1)
    if usable < len(weights) * 16:
        raise ValueError(f"page too small for {len(weights)} panels in {length} px")
    total = sum(weights)
    spans: list[tuple[int, int]] = []
    position = float(start)
    for i, weight in enumerate(weights):
        a = round(position)
        position += usable * weight / total
        b = start + length if i == len(weights) - 1 else round(position)
        spans.append((a, b))
        position += gutter
    return spans


def _split_even(start: int, length: int, count: int, gutter: int) -> list[tuple[int, int]]:
    """``count`` spans of exactly equal size, gutters between, the rounding slack split at both ends."""
    cell = (length - gutter * (count - 1)) // count
    if cell < 16:
        raise ValueError(f"page too small for {count} panels in {length} px")
    offset = start + (length - cell * count - gutter * (count - 1)) // 2
    return [(offset + i * (cell + gutter), offset + i * (cell + gutter) + cell) for i in range(count)]


def _row_weights(layout: LayoutName, pattern: list[int]) -> list[float]:
    """Relative heights of the rows."""
    if layout == "wide-top" and len(pattern) > 1:
        return [1.5] + [1.0] * (len(pattern) - 1)
    return [1.0] * len(pattern)


def _column_weights(layout: LayoutName, row: int, count: int) -> list[float]:
    """Relative widths of the panels in a row; ``auto`` and ``manga`` vary two-panel rows."""
    if layout in ("auto", "manga") and count == 2:
        return [1.2, 1.0] if row % 2 == 0 else [1.0, 1.2]
    return [1.0] * count


def layout_page(layout: LayoutName, n: int, area: Box, gutter: int) -> list[Box]:
    """Frames for ``n`` panels inside ``area``, in reading order."""
    x0, y0, x1, y1 = area
    pattern = row_pattern(layout, n)
    if layout == "grid":
        rows = _split_even(y0, y1 - y0, len(pattern), gutter)
    else:
        rows = _split(y0, y1 - y0, _row_weights(layout, pattern), gutter)
    frames: list[Box] = []
    for row, (count, (top, bottom)) in enumerate(zip(pattern, rows, strict=True)):
        if layout == "grid":
            columns = max(pattern)
            cells = _split_even(x0, x1 - x0, columns, gutter)
            if count < columns:  # centre a lone last cell, keeping the cell size
                cell_width = cells[0][1] - cells[0][0]
                left = x0 + (x1 - x0 - cell_width) // 2
                cells = [(left, left + cell_width)]
        else:
            cells = _split(x0, x1 - x0, _column_weights(layout, row, count), gutter)
        if layout == "manga":
            cells = cells[::-1]
        frames.extend((left, top, right, bottom) for left, right in cells)
    return frames


def layout_comic(
    n_panels: int,
    *,
    layout: str = "auto",
    panels_per_page: int = MAX_PANELS_PER_PAGE,
    geometry: PageGeometry | None = None,
    with_title: bool = True,
) -> list[PageLayout]:
    """Lay out a whole comic: the frames of every page and the title banner on page 1.

    ``layout`` is one of :data:`LAYOUTS`. Pages are numbered from 1; frames carry the
    panel's index in the whole comic, so ``frames[i].index`` tells which image goes there.
    """
    name = check_layout(layout)
    geometry = geometry or PageGeometry()
    counts = paginate(n_panels, panels_per_page)
    cx0, cy0, cx1, cy1 = geometry.content_box
    pages: list[PageLayout] = []
    first_index = 0
    for page_number, count in enumerate(counts, start=1):
        title_box: Box | None = None
        top = cy0
        if with_title and page_number == 1:
            title_box = (cx0, cy0, cx1, cy0 + geometry.title_height)
            top = title_box[3] + geometry.gutter
        boxes = layout_page(name, count, (cx0, top, cx1, cy1), geometry.gutter)
        frames = tuple(PanelFrame(first_index + i, box) for i, box in enumerate(boxes))
        pages.append(PageLayout(page_number, frames, title_box))
        first_index += count
    return pages


def smallest_frame_size(
    *,
    layout: str = "auto",
    panels_per_page: int = MAX_PANELS_PER_PAGE,
    geometry: PageGeometry | None = None,
) -> tuple[int, int]:
    """The smallest width and the smallest height any frame can get with these settings.

    Every real frame is at least this wide and this tall, so text that fits a frame of
    this size fits every panel of the comic, whatever its final panel count.
    """
    name = check_layout(layout)
    geometry = geometry or PageGeometry()
    widths: list[int] = []
    heights: list[int] = []
    for with_title in (True, False):
        for n in range(1, panels_per_page + 1):
            page = layout_comic(n, layout=name, panels_per_page=panels_per_page,
                                geometry=geometry, with_title=with_title)[0]
            widths.extend(frame.size[0] for frame in page.frames)
            heights.extend(frame.size[1] for frame in page.frames)
    return (min(widths), min(heights))


def frame_of(
    n_panels: int,
    index: int,
    *,
    layout: str = "auto",
    panels_per_page: int = MAX_PANELS_PER_PAGE,
    geometry: PageGeometry | None = None,
    with_title: bool = True,
) -> PanelFrame:
    """The frame panel ``index`` (0-based) fills in a comic of ``n_panels`` panels.

    A panel is drawn at its frame's shape: call this with the panel count the comic will have
    once the panel is added, so the new panel's frame is the one it will be rendered in.
    """
    if not 0 <= index < n_panels:
        raise ValueError(f"index must be between 0 and {n_panels - 1}, got {index}")
    for page in layout_comic(n_panels, layout=layout, panels_per_page=panels_per_page,
                             geometry=geometry, with_title=with_title):
        for frame in page.frames:
            if frame.index == index:
                return frame
    raise AssertionError("every panel has a frame")  # pragma: no cover
