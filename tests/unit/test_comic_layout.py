"""Comic page geometry, lettering and rendering: frames, text fitting, tails, cropping, title."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from composition.comic_layout import (
    LAYOUTS,
    PageGeometry,
    layout_comic,
    paginate,
    row_pattern,
    smallest_frame_size,
)
from composition.comic_lettering import (
    DEFAULT_BOLD_FONT,
    DEFAULT_FONT,
    LetteringStyle,
    TextDoesNotFit,
    check_panel_text,
    layout_panel_text,
    shape_contains,
)
from composition.comic_render import PanelArt, RenderedPage, TextBox, crop_to_frame, render_comic

HALF_A4 = (827, 1170)
SIDES = ("left", "right", "center")


def gradient_panel(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A colourful gradient with a few shapes: stands in for generated art."""
    width, height = size
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    rgb = np.stack([
        np.broadcast_to(60 + 150 * x, (height, width)),
        np.broadcast_to(40 + 120 * y, (height, width)),
        120 + 100 * x * y,
    ], axis=-1)
    image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle((width * 0.1, height * 0.6, width * 0.4, height * 0.9),
                   fill=(30 + seed * 20 % 200, 90, 60))
    draw.polygon([(width * 0.6, height * 0.9), (width * 0.75, height * 0.5), (width * 0.9, height * 0.9)],
                 fill=(200, 190, 40))
    return image


def sample_panels(count: int) -> list[PanelArt]:
    """Panels of mixed aspect ratios, with captions and dialogue on every side."""
    sizes = [(512, 512), (768, 512), (512, 768), (1024, 448), (448, 1024), (640, 640)]
    captions = [None, "Meanwhile, far away...", "Later that night, the rain did not stop.", None]
    lines = ["Who's there?", "It's only me. I brought the lantern you asked for.", None,
             "We have to go. Now!", "Hmm."]
    return [
        PanelArt(gradient_panel(sizes[i % len(sizes)], i), captions[i % len(captions)],
                 lines[i % len(lines)], SIDES[i % 3])  # type: ignore[arg-type]
        for i in range(count)
    ]


def _rows(frames: list[tuple[int, int, int, int]]) -> list[list[tuple[int, int, int, int]]]:
    """Frames grouped into rows by their top edge, in list order."""
    rows: list[list[tuple[int, int, int, int]]] = []
    for box in frames:
        if rows and rows[-1][0][1] == box[1]:
            rows[-1].append(box)
        else:
            rows.append([box])
    return rows


# --- Geometry -----------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "count"), list(itertools.product(LAYOUTS, range(1, 7))))
def test_frames_are_inside_margins_apart_and_in_reading_order(layout: str, count: int) -> None:
    geometry = PageGeometry()
    (page,) = layout_comic(count, layout=layout, geometry=geometry)
    boxes = [frame.box for frame in page.frames]
    assert [frame.index for frame in page.frames] == list(range(count))
    cx0, _, cx1, cy1 = geometry.content_box
    assert page.title_box is not None
    for x0, y0, x1, y1 in boxes:
        assert cx0 <= x0 < x1 <= cx1
        assert page.title_box[3] + geometry.gutter <= y0 < y1 <= cy1
        assert x1 - x0 >= 200 and y1 - y0 >= 200
    for a, b in itertools.combinations(boxes, 2):  # separated by at least one gutter
        apart_x = max(b[0] - a[2], a[0] - b[2])
        apart_y = max(b[1] - a[3], a[1] - b[3])
        assert max(apart_x, apart_y) >= geometry.gutter, (a, b)

    rows = _rows(boxes)
    assert [len(row) for row in rows] == row_pattern(layout, count)  # type: ignore[arg-type]
    tops = [row[0][1] for row in rows]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    for row in rows:
        lefts = [box[0] for box in row]
        expected = sorted(lefts, reverse=layout == "manga")
        assert lefts == expected
        assert len({(box[1], box[3]) for box in row}) == 1  # a row shares top and bottom
    # Rows fill the content area (grid cells are exactly equal, so a few px of slack remain).
    slack = 0 if layout != "grid" else len(rows)
    for row in rows:
        if layout == "grid" and len(row) < max(len(r) for r in rows):
            continue  # a lone last grid cell is centred
        assert cx0 <= min(b[0] for b in row) <= cx0 + slack and cx1 - slack <= max(b[2] for b in row) <= cx1
    assert cy1 - slack <= rows[-1][0][3] <= cy1


