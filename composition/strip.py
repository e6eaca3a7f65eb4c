"""A thumbnail strip: a character's reference pictures side by side in one small PNG."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps

#: Thumbnail side in pixels, and the gap between thumbnails.
THUMB_SIDE = 96
GAP = 4
BACKGROUND = (32, 34, 37)


def thumbnail_strip(images: Sequence[Image.Image | Path], *, side: int = THUMB_SIDE) -> Image.Image:
    """The images as square thumbnails (centre-cropped) in one row."""
    if not images:
        raise ValueError("a strip needs at least one image")
    strip = Image.new("RGB", (len(images) * side + (len(images) - 1) * GAP, side), BACKGROUND)
    for index, source in enumerate(images):
        if isinstance(source, Image.Image):
            picture = source.convert("RGB")
        else:
            with Image.open(source) as opened:
                picture = opened.convert("RGB")
        thumb = ImageOps.fit(picture, (side, side), Image.Resampling.LANCZOS)
        strip.paste(thumb, (index * (side + GAP), 0))
    return strip


def strip_png(images: Sequence[Image.Image | Path], *, side: int = THUMB_SIDE) -> bytes:
    """:func:`thumbnail_strip` encoded as PNG."""
    buffer = io.BytesIO()
    thumbnail_strip(images, side=side).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
