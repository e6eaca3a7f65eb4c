"""Comic lettering: narration captions, speech bubbles and the title, fitted to their space.

Text is wrapped and its size chosen so it fits: each kind of text starts at a maximum
font size and shrinks step by step to a minimum readable size. Text that does not fit
even at the minimum raises :class:`TextDoesNotFit` with a short message for the user.

The fitting is pure measurement (no drawing), so :func:`check_panel_text` is cheap and
gives exactly the answer the renderer will: the bot calls it before it queues a panel,
so users hear that their text is too long before any GPU work is done.

Placement inside a panel frame:

* the caption is a rectangle in the top-left corner (top-right for right-to-left comics);
* the speech bubble is an ellipse (a rounded box in short, wide panels) at the top of the
  panel, below the caption when the two would collide, with a tail that slants down
  toward the speaker's side (``left``, ``right``, or straight down for ``center``); the
  bubble is placed so the tail's tip is over where such a speaker usually stands (about a
  quarter of the way in from that side).

Shapes are described by their fill area; the renderer draws the outline just outside it.
Nothing here draws: :mod:`composition.comic_render` does.
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

from PIL import ImageFont

from composition.comic_layout import smallest_frame_size

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
Point = tuple[int, int]
SpeakerSide = Literal["left", "right", "center"]
TextKind = Literal["caption", "dialogue", "title"]
BubbleShape = Literal["ellipse", "rounded"]
ShapeName = Literal["rectangle", "ellipse", "rounded", "none"]

SPEAKER_SIDES: Final[tuple[str, ...]] = ("left", "right", "center")
# Where across the panel (0 = left edge, 1 = right edge) a bubble's tail aims for each side.
SPEAKER_POSITION: Final[dict[str, float]] = {"left": 0.27, "right": 0.73, "center": 0.5}
FONT_DIR: Final = Path(__file__).resolve().parent / "fonts"
DEFAULT_FONT: Final = FONT_DIR / "ComicNeue-Regular.otf"
DEFAULT_BOLD_FONT: Final = FONT_DIR / "ComicNeue-Bold.otf"

_SAMPLE_PROSE: Final = (
    "well I never thought we would get this far but here we are at last so tell me "
    "what happens next and why the sky looks so strange tonight "
)


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

    Line ``i`` is drawn with its anchor at ``(0, i * pitch)`` (``anchor`` 'la': left edge;
    'ma': centre); ``ink[i]`` is the box its glyphs cover, relative to the block's origin.
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

    ``shape_box`` is the fill area of the caption box or bubble (its ``shape`` says which:
    'rectangle', 'ellipse', 'rounded', or 'none' for the title); ``text_box`` is the union of the
    drawn glyphs; ``line_boxes`` are each line's glyph box; ``tail`` is the speech tail as
    (base, tip, base) or None. All in page pixels.
    """

    kind: TextKind
    shape: ShapeName
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
        return tuple((x + b[0], y + b[1], x + b[2], y + b[3]) for b in self.block.ink)

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


@dataclass(frozen=True)
class MeasuredText:
    """Text split into paragraphs and words, each word's width measured once in one font.

    Wrapping then needs only additions, so trying many wrap widths is cheap.
    """

    font: ImageFont.FreeTypeFont
    paragraphs: tuple[tuple[str, ...], ...]
    widths: tuple[tuple[float, ...], ...]
    space: float

    @property
    def longest_word(self) -> float:
        return max((w for widths in self.widths for w in widths), default=0.0)

    @property
    def total_width(self) -> float:
        """The width of all the text set on one line."""
        return sum(sum(widths) + self.space * (len(widths) - 1) for widths in self.widths)

    def wrap(self, max_width: float) -> list[str]:
        """Greedy word wrap to ``max_width`` px; explicit newlines kept; words too long are cut."""
        lines: list[str] = []
        for words, widths in zip(self.paragraphs, self.widths, strict=True):
            current: list[str] = []
            current_width = 0.0
            for word, width in zip(words, widths, strict=True):
                pieces = [(word, width)]
                if width > max_width:
                    pieces = [(p, self.font.getlength(p)) for p in _break_word(word, self.font, max_width)]
                for piece, piece_width in pieces:
                    if current and current_width + self.space + piece_width > max_width:
                        lines.append(" ".join(current))
                        current, current_width = [piece], piece_width
                    else:
                        current_width += (self.space if current else 0.0) + piece_width
                        current.append(piece)
            if current:
                lines.append(" ".join(current))
        return lines


