"""Regenerate the sample comic in this folder: seven panels of procedural art, lettered.

Run from the repository root::

    python docs/comic-sample/make_sample.py

No model is involved: the "art" is drawn with Pillow (skies, sea, a lighthouse, figure
silhouettes) so the pages show what the layout and lettering do with real-looking panels.
Writes ``page-1.png`` and ``page-2.png`` beside this script (JPEG if a PNG would be over
600 KB).
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from composition.comic_export import export_png
from composition.comic_render import PanelArt, render_comic

OUT = Path(__file__).resolve().parent
SIZE = 1024
K = 2  # draw at 2x, then scale down for smooth edges
MAX_BYTES = 600_000

Colour = tuple[int, int, int]


def _blend(a: Colour, b: Colour, t: float) -> Colour:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def sky(top: Colour, bottom: Colour, horizon: float = 0.62) -> Image.Image:
    """A canvas with a vertical gradient sky down to ``horizon`` (fraction of the height)."""
    size = SIZE * K
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):
        draw.line([(0, y), (size, y)], fill=_blend(top, bottom, min(1.0, y / (size * horizon))))
    return image


def glow(image: Image.Image, centre: tuple[float, float], radius: float, colour: Colour) -> None:
    """A soft disc of light (sun, moon, lamp)."""
    size = image.size[0]
    halo = Image.new("L", image.size, 0)
    cx, cy = centre[0] * size, centre[1] * size
    r = radius * size
    ImageDraw.Draw(halo).ellipse((cx - 2.2 * r, cy - 2.2 * r, cx + 2.2 * r, cy + 2.2 * r), fill=110)
    halo = halo.filter(ImageFilter.GaussianBlur(r))
    image.paste(colour, (0, 0), halo)
    ImageDraw.Draw(image).ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)


def sea(image: Image.Image, top: float, deep: Colour, light: Colour, rough: float = 0.0, seed: int = 0) -> None:
    """Water from ``top`` down, with wave strokes."""
    size = image.size[0]
    draw = ImageDraw.Draw(image)
    y0 = round(top * size)
    for row in range(y0, size):
        draw.line([(0, row), (size, row)], fill=_blend(light, deep, (row - y0) / (size - y0)))
    rng = random.Random(seed)
    for _ in range(int(90 + 200 * rough)):
        y = rng.uniform(top, 1.0) * size
        x = rng.uniform(-0.1, 1.0) * size
        length = rng.uniform(0.03, 0.12) * size * (1 + rough)
        amplitude = (4 + 30 * rough) * K * (y / size)
        points = [(x + t * length, y - amplitude * math.sin(math.pi * t)) for t in (0, 0.25, 0.5, 0.75, 1)]
        draw.line(points, fill=_blend(light, (255, 255, 255), 0.35), width=max(2, round(3 * K * y / size)))


def rocks(image: Image.Image, base: float, colour: Colour, left: float, right: float) -> None:
    size = image.size[0]
    points = [(left * size, size), (left * size, base * size), ((left + 0.05) * size, (base - 0.05) * size),
              ((left + 0.14) * size, (base - 0.07) * size), ((right - 0.08) * size, (base - 0.04) * size),
              (right * size, base * size), (right * size, size)]
    ImageDraw.Draw(image).polygon(points, fill=colour)


def lighthouse(image: Image.Image, x: float, base: float, height: float, *, lit: bool,
               beam_to: float | None = None) -> None:
    """A striped tower with a lamp room; ``beam_to`` (x fraction) draws a light beam."""
    size = image.size[0]
    draw = ImageDraw.Draw(image)
    bottom_half, top_half = 0.055 * size, 0.035 * size
    top = (base - height) * size
    cx, by = x * size, base * size
    stripes = 5
    for i in range(stripes):
        t0, t1 = i / stripes, (i + 1) / stripes
        y_a, y_b = by - (by - top) * t0, by - (by - top) * t1
        w_a = bottom_half + (top_half - bottom_half) * t0
        w_b = bottom_half + (top_half - bottom_half) * t1
        draw.polygon([(cx - w_a, y_a), (cx + w_a, y_a), (cx + w_b, y_b), (cx - w_b, y_b)],
                     fill=(200, 40, 40) if i % 2 == 0 else (240, 236, 226))
    lamp = (255, 230, 140) if lit else (120, 130, 140)
    draw.rectangle((cx - top_half * 0.8, top - 0.06 * size, cx + top_half * 0.8, top), fill=lamp)
    draw.rectangle((cx - top_half * 1.2, top - 0.005 * size, cx + top_half * 1.2, top + 0.008 * size),
                   fill=(40, 40, 48))
    draw.polygon([(cx - top_half * 1.1, top - 0.06 * size), (cx + top_half * 1.1, top - 0.06 * size),
                  (cx, top - 0.1 * size)], fill=(40, 40, 48))
    if lit:
        glow(image, (x, (top - 0.03 * size) / size), 0.018, (255, 236, 160))
    if beam_to is not None:
        beam = Image.new("L", image.size, 0)
        ly = top - 0.03 * size
        ImageDraw.Draw(beam).polygon([(cx, ly - 0.01 * size), (beam_to * size, ly - 0.12 * size),
                                      (beam_to * size, ly + 0.08 * size), (cx, ly + 0.01 * size)], fill=120)
        image.paste((255, 240, 180), (0, 0), beam.filter(ImageFilter.GaussianBlur(6 * K)))


def figure(image: Image.Image, x: float, feet: float, height: float, colour: Colour, *,
           facing: int = 1, arm_up: bool = False) -> None:
    """A simple standing silhouette: head, body, legs, arms. ``facing`` 1 = right, -1 = left."""
    size = image.size[0]
    draw = ImageDraw.Draw(image)
    h = height * size
    cx, fy = x * size, feet * size
    head_r = 0.09 * h
    head_cy = fy - h + head_r
    shoulder_y = head_cy + head_r * 1.5
    hip_y = fy - 0.45 * h
    body_w = 0.16 * h
    draw.ellipse((cx - head_r, head_cy - head_r, cx + head_r, head_cy + head_r), fill=colour)
    draw.polygon([(cx - body_w * 0.7, shoulder_y), (cx + body_w * 0.7, shoulder_y),
                  (cx + body_w, hip_y + 0.08 * h), (cx - body_w, hip_y + 0.08 * h)], fill=colour)
    draw.rounded_rectangle((cx - body_w * 0.7, shoulder_y - 0.03 * h, cx + body_w * 0.7, shoulder_y + 0.08 * h),
                           radius=0.04 * h, fill=colour)
    leg = 0.06 * h
    draw.line([(cx - body_w * 0.45, hip_y), (cx - body_w * 0.55, fy)], fill=colour, width=round(leg))
    draw.line([(cx + body_w * 0.45, hip_y), (cx + body_w * 0.55, fy)], fill=colour, width=round(leg))
    arm = round(0.05 * h)
    back_hand = (cx - facing * body_w * 1.05, hip_y + 0.02 * h)
    draw.line([(cx - facing * body_w * 0.7, shoulder_y + 0.02 * h), back_hand], fill=colour, width=arm)
    front_hand = ((cx + facing * body_w * 1.6, shoulder_y - 0.18 * h) if arm_up
                  else (cx + facing * body_w * 1.05, hip_y + 0.02 * h))
    draw.line([(cx + facing * body_w * 0.7, shoulder_y + 0.02 * h), front_hand], fill=colour, width=arm)
    nose = [(cx + facing * head_r * 0.9, head_cy - head_r * 0.05),
            (cx + facing * head_r * 1.15, head_cy + head_r * 0.2),
            (cx + facing * head_r * 0.9, head_cy + head_r * 0.25)]
    draw.polygon(nose, fill=colour)


def rain(image: Image.Image, seed: int, colour: Colour = (170, 180, 210)) -> None:
    size = image.size[0]
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for _ in range(500):
        x, y = rng.uniform(0, size), rng.uniform(0, size)
        draw.line([(x, y), (x - 0.015 * size, y + 0.05 * size)], fill=colour, width=K)


def lightning(image: Image.Image, x: float) -> None:
    size = image.size[0]
    points = [(x, 0.0), (x - 0.04, 0.1), (x + 0.01, 0.14), (x - 0.05, 0.26), (x, 0.3), (x - 0.06, 0.45)]
    ImageDraw.Draw(image).line([(px * size, py * size) for px, py in points], fill=(255, 255, 230),
                               width=5 * K, joint="curve")


def boat(image: Image.Image, x: float, y: float, scale: float, colour: Colour) -> None:
    size = image.size[0]
    w = scale * size
    draw = ImageDraw.Draw(image)
    cx, cy = x * size, y * size
    draw.polygon([(cx - w, cy), (cx + w, cy), (cx + 0.7 * w, cy + 0.35 * w), (cx - 0.7 * w, cy + 0.35 * w)],
                 fill=colour)
    draw.line([(cx, cy), (cx, cy - 1.6 * w)], fill=colour, width=max(2, round(0.06 * w)))
    draw.polygon([(cx + 0.05 * w, cy - 1.5 * w), (cx + 0.05 * w, cy - 0.15 * w), (cx + 0.9 * w, cy - 0.15 * w)],
                 fill=(230, 225, 210))


def finish(image: Image.Image) -> Image.Image:
    return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


# --- The seven panels ---------------------------------------------------------------------


def panel_dusk() -> Image.Image:
    image = sky((48, 40, 110), (250, 150, 90))
    glow(image, (0.3, 0.5), 0.06, (255, 210, 120))
    sea(image, 0.62, (20, 40, 80), (200, 120, 110), seed=1)
    rocks(image, 0.72, (40, 34, 44), 0.5, 1.05)
    lighthouse(image, 0.72, 0.7, 0.42, lit=True)
    return finish(image)


def panel_two_talk() -> Image.Image:
    image = sky((70, 60, 130), (240, 160, 110), horizon=0.7)
    sea(image, 0.66, (25, 45, 85), (190, 120, 120), seed=2)
    ImageDraw.Draw(image).rectangle((0, 0.8 * SIZE * K, SIZE * K, SIZE * K), fill=(60, 50, 56))
    figure(image, 0.36, 0.95, 0.48, (24, 20, 30), facing=1)
    figure(image, 0.64, 0.95, 0.3, (30, 24, 36), facing=-1, arm_up=True)
    return finish(image)


def panel_close_up() -> Image.Image:
    image = sky((60, 50, 110), (220, 140, 120), horizon=1.0)
    glow(image, (0.78, 0.42), 0.05, (255, 220, 150))
    figure(image, 0.42, 1.3, 0.95, (22, 18, 28), facing=1)
    return finish(image)


def panel_storm() -> Image.Image:
    image = sky((14, 16, 30), (60, 66, 90), horizon=0.6)
    lightning(image, 0.78)
    sea(image, 0.6, (10, 20, 40), (70, 84, 110), rough=1.0, seed=4)
    rocks(image, 0.78, (24, 24, 30), -0.05, 0.5)
    lighthouse(image, 0.26, 0.76, 0.4, lit=False)
    figure(image, 0.56, 0.97, 0.26, (10, 10, 14), facing=-1, arm_up=True)
    rain(image, 4)
    return finish(image)


def panel_stairs() -> Image.Image:
    image = sky((70, 56, 48), (30, 24, 22), horizon=1.0)
    draw = ImageDraw.Draw(image)
    size = SIZE * K
    for i in range(9):  # steps climbing to the upper right
        x0 = (0.12 + i * 0.09) * size
        y0 = (0.95 - i * 0.075) * size
        draw.rectangle((x0, y0, x0 + 0.11 * size, size), fill=(110 - i * 4, 92 - i * 4, 80 - i * 3))
        draw.line([(x0, y0), (x0 + 0.11 * size, y0)], fill=(150, 130, 110), width=3 * K)
    glow(image, (0.62, 0.3), 0.02, (255, 210, 120))
    figure(image, 0.4, 0.735, 0.42, (16, 12, 12), facing=1, arm_up=True)
    return finish(image)


def panel_beam() -> Image.Image:
    image = sky((10, 12, 28), (46, 52, 80), horizon=0.6)
    sea(image, 0.6, (8, 16, 34), (50, 64, 96), rough=0.7, seed=6)
    rocks(image, 0.8, (20, 20, 26), -0.05, 0.34)
    lighthouse(image, 0.18, 0.78, 0.45, lit=True, beam_to=1.05)
    boat(image, 0.7, 0.7, 0.05, (30, 26, 24))
    rain(image, 6, (120, 130, 160))
    return finish(image)


def panel_morning() -> Image.Image:
    image = sky((120, 180, 230), (250, 230, 190))
    glow(image, (0.7, 0.3), 0.06, (255, 250, 220))
    sea(image, 0.62, (40, 100, 150), (170, 210, 220), seed=7)
    ImageDraw.Draw(image).rectangle((0, 0.84 * SIZE * K, SIZE * K, SIZE * K), fill=(96, 86, 80))
    figure(image, 0.38, 0.96, 0.44, (40, 36, 44), facing=1)
    figure(image, 0.6, 0.96, 0.28, (44, 40, 50), facing=-1, arm_up=True)
    boat(image, 0.76, 0.66, 0.035, (60, 50, 44))
    return finish(image)


def sample_panels() -> list[PanelArt]:
    return [
        PanelArt(panel_dusk(), "Every night for forty years, Mara lit the lamp at Gull Point.", None),
        PanelArt(panel_two_talk(), None,
                 "Grandma, why do you still light it? No ships come this way anymore.", "right"),
        PanelArt(panel_close_up(), None, "Because one night, one might.", "left"),
        PanelArt(panel_storm(), "That night, the storm came.", "Grandma! The lamp's gone out!", "right"),
        PanelArt(panel_stairs(), None, "Hold the door, Theo. I'm going up.", "left"),
        PanelArt(panel_beam(), "Far out on the water, a small boat turned toward the light.",
                 "There! A light! Steer for it!", "right"),
        PanelArt(panel_morning(), "By morning, the sea was calm again.",
                 "They made it, Grandma. You were right!", "right"),
    ]


def main() -> None:
    pages = render_comic("The Keeper of Gull Point", sample_panels())
    for old in OUT.glob("page-*.*"):
        old.unlink()
    for number, (page, png) in enumerate(zip(pages, export_png(pages), strict=True), start=1):
        if len(png) <= MAX_BYTES:
            (OUT / f"page-{number}.png").write_bytes(png)
        else:
            page.image.save(OUT / f"page-{number}.jpg", quality=88, subsampling=0)
    print("\n".join(sorted(f"{p.name}: {p.stat().st_size // 1024} KB" for p in OUT.glob("page-*.*"))))


if __name__ == "__main__":
    main()
