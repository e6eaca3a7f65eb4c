"""Several images of one request in one picture: 2 side by side, 3 or 4 in a 2x2 grid.

Cells are as large as the largest image; an image smaller than its cell is centred in it, and
empty cells and gaps are filled with the background colour. :func:`grid_cell_box` gives the box
of cell ``index`` in a finished grid (``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive, the
convention of :meth:`PIL.Image.Image.crop`), so a cell can be cut out again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image

Box = tuple[int, int, int, int]


def grid_shape(count: int, columns: int = 2) -> tuple[int, int]:
    """``(columns, rows)`` of the grid for ``count`` images: 1 -> 1x1, 2 -> 2x1, 3 and 4 -> 2x2."""
    if count < 1:
        raise ValueError(f"count = {count}: a grid needs at least one image")
    if columns < 1:
        raise ValueError(f"columns = {columns} must be at least 1")
    used_columns = min(columns, count)
    return used_columns, math.ceil(count / used_columns)


def make_grid(
    images: Sequence[Image.Image],
    *,
    columns: int = 2,
    gap: int = 0,
    background: tuple[int, int, int] = (0, 0, 0),
) -> Image.Image:
    """An RGB image with ``images`` in reading order, ``columns`` to a row, ``gap`` pixels apart."""
    if gap < 0:
        raise ValueError(f"gap = {gap} must not be negative")
    cols, rows = grid_shape(len(images), columns)
    cell_w = max(image.width for image in images)
    cell_h = max(image.height for image in images)
    grid = Image.new("RGB", (cols * cell_w + (cols - 1) * gap, rows * cell_h + (rows - 1) * gap), background)
    for index, image in enumerate(images):
        x0, y0, _, _ = grid_cell_box(index, grid.size, len(images), columns=columns, gap=gap)
        offset = (x0 + (cell_w - image.width) // 2, y0 + (cell_h - image.height) // 2)
        grid.paste(image if image.mode == "RGB" else image.convert("RGB"), offset)
    return grid


def grid_cell_box(
    index: int, grid_size: tuple[int, int], count: int, *, columns: int = 2, gap: int = 0
) -> Box:
    """The box of cell ``index`` in a grid of ``grid_size`` pixels made by :func:`make_grid` from ``count`` images."""
    cols, rows = grid_shape(count, columns)
    if not 0 <= index < count:
        raise IndexError(f"index = {index} is outside 0..{count - 1}")
    cell_w = (grid_size[0] - (cols - 1) * gap) // cols
    cell_h = (grid_size[1] - (rows - 1) * gap) // rows
    row, col = divmod(index, cols)
    x0, y0 = col * (cell_w + gap), row * (cell_h + gap)
    return (x0, y0, x0 + cell_w, y0 + cell_h)