def test_manga_reads_right_to_left() -> None:
    (page,) = layout_comic(6, layout="manga")
    rows = _rows([frame.box for frame in page.frames])
    for row in rows:
        assert row[0][2] == max(box[2] for box in row)  # first panel of the row is the rightmost
        assert row[0][0] > row[-1][0]
    (western,) = layout_comic(6, layout="auto")
    assert sorted(f.box for f in page.frames) == sorted(f.box for f in western.frames)


def test_grid_cells_are_uniform_and_wide_top_leads_with_a_wide_panel() -> None:
    for count in range(1, 7):
        (grid,) = layout_comic(count, layout="grid")
        assert len({frame.size for frame in grid.frames}) == 1
    geometry = PageGeometry()
    for count in range(2, 7):
        (page,) = layout_comic(count, layout="wide-top", geometry=geometry)
        first, *rest = page.frames
        assert (first.box[0], first.box[2]) == (geometry.content_box[0], geometry.content_box[2])
        assert all(first.size[1] >= frame.size[1] for frame in rest)


def test_panels_beyond_the_page_limit_flow_onto_more_pages() -> None:
    assert paginate(6) == [6]
    assert paginate(7) == [4, 3]
    assert paginate(12) == [6, 6]
    assert paginate(13) == [5, 4, 4]
    assert paginate(9, panels_per_page=4) == [3, 3, 3]
    pages = layout_comic(13, layout="strip", panels_per_page=6)
    assert [len(page.frames) for page in pages] == [5, 4, 4]
    assert [frame.index for page in pages for frame in page.frames] == list(range(13))
    assert [page.page_number for page in pages] == [1, 2, 3]
    assert pages[0].title_box is not None and all(page.title_box is None for page in pages[1:])
    # Without a banner, page 2 starts at the top margin.
    margin = PageGeometry().margin
    assert min(frame.box[1] for frame in pages[1].frames) == margin
    assert min(frame.box[1] for frame in pages[0].frames) > margin + PageGeometry().title_height


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"layout": "zigzag"}, "layout must be one of"),
    ({"panels_per_page": 7}, "panels_per_page"),
    ({"panels_per_page": 0}, "panels_per_page"),
])
def test_bad_layout_arguments_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        layout_comic(3, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_panels"):
        layout_comic(0)


def test_smallest_frame_size_bounds_every_frame() -> None:
    for layout in LAYOUTS:
        width, height = smallest_frame_size(layout=layout)
        for count in range(1, 13):
            for page in layout_comic(count, layout=layout):
                assert all(f.size[0] >= width and f.size[1] >= height for f in page.frames)


# --- Lettering ---------------------------------------------------------------------------


def _inside(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def assert_lettering_inside(page: RenderedPage, border: int, outline: int) -> None:
    """Every line's glyph corners lie inside its shape, and every shape inside its frame."""
    frames = {frame.index: frame.box for frame in page.frames}
    for box in page.text_boxes:
        frame = frames[box.panel_index]
        inner_frame = (frame[0] + border + outline, frame[1] + border + outline,
                       frame[2] - border - outline, frame[3] - border - outline)
        assert _inside(box.shape_box, inner_frame), (box, frame)
        assert _inside(box.text_box, box.shape_box)
        for x0, y0, x1, y1 in box.line_boxes:
            for corner in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
                assert shape_contains(box.shape, box.shape_box, corner, box.font_size), (box, corner)
        if box.tail_tip is not None:
            assert inner_frame[0] <= box.tail_tip[0] <= inner_frame[2]
            assert box.shape_box[3] < box.tail_tip[1] <= inner_frame[3]
    captions = [b for b in page.text_boxes if b.kind == "caption"]
    bubbles = [b for b in page.text_boxes if b.kind == "dialogue"]
    for caption, bubble in itertools.product(captions, bubbles):
        if caption.panel_index == bubble.panel_index:  # caption and bubble never overlap
            a, b = caption.shape_box, bubble.shape_box
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_all_text_lies_inside_its_shape_and_frame(layout: str) -> None:
    scale = HALF_A4[0] / 1654
    style = LetteringStyle().scaled(scale)
    border = PageGeometry.for_page_size(HALF_A4).border
    for count in range(1, 7):
        pages = render_comic("Night Shift", sample_panels(count), layout=layout, page_size=HALF_A4)
        (page,) = pages
        texts = sum((p.caption is not None) + (p.dialogue is not None) for p in sample_panels(count))
        assert len(page.text_boxes) == texts
        assert_lettering_inside(page, border, style.outline)


def test_lettering_at_full_size_with_long_text() -> None:
    text = "I told you the lighthouse keeper never sleeps, and now you see why: the lamp, the lamp!"
    panels = [PanelArt(gradient_panel((768, 768)), "The storm reached the coast an hour after dark, "
                       "and nobody in the village was ready for it.", text, side)
              for side in ("left", "right", "center", "left", "right", "center")]
    (page,) = render_comic("The Keeper", panels)
    assert_lettering_inside(page, PageGeometry().border, LetteringStyle().outline)
    for box in page.text_boxes:
        sizes = LetteringStyle().dialogue_sizes if box.kind == "dialogue" else LetteringStyle().caption_sizes
        assert sizes[1] <= box.font_size <= sizes[0]


def _tail_check(box: TextBox, page: Image.Image) -> None:
    x0, _, x1, y1 = box.shape_box
    assert box.tail_tip is not None
    centre_x = (x0 + x1) / 2
    tip_x, tip_y = box.tail_tip
    assert tip_y > y1
    if box.speaker_side == "left":
        assert tip_x < centre_x - 0.2 * (x1 - x0) / 2
    elif box.speaker_side == "right":
        assert tip_x > centre_x + 0.2 * (x1 - x0) / 2
    else:
        assert abs(tip_x - centre_x) <= 1
    # The tail is drawn: ink at its tip, paper halfway up inside it, below the bubble.
    assert box.tail is not None
    base_a, _, base_b = box.tail
    assert base_a[1] < y1 and base_b[1] < y1  # the base sits inside the bubble: a seamless join
    r, g, b = page.getpixel((tip_x, tip_y))  # type: ignore[misc]
    assert max(r, g, b) < 90
    inside_x = round((base_a[0] + base_b[0]) / 2 * 0.5 + tip_x * 0.5)
    inside_y = round((base_a[1] + base_b[1]) / 2 * 0.5 + tip_y * 0.5)
    assert inside_y > y1
    assert min(page.getpixel((inside_x, inside_y))) > 200  # type: ignore[arg-type]


def test_bubble_tail_points_at_the_speaker_side() -> None:
    panels = [PanelArt(Image.new("RGB", (600, 600), (90, 110, 140)), None, "Over here!", side)  # type: ignore[arg-type]
              for side in SIDES]
    (page,) = render_comic("", panels, layout="strip")
    bubbles = [box for box in page.text_boxes if box.kind == "dialogue"]
    assert [box.speaker_side for box in bubbles] == list(SIDES)
    for box in bubbles:
        _tail_check(box, page.image)
    # The bubble itself sits on the speaker's side of the panel.
    frame_centres = {f.index: (f.box[0] + f.box[2]) / 2 for f in page.frames}
    left, right, centre = bubbles
    assert (left.shape_box[0] + left.shape_box[2]) / 2 < frame_centres[0]
    assert (right.shape_box[0] + right.shape_box[2]) / 2 > frame_centres[1]
    assert abs((centre.shape_box[0] + centre.shape_box[2]) / 2 - frame_centres[2]) <= 1


def test_manga_captions_start_at_the_top_right() -> None:
    panels = [PanelArt(gradient_panel((512, 512)), "Meanwhile.", None)]
    (western,) = render_comic("", panels)
    (manga,) = render_comic("", panels, layout="manga")
    frame = western.frames[0].box
    assert western.text_boxes[0].shape_box[0] - frame[0] < 40
    assert frame[2] - manga.text_boxes[0].shape_box[2] < 40


def test_longer_text_shrinks_but_never_below_the_minimum() -> None:
    frame = (0, 0, 700, 620)
    short = layout_panel_text(None, "Hi!", frame)[0]
    medium = layout_panel_text(None, "Well, " * 18 + "that is what I think.", frame)[0]
    assert short.block.font_size == LetteringStyle().dialogue_sizes[0]
    assert LetteringStyle().dialogue_sizes[1] <= medium.block.font_size < short.block.font_size


def test_too_long_dialogue_raises_with_a_user_message() -> None:
    text = "This is a very long speech that goes on and on. " * 12
    with pytest.raises(TextDoesNotFit) as caught:
        check_panel_text(None, text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.kind == "dialogue"
    assert error.max_chars is not None and 60 < error.max_chars < len(text)
    assert str(error) == error.user_message
    assert str(error).startswith("The dialogue is too long for one bubble (max about ")
    assert "characters); shorten it or split it over two panels." in str(error)
    # The renderer refuses the same text the pre-check refused.
    with pytest.raises(TextDoesNotFit):
        render_comic("T", [PanelArt(gradient_panel((256, 256)), None, text)] * 6)


def test_too_long_caption_raises_with_a_user_message() -> None:
    with pytest.raises(TextDoesNotFit) as caught:
        check_panel_text("Once upon a time, in a land far away. " * 20, "Short.")
    assert caught.value.kind == "caption"
    assert "caption is too long" in str(caught.value)


def test_title_that_does_not_fit_raises() -> None:
    with pytest.raises(TextDoesNotFit) as caught:
        render_comic("An Extremely Long Title " * 10, sample_panels(1))
    assert caught.value.kind == "title"


def test_estimated_maximum_is_about_right() -> None:
    with pytest.raises(TextDoesNotFit) as caught:
        check_panel_text(None, "word " * 200)
    max_chars = caught.value.max_chars
    assert max_chars is not None
    prose = ("so tell me what happens next and why the sky looks so strange tonight " * 20)
    check_panel_text(None, prose[: int(max_chars * 0.8)].strip())
    with pytest.raises(TextDoesNotFit):
        check_panel_text(None, prose[: int(max_chars * 1.3)].strip())


def test_pre_check_matches_the_renderer_for_each_layout() -> None:
    for layout in LAYOUTS:
        size = smallest_frame_size(layout=layout)
        with pytest.raises(TextDoesNotFit) as caught:
            check_panel_text(None, "blah " * 300, frame_size=size)
        assert caught.value.max_chars is not None
        words = ("the quick brown fox jumps over the lazy dog " * 20)[: caught.value.max_chars - 15].strip()
        check_panel_text("Meanwhile...", words, frame_size=size)
        panels = [PanelArt(gradient_panel((512, 512)), "Meanwhile...", words, side)
                  for side in ("left", "right", "center", "left", "right", "center")]
        render_comic("Title", panels, layout=layout)  # fits on the most crowded first page


def test_unbreakable_words_are_cut_to_fit_and_blank_text_is_ignored() -> None:
    placed = layout_panel_text("   ", "A" * 40, (0, 0, 600, 600))
    assert [item.kind for item in placed] == ["dialogue"]
    assert len(placed[0].block.lines) >= 2
    assert "".join(placed[0].block.lines) == "A" * 40
    assert layout_panel_text(None, "\n \t", (0, 0, 600, 600)) == []
    with pytest.raises(ValueError, match="speaker_side"):
        layout_panel_text(None, "Hi", (0, 0, 600, 600), speaker_side="up")  # type: ignore[arg-type]


def test_bundled_fonts_exist() -> None:
    assert DEFAULT_FONT.is_file() and DEFAULT_BOLD_FONT.is_file()
    assert (DEFAULT_FONT.parent / "OFL.txt").is_file()


# --- Rendering ---------------------------------------------------------------------------


def _circle_image(size: tuple[int, int]) -> Image.Image:
    """A blue field with a red circle of diameter 0.8 x the shorter side, centred."""
    width, height = size
    image = Image.new("RGB", size, (20, 40, 200))
    radius = 0.4 * min(size)
    ImageDraw.Draw(image).ellipse((width / 2 - radius, height / 2 - radius,
                                   width / 2 + radius, height / 2 + radius), fill=(230, 20, 20))
    return image


@pytest.mark.parametrize("image_size", [(1200, 500), (500, 1200), (800, 800)])
@pytest.mark.parametrize("layout", ["strip", "grid"])
def test_cropping_keeps_circles_round_and_covers_the_frame(image_size: tuple[int, int], layout: str) -> None:
    panels = [PanelArt(_circle_image(image_size))] * 3
    (page,) = render_comic("", panels, layout=layout, page_size=HALF_A4)
    pixels = np.asarray(page.image).astype(int)
    border = PageGeometry.for_page_size(HALF_A4).border
    for frame in page.frames:
        x0, y0, x1, y1 = frame.box
        inner = pixels[y0 + border:y1 - border, x0 + border:x1 - border]
        red = (inner[..., 0] > 150) & (inner[..., 2] < 100)
        blue = (inner[..., 2] > 150) & (inner[..., 0] < 100)
        assert (red | blue).mean() > 0.97  # covered: no page white, no letterbox bars
        ys, xs = np.nonzero(red)
        height, width = red.shape
        clipped_x = xs.min() == 0 or xs.max() == width - 1
        clipped_y = ys.min() == 0 or ys.max() == height - 1
        assert not (clipped_x and clipped_y)
        if not clipped_x and not clipped_y:  # whole circle: as wide as tall, and its area fits
            span_x, span_y = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
            assert abs(span_x - span_y) <= max(2, 0.02 * span_x), (span_x, span_y)
            assert abs(red.sum() / (np.pi * span_x * span_y / 4) - 1) < 0.04
        # Chords across the uncut direction, taken all along the cut one, match a circle whose
        # diameter is the longest chord: a stretched circle would give an ellipse's chords.
        runs = red.sum(axis=1) if clipped_y else red.sum(axis=0)
        radius = runs.max() / 2
        centre = (np.nonzero(runs)[0].min() + np.nonzero(runs)[0].max()) / 2
        lines = np.nonzero(runs)[0]
        central = lines[np.abs(lines - centre) < 0.8 * radius]  # chords near the rim are too steep
        for line in central[:: max(1, len(central) // 12)]:
            expected = 2 * np.sqrt(max(0.0, radius**2 - (line - centre) ** 2))
            assert abs(runs[line] - expected) <= 4 + 0.03 * expected, (line, runs[line], expected)


def test_crop_to_frame_scales_to_cover_without_stretching() -> None:
    wide = _circle_image((1000, 400))
    out = crop_to_frame(wide, (300, 300))
    assert out.size == (300, 300)
    array = np.asarray(out).astype(int)
    red = (array[..., 0] > 150) & (array[..., 2] < 100)
    ys, xs = np.nonzero(red)
    # 400 px tall scaled to 300: the circle's diameter 320 becomes 240, still round and centred.
    assert abs((xs.max() - xs.min() + 1) - 240) <= 3 and abs((ys.max() - ys.min() + 1) - 240) <= 3
    assert abs((xs.max() + xs.min()) / 2 - 150) <= 2


def test_title_banner_appears_on_page_one_only() -> None:
    pages = render_comic("Page One Only", sample_panels(8), panels_per_page=4, page_size=HALF_A4)
    assert len(pages) == 2
    first, second = pages
    assert first.title_box is not None and second.title_box is None
    x0, y0, x1, y1 = first.title_box
    banner = np.asarray(first.image.crop(first.title_box).convert("L"))
    assert (banner < 80).mean() > 0.02  # the title is drawn
    assert all(frame.box[1] >= y1 for frame in first.frames)
    same_area = np.asarray(second.image.crop((x0, y0, x1, y0 + 20)).convert("L"))
    assert (same_area < 80).mean() > 0.2  # page 2 has panel borders/art there, not a title
    assert min(frame.box[1] for frame in second.frames) == y0
    (untitled,) = render_comic("  ", sample_panels(2), page_size=HALF_A4)
    assert untitled.title_box is None


def test_page_is_white_with_black_borders_and_accepts_any_image_mode() -> None:
    panels = [
        PanelArt(gradient_panel((300, 300)).convert("RGBA")),
        PanelArt(gradient_panel((300, 200)).convert("P")),
        PanelArt(gradient_panel((200, 300)).convert("L")),
    ]
    (page,) = render_comic("Modes", panels, page_size=HALF_A4)
    assert page.image.mode == "RGB" and page.image.size == HALF_A4
    assert page.image.getpixel((3, 3)) == (255, 255, 255)
    for frame in page.frames:
        x0, y0, x1, y1 = frame.box
        assert page.image.getpixel((x0, (y0 + y1) // 2)) == (0, 0, 0)
        assert page.image.getpixel((x1 - 1, (y0 + y1) // 2)) == (0, 0, 0)
        assert page.image.getpixel(((x0 + x1) // 2, y0 - 2)) == (255, 255, 255)


def test_render_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_comic("T", [])
    with pytest.raises(ValueError, match="layout"):
        render_comic("T", sample_panels(1), layout="diagonal")
    with pytest.raises(ValueError, match="page_size"):
        render_comic("T", sample_panels(1), page_size=(100, 100))
