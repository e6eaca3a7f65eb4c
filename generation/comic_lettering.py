"""Comic lettering: narration captions, speech bubbles and the title, fitted to their space.

Text is wrapped and its size chosen so it fits: each kind of text starts at a maximum
font size and shrinks step by step to a minimum readable size. Text that does not fit
even at the minimum raises :class:`TextDoesNotFit` with a short message for the user.

The fitting is pure measurement (no drawing), so :func:`check_panel_text` is cheap and
gives exactly the answer the renderer will: the bot calls it before it queues a panel,
so users hear that their text is too long before any GPU work is done.

Placement inside a panel frame:

* the caption is a rectangle in the top-left corner (top-right for right-to-left comics);
* the speech bubble is an ellipse at the top of the panel on the speaker's side, below
  the caption when the two would collide, with a tail that points down toward the
  speaker's side (``left``, ``right``, or straight down for ``center``).

Shapes are described by their fill area; the outline is drawn just outside it.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal

from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
Point = tuple[int, int]
SpeakerSide = Literal["left", "right", "center"]
TextKind = Literal["caption", "dialogue", "title"]

SPEAKER_SIDES: Final[tuple[str, ...]] = ("left", "right", "center")
FONT_DIR: Final = Path(__file__).resolve().parents[1] / "assets" / "fonts"
DEFAULT_FONT: Final = FONT_DIR / "ComicNeue-Regular.otf"
DEFAULT_BOLD_FONT: Final = FONT_DIR / "ComicNeue-Bold.otf"

_SUPERSAMPLE: Final = 3
_SAMPLE_WORDS: Final = (
    "well I never thought we would get this far but here we are at last so tell me "
    "what happens next and why the sky looks so strange tonight "
).split()


class TextDoesNotFit(ValueError):
    """Text too long for its caption box, bubble or title banner, even at the smallest size.

    ``kind`` says which text ('caption', 'dialogue' or 'title'); ``max_chars`` is a rough
    number of characters that would fit; ``user_message`` (also ``str(error)``) is a short
    message to show the user.
    """

    def __init__(self, kind: TextKind, user_message: str, *, max_chars: int | None = None) -> None:
        super().__init__(user_message)
        self.kind: TextKind = kind
        self.user_message = user_message
        self.max_chars = max_chars


@dataclass(frozen=True)
class LetteringStyle:
    """Fonts, sizes and colours of the lettering, in pixels for an A4 page at 200 dpi."""

    regular_font: Path = DEFAULT_FONT
    bold_font: Path = DEFAULT_BOLD_FONT
    caption_sizes: tuple[int, int] = (36, 22)
    dialogue_sizes: tuple[int, int] = (40, 24)
    title_sizes: tuple[int, int] = (96, 40)
    size_step: int = 2
    line_spacing: float = 1.12
    outline: int = 4
    inset: int = 16
    gap: int = 12
    min_box_width: int = 420
    caption_fill: tuple[int, int, int] = (255, 243, 190)
    bubble_fill: tuple[int, int, int] = (255, 255, 255)
    ink: tuple[int, int, int] = (0, 0, 0)

    def scaled(self, factor: float) -> LetteringStyle:
        """The same style for a page ``factor`` times as wide as A4 at 200 dpi."""
        if factor == 1.0:
            return self

        def px(value: int, floor: int = 1) -> int:
            return max(floor, round(value * factor))

        def sizes(pair: tuple[int, int]) -> tuple[int, int]:
            return (px(pair[0], 8), px(pair[1], 8))

        return replace(
            self,
            caption_sizes=sizes(self.caption_sizes),
            dialogue_sizes=sizes(self.dialogue_sizes),
            title_sizes=sizes(self.title_sizes),
            size_step=px(self.size_step),
            outline=px(self.outline),
            inset=px(self.inset, 2),
            gap=px(self.gap, 2),
            min_box_width=px(self.min_box_width, 40),
        )

    def with_font(self, font_path: Path | None) -> LetteringStyle:
        """This style with every text set in ``font_path`` (no change when it is None)."""
        if font_path is None:
            return self
        return replace(self, regular_font=font_path, bold_font=font_path)


@dataclass(frozen=True)
class TextBlock:
    """Wrapped lines at one font size, with each line's ink box relative to the block.

    Line ``i`` is drawn with its anchor at ``(0, i * pitch)``; ``ink[i]`` is the box that
    its glyphs cover relative to that same origin (``anchor`` 'la': left edge; 'ma': centre).
    """

    lines: tuple[str, ...]
    font_path: Path
    font_size: int
    pitch: int
    anchor: Literal["la", "ma"]
    ink: tuple[Box, ...]

    @property
    def bounds(self) -> Box:
        """The union of all lines' ink."""
        return (
            min(b[0] for b in self.ink),
            min(b[1] for b in self.ink),
            max(b[2] for b in self.ink),
            max(b[3] for b in self.ink),
        )