@functools.lru_cache(maxsize=512)
def measure_text(text: str, path: Path, size: int) -> MeasuredText:
    """Measure (and cache) the words of normalized ``text`` in the font at ``path``, ``size`` px."""
    font = load_font(path, size)
    paragraphs = tuple(tuple(p.split()) for p in text.split("\n") if p.strip())
    widths = tuple(tuple(font.getlength(word) for word in words) for words in paragraphs)
    return MeasuredText(font, paragraphs, widths, font.getlength(" "))


def _block(lines: Sequence[str], path: Path, size: int, anchor: Literal["la", "ma"],
           spacing: float) -> TextBlock:
    font = load_font(path, size)
    pitch = max(1, round(size * spacing))
    ink = tuple(_ink_box(font, line, anchor, i * pitch) for i, line in enumerate(lines))
    return TextBlock(tuple(lines), path, size, pitch, anchor, ink)


def _ink_box(font: ImageFont.FreeTypeFont, line: str, anchor: str, dy: int) -> Box:
    left, top, right, bottom = font.getbbox(line, anchor=anchor)
    return (math.floor(left), math.floor(top) + dy, math.ceil(right), math.ceil(bottom) + dy)


def _sizes(pair: tuple[int, int], step: int) -> list[int]:
    largest, smallest = pair
    sizes = list(range(largest, smallest - 1, -max(1, step)))
    if sizes[-1] != smallest:
        sizes.append(smallest)
    return sizes


