"""A small bar chart as a PNG (Pillow only): /stats draws images and jobs per day with it.

Each bar is one day; a second series, if given, is drawn as a thinner bar inside the first
(jobs inside images). The tallest bar's value and the first and last labels are written on it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Final

from PIL import Image, ImageDraw

from composition.comic_lettering import DEFAULT_BOLD_FONT, load_font

BACKGROUND: Final = (43, 45, 49)
BAR: Final = (88, 101, 242)
INNER: Final = (87, 242, 135)
TEXT: Final = (220, 221, 222)
GRID: Final = (70, 72, 78)


def bar_chart_png(
    labels: Sequence[str],
    values: Sequence[int],
    inner: Sequence[int] | None = None,
    *,
    title: str = "",
    size: tuple[int, int] = (480, 200),
) -> bytes:
    """The chart as PNG bytes: one bar per label, ``inner`` drawn inside each (same scale)."""
    if len(labels) != len(values) or (inner is not None and len(inner) != len(values)):
        raise ValueError("labels, values and inner must have one entry per bar")
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = load_font(DEFAULT_BOLD_FONT, 13)
    top, bottom, left, right = 24, height - 20, 8, width - 8
    peak = max([*values, *(inner or ()), 1])
    draw.line([(left, bottom), (right, bottom)], fill=GRID)
    if title:
        draw.text((left, 4), title, fill=TEXT, font=font)
    draw.text((right, 4), f"max {peak}", fill=TEXT, font=font, anchor="ra")
    count = max(1, len(values))
    slot = (right - left) / count
    for index, value in enumerate(values):
        x0 = left + index * slot + slot * 0.12
        x1 = left + (index + 1) * slot - slot * 0.12
        if value:
            draw.rectangle([x0, bottom - (bottom - top) * value / peak, x1, bottom - 1], fill=BAR)
        if inner is not None and inner[index]:
            pad = (x1 - x0) * 0.3
            draw.rectangle([x0 + pad, bottom - (bottom - top) * inner[index] / peak, x1 - pad, bottom - 1], fill=INNER)
    if labels:
        draw.text((left, height - 4), labels[0], fill=TEXT, font=font, anchor="ld")
        draw.text((right, height - 4), labels[-1], fill=TEXT, font=font, anchor="rd")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