@dataclass(frozen=True)
class PlacedText:
    """A caption, bubble or title placed on the page: everything needed to draw and check it.

    ``shape_box`` is the fill area of the box or ellipse; ``text_box`` is the union of the
    drawn glyphs; ``line_boxes`` are each line's glyph box; ``tail`` is the speech tail as
    (base, tip, base) or None. All in page pixels.
    """

    kind: TextKind
    shape: Literal["rectangle", "ellipse", "none"]
    shape_box: Box
    block: TextBlock
    origin: Point
    tail: tuple[Point, Point, Point] | None = None
    speaker_side: SpeakerSide | None = None

    @property
    def line_origins(self) -> tuple[Point, ...]:
        """Where each line is drawn (with ``block.anchor``)."""
        x, y = self.origin
        return tuple((x, y + i * self.block.pitch) for i in range(len(self.block.lines)))

    @property
    def line_boxes(self) -> tuple[Box, ...]:
        """Each line's glyph box in page pixels."""
        x, y = self.origin
        return tuple(
            (x + b[0], y + i * self.block.pitch + b[1], x + b[2], y + i * self.block.pitch + b[3])
            for i, b in enumerate(self.block.ink)
        )

    @property
    def text_box(self) -> Box:
        """The union of all drawn glyphs in page pixels."""
        x, y = self.origin
        left, top, right, bottom = self.block.bounds
        return (x + left, y + top, x + right, y + bottom)

    @property
    def tail_tip(self) -> Point | None:
        """The point of the speech tail, or None."""
        return self.tail[1] if self.tail else None


@functools.lru_cache(maxsize=128)
def load_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """Load (and cache) ``path`` at ``size`` px."""
    if not path.is_file():
        raise FileNotFoundError(f"font file not found: {path}")
    return ImageFont.truetype(str(path), size)


def normalize_text(text: str | None) -> str | None:
    """Collapse runs of spaces and blank lines; None for missing or blank text."""
    if text is None:
        return None
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    joined = "\n".join(line for line in lines if line)
    return joined or None


