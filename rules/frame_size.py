"""The size a comic panel is drawn at, from the shape of the frame it will fill.

A panel drawn square and cover-cropped into a wide frame loses its top and bottom (a head, say).
Drawn at its frame's aspect ratio instead, it fills the frame whole. The size keeps about the
model's native pixel count (what it was trained at), each side a multiple of the model's
latent-friendly step, within the ``[generation]`` limits; very long frames are drawn at most
:data:`MAX_ASPECT` to one, the most a Stable Diffusion model draws without repeating itself.
"""

from __future__ import annotations

import math
from itertools import product

from rules.request import GenerationLimits

#: The longest side is at most this many times the shortest when drawing.
MAX_ASPECT = 3.0
#: A picture whose aspect differs from its frame's by more than this (15%) is offered a redraw.
SHAPE_TOLERANCE = 0.15


def size_multiple(native: int) -> int:
    """The step each side is rounded to: 64 for real models (native 512 and up), 8 for tiny ones."""
    return min(64, max(8, native // 64 * 8))


def clamp_aspect(aspect: float) -> float:
    """``aspect`` (width / height) limited to what the model draws well."""
    return min(max(aspect, 1 / MAX_ASPECT), MAX_ASPECT)


def size_for_aspect(
    aspect: float, *, native: int, limits: GenerationLimits, multiple: int | None = None
) -> tuple[int, int]:
    """Width and height for a frame of ``aspect`` (width / height): about ``native``² pixels, each side
    a multiple of ``multiple`` (default :func:`size_multiple`), valid under ``limits``."""
    if not aspect > 0:
        raise ValueError(f"aspect must be positive, got {aspect}")
    step = multiple or size_multiple(native)
    wanted = clamp_aspect(aspect)
    width, height = math.sqrt(native * native * wanted), math.sqrt(native * native / wanted)
    grow = limits.min_size / min(width, height)
    if grow > 1:  # the short side would be under min_size
        width, height = width * grow, height * grow
    shrink = min(1.0, limits.max_size / max(width, height), math.sqrt(limits.max_pixels / (width * height)))
    width, height = width * shrink, height * shrink

    def sides(value: float) -> set[int]:
        return {max(step, math.floor(value / step) * step), max(step, math.ceil(value / step) * step)}

    def valid(w: int, h: int) -> bool:
        return all(limits.min_size <= side <= limits.max_size and side % 8 == 0 for side in (w, h)) and (
            w * h <= limits.max_pixels
        )

    candidates = [(w, h) for w, h in product(sides(width), sides(height)) if valid(w, h)]
    if not candidates:
        side = min(max(native, limits.min_size), limits.max_size) // 8 * 8
        return side, side
    target = width * height
    return min(candidates, key=lambda wh: (abs(math.log(wh[0] / wh[1] / wanted)), abs(wh[0] * wh[1] - target)))


def shape_differs(picture: tuple[int, int], frame: tuple[int, int], tolerance: float = SHAPE_TOLERANCE) -> bool:
    """Whether a ``picture`` (width, height) would lose more than ``tolerance`` of its aspect in ``frame``.

    Aspects are compared after clamping the frame's to what is drawn (:data:`MAX_ASPECT`), so a long
    frame drawn at 3:1 does not ask for a redraw forever.
    """
    drawn = picture[0] / picture[1]
    wanted = clamp_aspect(frame[0] / frame[1])
    return abs(math.log(drawn / wanted)) > math.log(1 + tolerance)
