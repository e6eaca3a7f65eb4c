"""The size a panel is drawn at from its frame: aspect kept, native pixel count, model multiples, limits."""

from __future__ import annotations

import math

import pytest

from composition.comic_layout import LAYOUTS, frame_of, layout_comic
from rules.frame_size import MAX_ASPECT, shape_differs, size_for_aspect, size_multiple
from rules.request import GenerationLimits, GenerationRequest, validate

LIMITS = GenerationLimits()


def aspect_error(size: tuple[int, int], aspect: float) -> float:
    return abs(math.log(size[0] / size[1] / aspect))


def test_multiples_follow_the_model() -> None:
    assert size_multiple(64) == 8
    assert size_multiple(512) == 64
    assert size_multiple(768) == 64 and size_multiple(1024) == 64


@pytest.mark.parametrize("native", [64, 512, 768, 1024])
@pytest.mark.parametrize("aspect", [1.0, 0.77, 1.3, 1.57, 0.5, 2.0, 3.0, 1 / 3])
def test_sizes_keep_the_aspect_near_the_native_pixel_count(native: int, aspect: float) -> None:
    width, height = size_for_aspect(aspect, native=native, limits=LIMITS)
    step = size_multiple(native)
    assert width % step == 0 and height % step == 0
    assert width * height <= LIMITS.max_pixels
    assert min(width, height) >= LIMITS.min_size
    # Within half a step of the aspect on each side: at most ~15% off for the coarse tiny model.
    assert aspect_error((width, height), aspect) < (0.14 if native == 64 else 0.09)
    if native >= 512:
        assert 0.7 < width * height / native**2 < 1.25  # the closest aspect wins over the closest count
    validate(GenerationRequest(prompt="p", width=width, height=height, steps=3), LIMITS)


def test_square_frames_give_the_native_size_and_long_frames_are_clamped() -> None:
    assert size_for_aspect(1.0, native=512, limits=LIMITS) == (512, 512)
    assert size_for_aspect(1.0, native=1024, limits=LIMITS) == (1024, 1024)
    wide = size_for_aspect(8.0, native=512, limits=LIMITS)
    assert wide == size_for_aspect(MAX_ASPECT, native=512, limits=LIMITS)
    assert wide[0] > 2.5 * wide[1]
    with pytest.raises(ValueError):
        size_for_aspect(0.0, native=512, limits=LIMITS)


def test_tight_limits_are_obeyed() -> None:
    small = GenerationLimits(max_pixels=256 * 256, max_size=512, min_size=64)
    width, height = size_for_aspect(1.6, native=512, limits=small)
    assert width * height <= 256 * 256 and width <= 512 and width > height


def test_shape_differs_past_fifteen_percent() -> None:
    assert not shape_differs((512, 512), (1000, 1000))
    assert not shape_differs((576, 512), (1100, 1000))
    assert shape_differs((512, 512), (1200, 1000))
    assert shape_differs((64, 80), (1494, 954))
    # A frame longer than what is drawn compares with the clamped aspect.
    drawn = size_for_aspect(6.0, native=512, limits=LIMITS)
    assert not shape_differs(drawn, (6000, 1000))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_frame_of_is_the_frame_the_renderer_uses(layout: str) -> None:
    for count in (1, 3, 7, 12):
        frames = {frame.index: frame for page in layout_comic(count, layout=layout, panels_per_page=4)
                  for frame in page.frames}
        for index in range(count):
            assert frame_of(count, index, layout=layout, panels_per_page=4) == frames[index]
    with pytest.raises(ValueError):
        frame_of(3, 3)
