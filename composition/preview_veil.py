"""Veiling progress previews: colours and layout stay, every detail goes.

Previews are posted while a job runs, before the safety checker has seen the finished image; with
a preview decoder they are sharp. Outside channels where flagged images are allowed, a preview is
shrunk to a few pixels and blurred back to its size, so it shows that something is happening and
roughly where, never what. Blocking Pillow work: call it from a thread.
"""

from __future__ import annotations

import io

from PIL import Image, ImageFilter

#: The long side, in pixels, a veiled preview keeps of its detail.
VEIL_SIDE = 12


def veil_preview(png: bytes, *, side: int = VEIL_SIDE) -> bytes:
    """The preview PNG shrunk to ``side`` pixels on its long side, then blurred back to its size."""
    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    scale = side / max(width, height)
    small = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX)
    veiled = small.resize((width, height), Image.Resampling.BILINEAR)
    veiled = veiled.filter(ImageFilter.GaussianBlur(max(width, height) / (2 * side)))
    buffer = io.BytesIO()
    veiled.save(buffer, format="PNG")
    return buffer.getvalue()