def _break_word(word: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """Cut a word wider than ``max_width`` into pieces that fit (at least one character each)."""
    pieces: list[str] = []
    current = ""
    for char in word:
        if current and font.getlength(current + char) > max_width:
            pieces.append(current)
            current = char
        else:
            current += char
    if current:
        pieces.append(current)
    return pieces


def wrap_text(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """Greedy word wrap to ``max_width`` px; explicit newlines are kept; long words are cut."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split(" "):
            pieces = [word] if font.getlength(word) <= max_width else _break_word(word, font, max_width)
            for piece in pieces:
                candidate = f"{current} {piece}" if current else piece
                if current and font.getlength(candidate) > max_width:
                    lines.append(current)
                    current = piece
                else:
                    current = candidate
        if current:
            lines.append(current)
    return lines


def _block(lines: Sequence[str], path: Path, size: int, anchor: Literal["la", "ma"],
           spacing: float) -> TextBlock:
    font = load_font(path, size)
    pitch = max(1, round(size * spacing))
    ink = tuple(_ink_box(font, line, anchor) for line in lines)
    return TextBlock(tuple(lines), path, size, pitch, anchor, ink)


def _ink_box(font: ImageFont.FreeTypeFont, line: str, anchor: str) -> Box:
    left, top, right, bottom = font.getbbox(line, anchor=anchor)
    return (math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom))


def _sizes(pair: tuple[int, int], step: int) -> list[int]:
    largest, smallest = pair
    sizes = list(range(largest, smallest - 1, -max(1, step)))
    if sizes[-1] != smallest:
        sizes.append(smallest)
    return sizes


def fit_rectangle(text: str, max_size: tuple[int, int], *, path: Path, sizes: tuple[int, int],
                  style: LetteringStyle) -> tuple[TextBlock, tuple[int, int]] | None:
    """The largest left-aligned block that fits a box of at most ``max_size``, and that box's size."""
    max_w, max_h = max_size
    for size in _sizes(sizes, style.size_step):
        pad_x, pad_y = round(size * 0.55), round(size * 0.4)
        inner_w = max_w - 2 * pad_x
        if inner_w < size:
            continue
        block = _block(wrap_text(text, load_font(path, size), inner_w), path, size, "la", style.line_spacing)
        left, top, right, bottom = block.bounds
        box_w, box_h = right - left + 2 * pad_x, bottom - top + 2 * pad_y
        if box_w <= max_w and box_h <= max_h:
            return block, (box_w, box_h)
    return None


def _ellipse_scale(block: TextBlock) -> float:
    """How much larger than the block's ink box an ellipse must be to hold every line's corners."""
    left, top, right, bottom = block.bounds
    half_w, half_h = max(1.0, (right - left) / 2), max(1.0, (bottom - top) / 2)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    worst = 0.0
    for i, (l, t, r, b) in enumerate(block.ink):
        dx = max(abs(l - cx), abs(r - cx))
        dy = max(abs(t + i * block.pitch - cy), abs(b + i * block.pitch - cy))
        worst = max(worst, (dx / half_w) ** 2 + (dy / half_h) ** 2)
    return math.sqrt(worst)


def _ellipse_size(block: TextBlock) -> tuple[int, int]:
    """Width and height of the ellipse (fill area) that holds ``block`` with padding."""
    left, top, right, bottom = block.bounds
    scale = _ellipse_scale(block)
    pad_x, pad_y = block.font_size * 0.9, block.font_size * 0.6
    width = scale * (right - left) + 2 * pad_x
    height = scale * (bottom - top) + 2 * pad_y
    width = max(width, height * 1.15)
    return (math.ceil(width) + 2, math.ceil(height) + 2)


def fit_ellipse(text: str, max_size: tuple[int, int], *, path: Path, sizes: tuple[int, int],
                style: LetteringStyle) -> tuple[TextBlock, tuple[int, int]] | None:
    """The largest centred block whose ellipse fits ``max_size``, and that ellipse's size.

    At each font size several wrap widths are tried and the bubble with the smallest area
    (nudged toward a pleasant 1.7:1 shape) wins.
    """
    max_w, max_h = max_size
    for size in _sizes(sizes, style.size_step):
        font = load_font(path, size)
        widest = max_w - 2 * size * 0.9
        if widest < size:
            continue
        best: tuple[float, TextBlock, tuple[int, int]] | None = None
        seen: set[tuple[str, ...]] = set()
        for fraction in (1.0, 0.85, 0.72, 0.6, 0.5, 0.42, 0.35, 0.28):
            lines = tuple(wrap_text(text, font, widest * fraction))
            if lines in seen:
                continue
            seen.add(lines)
            block = _block(lines, path, size, "ma", style.line_spacing)
            width, height = _ellipse_size(block)
            if width > max_w or height > max_h:
                continue
            cost = width * height * (1 + 0.25 * abs(math.log(width / height / 1.7)))
            if best is None or cost < best[0]:
                best = (cost, block, (width, height))
        if best is not None:
            return best[1], best[2]
    return None


def _fits(kind: TextKind, text: str, region: tuple[int, int], style: LetteringStyle) -> bool:
    if kind == "dialogue":
        return fit_ellipse(text, region, path=style.bold_font, sizes=style.dialogue_sizes,
                           style=style) is not None
    if kind == "caption":
        return fit_rectangle(text, region, path=style.regular_font, sizes=style.caption_sizes,
                             style=style) is not None
    return _fit_title(text, region, style) is not None


@functools.lru_cache(maxsize=64)
def estimate_max_chars(kind: TextKind, region: tuple[int, int], style: LetteringStyle) -> int:
    """Roughly how many characters of ordinary prose fit ``region`` at the smallest size."""
    low, high = 0, 2000
    sample = " ".join(_SAMPLE_WORDS * 40)
    while low < high:
        mid = (low + high + 1) // 2
        if _fits(kind, sample[:mid].strip(), region, style):
            low = mid
        else:
            high = mid - 1
    return low


def _too_long(kind: TextKind, region: tuple[int, int], style: LetteringStyle) -> TextDoesNotFit:
    max_chars = estimate_max_chars(kind, region, style)
    about = max(10, max_chars // 10 * 10)
    if kind == "dialogue":
        message = (f"The dialogue is too long for one bubble (max about {about} characters); "
                   "shorten it or split it over two panels.")
    elif kind == "caption":
        message = (f"The caption is too long for one panel (max about {about} characters); "
                   "shorten it or split it over two panels.")
    else:
        message = f"The title is too long for the title banner (max about {about} characters); shorten it."
    return TextDoesNotFit(kind, message, max_chars=max_chars)


@dataclass(frozen=True)
class _Regions:
    """The space lettering may use inside one frame."""

    inner: Box
    caption_max: tuple[int, int]
    bubble_max: tuple[int, int]
    tail_length: int


def _regions(frame: Box, border: int, style: LetteringStyle) -> _Regions:
    """Limits for caption and bubble in ``frame``: they only grow with the frame's size.

    The bubble's height budget leaves room for the largest caption, the gap and the tail,
    so whether text fits does not depend on the other text or the speaker side.
    """
    x0, y0, x1, y1 = frame
    edge = border + style.inset + style.outline
    inner = (x0 + edge, y0 + edge, x1 - edge, y1 - edge)
    inner_w, inner_h = inner[2] - inner[0], inner[3] - inner[1]
    if inner_w < 40 or inner_h < 40:
        raise ValueError(f"frame {frame!r} is too small for lettering")
    tail = max(6, min(round(0.1 * inner_h), round(2.2 * style.dialogue_sizes[0])))
    caption_w = min(inner_w, max(round(0.62 * inner_w), style.min_box_width))
    bubble_w = min(inner_w, max(round(0.7 * inner_w), style.min_box_width))
    caption_h = round(0.3 * inner_h)
    bubble_h = min(round(0.5 * inner_h), inner_h - caption_h - 2 * style.outline - style.gap - tail)
    return _Regions(inner, (caption_w, caption_h), (bubble_w, bubble_h), tail)


def _fit_caption(text: str, regions: _Regions, style: LetteringStyle) -> tuple[TextBlock, tuple[int, int]]:
    fitted = fit_rectangle(text, regions.caption_max, path=style.regular_font,
                           sizes=style.caption_sizes, style=style)
    if fitted is None:
        raise _too_long("caption", regions.caption_max, style)
    return fitted


def _fit_dialogue(text: str, regions: _Regions, style: LetteringStyle) -> tuple[TextBlock, tuple[int, int]]:
    fitted = fit_ellipse(text, regions.bubble_max, path=style.bold_font,
                         sizes=style.dialogue_sizes, style=style)
    if fitted is None:
        raise _too_long("dialogue", regions.bubble_max, style)
    return fitted


def _overlaps(a: Box, b: Box, margin: int) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0]
                or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _tail(shape: Box, side: SpeakerSide, length: int, inner: Box) -> tuple[Point, Point, Point]:
    """A tail leaving the ellipse's lower edge and pointing down toward ``side``."""
    x0, y0, x1, y1 = shape
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a, b = (x1 - x0) / 2, (y1 - y0) / 2
    direction = {"left": -1, "right": 1, "center": 0}[side]
    base_x = cx + direction * 0.3 * a
    half_base = max(4.0, min(0.14 * a, 0.45 * length))

    def on_ellipse(x: float) -> Point:
        u = max(-1.0, min(1.0, (x - cx) / a))
        return (round(x), round(cy + b * math.sqrt(1 - u * u) - 0.12 * b))

    tip_x = base_x + direction * 0.9 * length
    tip_x = min(max(tip_x, inner[0]), inner[2])
    tip = (round(tip_x), min(y1 + length, inner[3]))
    return (on_ellipse(base_x - half_base), tip, on_ellipse(base_x + half_base))


def layout_panel_text(
    caption: str | None,
    dialogue: str | None,
    frame: Box,
    *,
    speaker_side: SpeakerSide = "left",
    border: int = 6,
    style: LetteringStyle | None = None,
    caption_corner: Literal["left", "right"] = "left",
) -> list[PlacedText]:
    """Fit and place the caption and speech bubble of one panel (either may be None).

    Raises :class:`TextDoesNotFit` when a text is too long for this frame even at the
    smallest size, and ``ValueError`` for a bad ``speaker_side``.
    """
    if speaker_side not in SPEAKER_SIDES:
        raise ValueError(f"speaker_side must be one of {', '.join(SPEAKER_SIDES)}; got {speaker_side!r}")
    style = style or LetteringStyle()
    caption, dialogue = normalize_text(caption), normalize_text(dialogue)
    if caption is None and dialogue is None:
        return []
    regions = _regions(frame, border, style)
    ix0, iy0, ix1, iy1 = regions.inner
    placed: list[PlacedText] = []

    caption_box: Box | None = None
    if caption is not None:
        block, (width, height) = _fit_caption(caption, regions, style)
        left = ix0 if caption_corner == "left" else ix1 - width
        caption_box = (left, iy0, left + width, iy0 + height)
        ink_left, ink_top, _, ink_bottom = block.bounds
        pad_x = round(block.font_size * 0.55)
        origin = (left + pad_x - ink_left, iy0 + (height - (ink_bottom - ink_top)) // 2 - ink_top)
        placed.append(PlacedText("caption", "rectangle", caption_box, block, origin))

    if dialogue is not None:
        block, (width, height) = _fit_dialogue(dialogue, regions, style)
        inner_w = ix1 - ix0
        nudge = round(0.04 * inner_w)
        if speaker_side == "left":
            left = min(ix0 + nudge, ix1 - width)
        elif speaker_side == "right":
            left = max(ix1 - width - nudge, ix0)
        else:
            left = ix0 + (inner_w - width) // 2
        top = iy0
        shape = (left, top, left + width, top + height)
        if caption_box is not None and _overlaps(shape, caption_box, style.gap + 2 * style.outline):
            top = caption_box[3] + style.gap + 2 * style.outline
            shape = (left, top, left + width, top + height)
        ink_left, ink_top, ink_right, ink_bottom = block.bounds
        origin = (
            round((shape[0] + shape[2]) / 2 - (ink_left + ink_right) / 2),
            round((shape[1] + shape[3]) / 2 - (ink_top + ink_bottom) / 2),
        )
        tail = _tail(shape, speaker_side, regions.tail_length, regions.inner)
        placed.append(PlacedText("dialogue", "ellipse", shape, block, origin, tail, speaker_side))
    return placed


def check_panel_text(
    caption: str | None,
    dialogue: str | None,
    *,
    frame_size: tuple[int, int] | None = None,
    border: int = 6,
    style: LetteringStyle | None = None,
) -> None:
    """Raise :class:`TextDoesNotFit` if this caption or dialogue will not fit a panel.

    ``frame_size`` defaults to the smallest panel of an ``auto`` page of six panels on the
    default A4 page; pass :func:`generation.comic_layout.smallest_frame_size` for other
    layouts. The answer matches what :func:`layout_panel_text` would do in such a frame,
    whatever the speaker side. Only measures text: no image is drawn.
    """
    if frame_size is None:
        from generation.comic_layout import smallest_frame_size

        frame_size = smallest_frame_size()
    width, height = frame_size
    layout_panel_text(caption, dialogue, (0, 0, width, height), border=border, style=style)


def _fit_title(text: str, region: tuple[int, int], style: LetteringStyle) -> TextBlock | None:
    max_w, max_h = region
    for size in _sizes(style.title_sizes, style.size_step * 2):
        font = load_font(style.bold_font, size)
        lines = wrap_text(text, font, max_w)
        if len(lines) > 2:
            continue
        block = _block(lines, style.bold_font, size, "ma", 1.05)
        left, top, right, bottom = block.bounds
        if right - left <= max_w and bottom - top <= max_h:
            return block
    return None


def layout_title(title: str, box: Box, *, style: LetteringStyle | None = None) -> PlacedText | None:
    """Fit the comic's title (one or two lines, bold, centred) into the banner ``box``.

    Returns None for an empty title; raises :class:`TextDoesNotFit` (kind 'title') when it
    is too long.
    """
    style = style or LetteringStyle()
    text = normalize_text(title)
    if text is None:
        return None
    text = text.replace("\n", " ")
    x0, y0, x1, y1 = box
    region = (x1 - x0, round((y1 - y0) * 0.8))
    block = _fit_title(text, region, style)
    if block is None:
        raise _too_long("title", region, style)
    left, top, right, bottom = block.bounds
    origin = (round((x0 + x1) / 2 - (left + right) / 2), round((y0 + y1) / 2 - (top + bottom) / 2))
    return PlacedText("title", "none", box, block, origin)


def draw_text(image: Image.Image, item: PlacedText, style: LetteringStyle) -> None:
    """Draw the glyphs of ``item`` (not its shape)."""
    draw = ImageDraw.Draw(image)
    font = load_font(item.block.font_path, item.block.font_size)
    for line, origin in zip(item.block.lines, item.line_origins, strict=True):
        draw.text(origin, line, font=font, fill=style.ink, anchor=item.block.anchor)


def draw_caption(image: Image.Image, item: PlacedText, style: LetteringStyle) -> None:
    """Draw a caption box (fill, outline outside the fill area) and its text."""
    x0, y0, x1, y1 = item.shape_box
    o = style.outline
    draw = ImageDraw.Draw(image)
    draw.rectangle((x0 - o, y0 - o, x1 + o - 1, y1 + o - 1), fill=style.ink)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=style.caption_fill)
    draw_text(image, item, style)


def draw_bubble(image: Image.Image, item: PlacedText, style: LetteringStyle) -> None:
    """Draw a speech bubble: an anti-aliased ellipse joined to its tail, outlined, then the text."""
    x0, y0, x1, y1 = item.shape_box
    o = style.outline
    points = [x0, y0, x1, y1]
    for px, py in item.tail or ():
        points += [px, py, px, py]
    pad = 2 * o + 2
    left, top = min(points[0::2]) - pad, min(points[1::2]) - pad
    right, bottom = max(points[0::2]) + pad, max(points[1::2]) + pad
    k = _SUPERSAMPLE
    size = ((right - left) * k, (bottom - top) * k)

    def local(x: float, y: float) -> tuple[float, float]:
        return ((x - left) * k, (y - top) * k)

    outer = Image.new("L", size, 0)
    inner = Image.new("L", size, 0)
    draw_outer, draw_inner = ImageDraw.Draw(outer), ImageDraw.Draw(inner)
    draw_outer.ellipse([*local(x0 - o, y0 - o), *local(x1 + o, y1 + o)], fill=255)
    draw_inner.ellipse([*local(x0, y0), *local(x1, y1)], fill=255)
    if item.tail is not None:
        tail = [local(*point) for point in item.tail]
        draw_outer.polygon(tail, fill=255)
        draw_outer.line([*tail, tail[0]], fill=255, width=2 * o * k, joint="curve")
        draw_inner.polygon(tail, fill=255)
    target = (right - left, bottom - top)
    outer = outer.resize(target, Image.Resampling.BOX)
    inner = inner.resize(target, Image.Resampling.BOX)
    image.paste(style.ink, (left, top, right, bottom), outer)
    image.paste(style.bubble_fill, (left, top, right, bottom), inner)
    draw_text(image, item, style)
