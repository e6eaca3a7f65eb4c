"""Veiled previews keep colours and layout and lose every detail (defect 3)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from composition.preview_veil import veil_preview


def checkerboard(side: int = 160, square: int = 4) -> bytes:
    cells = (np.indices((side, side)) // square).sum(axis=0) % 2
    image = Image.fromarray((cells * 255).astype(np.uint8)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def neighbour_step(png: bytes) -> int:
    """The largest difference between horizontally or vertically adjacent pixels."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16)
    return int(max(np.abs(np.diff(pixels, axis=0)).max(), np.abs(np.diff(pixels, axis=1)).max()))


def test_a_veiled_preview_keeps_its_size_and_loses_its_detail() -> None:
    sharp = checkerboard()
    assert neighbour_step(sharp) == 255
    veiled = veil_preview(sharp)
    assert Image.open(io.BytesIO(veiled)).size == (160, 160)
    assert neighbour_step(veiled) <= 8


def test_a_veiled_preview_keeps_its_colours_and_layout() -> None:
    image = Image.new("RGB", (120, 80), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 60, 80))  # left half red
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    veiled = np.asarray(Image.open(io.BytesIO(veil_preview(buffer.getvalue()))).convert("RGB"), dtype=np.int16)
    left, right = veiled[40, 5], veiled[40, 115]
    assert left[0] > 200 and left[2] < 60 and right[2] > 200 and right[0] < 60