def fit_rectangle(text: str, max_size: tuple[int, int], *, path: Path, sizes: tuple[int, int],
                  style: LetteringStyle) -> tuple[TextBlock, tuple[int, int]] | None:
    """The largest left-aligned block that fits a box of at most ``max_size``, and that box's size.

    Lines are evened out, so a caption does not end in a lone word.
    """
    max_w, max_h = max_size
    for size in _sizes(sizes, style.size_step):
        pad_x, pad_y = round(size * 0.55), round(size * 0.4)
        inner_w = max_w - 2 * pad_x
        if inner_w < size:
            continue
        pitch = round(size * style.line_spacing)
        max_lines = int((max_h - 2 * pad_y - size) // pitch) + 1
        wraps = _balanced_wraps(measure_text(text, path, size), inner_w, max_lines, fewest_only=True)
        if not wraps:
            continue
        lines = wraps[0]  # the fewest lines, evened out
        block = _block(lines, path, size, "la", style.line_spacing)
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
    for left_, top_, right_, bottom_ in block.ink:
        dx = max(abs(left_ - cx), abs(right_ - cx))
        dy = max(abs(top_ - cy), abs(bottom_ - cy))
        worst = max(worst, (dx / half_w) ** 2 + (dy / half_h) ** 2)
    return math.sqrt(worst)


def _bubble_size(block: TextBlock, shape: BubbleShape) -> tuple[int, int]:
    """Width and height of the bubble (fill area) that holds ``block`` with padding."""
    left, top, right, bottom = block.bounds
    size = block.font_size
    if shape == "ellipse":
        scale = _ellipse_scale(block)
        width = scale * (right - left) + 1.8 * size
        height = scale * (bottom - top) + 1.1 * size
        width = max(width, height * 1.15)
    else:  # rounded: padding chosen so the text clears corners of radius up to 2 * size
        width = (right - left) + 1.6 * size
        height = (bottom - top) + 1.0 * size
    return (math.ceil(width) + 2, math.ceil(height) + 2)


def corner_radius(shape_box: Box, font_size: int) -> int:
    """Corner radius of a rounded bubble: at most half its height and twice the font size."""
    return max(1, min((shape_box[3] - shape_box[1]) // 2, 2 * font_size))


def _balanced_wraps(measured: MeasuredText, widest: float, max_lines: int, *,
                    fewest_only: bool = False) -> list[list[str]]:
    """For each line count from the fewest possible up to ``max_lines``, the most even wrap.

    The narrowest width that still gives that many lines evens out the line lengths, so a
    lone last word does not dangle under a long line. Empty when even the fewest lines are
    more than ``max_lines``; ``fewest_only`` stops after the first.
    """
    floor = math.ceil(measured.longest_word)
    if floor > widest:  # a word has to be cut anyway: let balancing cut it shorter
        floor = math.floor(widest / 2)
    wraps: list[list[str]] = []
    fewest = len(measured.wrap(widest))
    last = fewest if fewest_only else max_lines
    for count in range(fewest, min(last, max_lines) + 1):
        low, high = floor, math.floor(widest)
        while low < high:
            mid = (low + high) // 2
            if len(measured.wrap(mid)) <= count:
                high = mid
            else:
                low = mid + 1
        lines = measured.wrap(low)
        if not wraps or lines != wraps[-1]:
            wraps.append(lines)
        if len(lines) < count:  # narrower wraps cannot add lines any more
            break
    return wraps


def _fit_bubble_shape(text: str, max_size: tuple[int, int], shape: BubbleShape, *, path: Path,
                      sizes: tuple[int, int], style: LetteringStyle) -> FittedBubble | None:
    """The largest font size at which ``text`` fits a bubble of ``shape`` within ``max_size``.

    At that size the line count whose bubble has the smallest area, nudged toward a pleasant
    shape (2:1 for ellipses, 2.8:1 for rounded boxes), wins.
    """
    max_w, max_h = max_size
    ideal = 2.0 if shape == "ellipse" else 2.8
    for size in _sizes(sizes, style.size_step):
        measured = measure_text(text, path, size)
        pitch = max(1, round(size * style.line_spacing))
        widest = max_w - 1.6 * size
        max_lines = int((max_h - 2 * size) // pitch) + 1
        if widest < size or max_lines < 1:
            continue
        if 0.9 * measured.total_width > widest * max_lines:  # cannot fit even as a full box
            continue
        best: tuple[float, FittedBubble] | None = None
        for lines in _balanced_wraps(measured, widest, max_lines):
            block = _block(lines, path, size, "ma", style.line_spacing)
            width, height = _bubble_size(block, shape)
            if width > max_w or height > max_h:
                continue
            cost = width * height * (1 + 0.3 * abs(math.log(width / height / ideal)))
            if best is None or cost < best[0]:
                best = (cost, FittedBubble(block, (width, height), shape))
        if best is not None:
            return best[1]
    return None


@dataclass(frozen=True)
class FittedBubble:
    """Text fitted into a speech bubble: the block, the bubble's size and its shape."""

    block: TextBlock
    size: tuple[int, int]
    shape: BubbleShape


def fit_bubble(text: str, max_size: tuple[int, int], *, path: Path, sizes: tuple[int, int],
               style: LetteringStyle) -> FittedBubble | None:
    """Fit dialogue into an ellipse, or a rounded box where an ellipse wastes too much room.

    The ellipse is the normal shape; the rounded box is used when no ellipse fits, when it
    allows a clearly larger font (three sizes or more), or when the ellipse would be flatter
    than 3.5:1 (short, wide panels).
    """
    ellipse = _fit_bubble_shape(text, max_size, "ellipse", path=path, sizes=sizes, style=style)
    if ellipse is not None and ellipse.size[0] <= 3.5 * ellipse.size[1]:
        clearly_larger = ellipse.block.font_size + 3 * style.size_step
        if clearly_larger > sizes[0]:
            return ellipse
        rounded = _fit_bubble_shape(text, max_size, "rounded", path=path,
                                    sizes=(sizes[0], clearly_larger), style=style)
        return rounded or ellipse
    rounded = _fit_bubble_shape(text, max_size, "rounded", path=path, sizes=sizes, style=style)
    return rounded or ellipse


def _fits(kind: TextKind, text: str, region: tuple[int, int], style: LetteringStyle, size: int) -> bool:
    """Whether ``text`` fits ``region`` at font ``size`` exactly."""
    if kind == "dialogue":
        return fit_bubble(text, region, path=style.bold_font, sizes=(size, size), style=style) is not None
    if kind == "caption":
        return fit_rectangle(text, region, path=style.regular_font, sizes=(size, size),
                             style=style) is not None
    return _fit_title(text, region, replace(style, title_sizes=(size, size))) is not None


@functools.lru_cache(maxsize=64)
def estimate_max_chars(kind: TextKind, region: tuple[int, int], style: LetteringStyle) -> int:
    """Roughly how many characters of ordinary prose fit ``region`` at the smallest size."""
    smallest = {"caption": style.caption_sizes, "dialogue": style.dialogue_sizes,
                "title": style.title_sizes}[kind][1]
    sample = _SAMPLE_PROSE * 20
    low, high = 0, 2000
    while low < high:
        mid = (low + high + 1) // 2
        if _fits(kind, sample[:mid].strip(), region, style, smallest):
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
    log.debug("%s does not fit %s px (about %d characters would)", kind, region, max_chars)
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
    tail = max(round(0.9 * style.dialogue_sizes[1]),
               min(round(0.14 * inner_h), round(2.2 * style.dialogue_sizes[0])))
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


def _fit_dialogue(text: str, regions: _Regions, style: LetteringStyle) -> FittedBubble:
    fitted = fit_bubble(text, regions.bubble_max, path=style.bold_font,
                        sizes=style.dialogue_sizes, style=style)
    if fitted is None:
        raise _too_long("dialogue", regions.bubble_max, style)
    return fitted


def _overlaps(a: Box, b: Box, margin: int) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0]
                or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _tail(shape_box: Box, shape: BubbleShape, font_size: int, side: SpeakerSide, length: int,
          inner: Box) -> tuple[Point, Point, Point]:
    """A tail leaving the bubble's lower edge and pointing down toward ``side``: (base, tip, base)."""
    x0, y0, x1, y1 = shape_box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a, b = (x1 - x0) / 2, (y1 - y0) / 2
    direction = {"left": -1, "right": 1, "center": 0}[side]
    half_base = max(4.0, min(0.14 * a, 0.45 * length))
    sink = max(0.12 * b, 3.0)  # base points sit inside the bubble so the join is seamless
    if shape == "ellipse":
        base_x = cx + direction * 0.3 * a

        def base(x: float) -> Point:
            u = max(-1.0, min(1.0, (x - cx) / a))
            return (round(x), round(cy + b * math.sqrt(1 - u * u) - sink))
    else:
        radius = corner_radius(shape_box, font_size)
        reach = max(0.0, a - radius - half_base)
        base_x = cx + direction * min(0.5 * a, reach)

        def base(x: float) -> Point:
            return (round(x), round(y1 - sink))

    tip_x = min(max(base_x + direction * 0.9 * length, inner[0]), inner[2])
    tip = (round(tip_x), min(y1 + length, inner[3]))
    return (base(base_x - half_base), tip, base(base_x + half_base))


def shape_contains(shape: ShapeName, shape_box: Box, point: tuple[float, float], font_size: int = 0) -> bool:
    """Whether ``point`` lies inside the fill area of a caption box or bubble."""
    x0, y0, x1, y1 = shape_box
    x, y = point
    if not (x0 <= x <= x1 and y0 <= y <= y1):
        return False
    if shape in ("rectangle", "none"):
        return True
    if shape == "ellipse":
        a, b = (x1 - x0) / 2, (y1 - y0) / 2
        return ((x - x0 - a) / a) ** 2 + ((y - y0 - b) / b) ** 2 <= 1.0
    radius = corner_radius(shape_box, font_size)
    nearest_x = min(max(x, x0 + radius), x1 - radius)
    nearest_y = min(max(y, y0 + radius), y1 - radius)
    return (x - nearest_x) ** 2 + (y - nearest_y) ** 2 <= radius**2


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
    ix0, iy0, ix1, _ = regions.inner
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
        bubble = _fit_dialogue(dialogue, regions, style)
        block, (width, height) = bubble.block, bubble.size
        # Put the tail's tip over where a speaker on that side usually stands, moving the
        # bubble only as far as the panel allows.
        target = ix0 + SPEAKER_POSITION[speaker_side] * (ix1 - ix0)
        probe = (0, iy0, width, iy0 + height)
        probe_tip = _tail(probe, bubble.shape, block.font_size, speaker_side, regions.tail_length,
                          (-10**6, iy0, 10**6, 10**6))[1][0]
        left = min(max(round(target - probe_tip), ix0), ix1 - width)
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
        tail = _tail(shape, bubble.shape, block.font_size, speaker_side, regions.tail_length, regions.inner)
        placed.append(PlacedText("dialogue", bubble.shape, shape, block, origin, tail, speaker_side))
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
    default A4 page; pass :func:`composition.comic_layout.smallest_frame_size` for other
    layouts. The answer matches what :func:`layout_panel_text` would do in such a frame,
    whatever the speaker side. Only measures text: no image is drawn.
    """
    if frame_size is None:
        frame_size = smallest_frame_size()
    width, height = frame_size
    layout_panel_text(caption, dialogue, (0, 0, width, height), border=border, style=style)


def _fit_title(text: str, region: tuple[int, int], style: LetteringStyle) -> TextBlock | None:
    max_w, max_h = region
    for size in _sizes(style.title_sizes, style.size_step * 2):
        measured = measure_text(text, style.bold_font, size)
        if measured.total_width > 2 * max_w:
            continue
        wraps = _balanced_wraps(measured, max_w, 2, fewest_only=True)
        if not wraps:  # needs more than two lines
            continue
        lines = wraps[0]  # the fewest lines, evenly split
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
