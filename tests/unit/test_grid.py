"""Grids of a request's images: shapes, cells that crop back to their source, gaps and empty cells."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from composition.grid import grid_cell_box, grid_shape, make_grid


def tiles(count: int, size: tuple[int, int] = (48, 32)) -> list[Image.Image]:
    rng = np.random.default_rng(count)
    return [
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB") for _ in range(count)
    ]


@pytest.mark.parametrize(
    ("count", "shape", "size"),
    [(1, (1, 1), (48, 32)), (2, (2, 1), (96, 32)), (3, (2, 2), (96, 64)), (4, (2, 2), (96, 64))],
)
def test_grid_shapes(count: int, shape: tuple[int, int], size: tuple[int, int]) -> None:
    assert grid_shape(count) == shape
    assert make_grid(tiles(count)).size == size


@pytest.mark.parametrize(("count", "gap"), [(2, 0), (3, 0), (4, 0), (4, 6), (3, 5)])
def test_each_cell_crops_back_to_its_source(count: int, gap: int) -> None:
    images = tiles(count)
    grid = make_grid(images, gap=gap)
    for index, image in enumerate(images):
        box = grid_cell_box(index, grid.size, count, gap=gap)
        assert np.array_equal(np.asarray(grid.crop(box)), np.asarray(image)), index


def test_empty_cell_and_gaps_are_background() -> None:
    grid = make_grid(tiles(3), gap=4, background=(10, 20, 30))
    assert grid.size == (48 * 2 + 4, 32 * 2 + 4)
    x0, y0, x1, y1 = 48 + 4, 32 + 4, grid.width, grid.height  # the fourth, empty cell
    empty = np.asarray(grid.crop((x0, y0, x1, y1)))
    assert (empty == (10, 20, 30)).all()
    gap_column = np.asarray(grid.crop((48, 0, 52, 32)))
    assert (gap_column == (10, 20, 30)).all()


def test_more_columns_and_mixed_sizes() -> None:
    images = tiles(3)
    row = make_grid(images, columns=3)
    assert row.size == (144, 32)
    assert grid_cell_box(2, row.size, 3, columns=3) == (96, 0, 144, 32)
    small = Image.new("RGBA", (16, 16), (255, 0, 0, 255))
    mixed = make_grid([images[0], small])
    assert mixed.mode == "RGB"
    x0, y0, _, _ = grid_cell_box(1, mixed.size, 2)
    # Centred in its 48x32 cell.
    assert mixed.getpixel((x0 + 24, y0 + 16)) == (255, 0, 0)
    assert mixed.getpixel((x0 + 2, y0 + 2)) == (0, 0, 0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_grid([])
    with pytest.raises(ValueError):
        make_grid(tiles(2), columns=0)
    with pytest.raises(ValueError):
        make_grid(tiles(2), gap=-1)
    with pytest.raises(IndexError):
        grid_cell_box(4, (96, 64), 4)
