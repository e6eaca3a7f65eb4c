"""Benchmark: render a lettered 6-panel comic page, and export a 12-panel two-page comic.

Run from the repository root::

    python bench/comic_render.py [--runs 7]

Prints a table of median (and min/max) wall times, then one JSON line with the medians in
milliseconds and the export sizes in bytes. Panel art is 1024x1024 procedural images, the
size Stable Diffusion XL produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py is named like the standard library's `queue`: take this folder off the import
# path before anything imports `queue`, and put the repository root there instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from composition.comic_export import ComicInfo, export_cbz, export_pdf, export_png, fit_to_limit
from composition.comic_render import PanelArt, render_comic

CAPTIONS = [
    "Meanwhile, at the lighthouse on the edge of the world...",
    None,
    "An hour later, the storm arrived.",
    None,
    "By morning, the sea was calm again.",
    None,
]
DIALOGUE = [
    "Who's there? Show yourself!",
    "It's only me. I brought the lantern you asked for.",
    "We need to get inside, now!",
    "Did you hear that? Something is out on the rocks.",
    None,
    "Whatever it was, it's gone now.",
]


def panel_art(seed: int, size: int = 1024) -> Image.Image:
    """Smooth colour fields with noise: compresses roughly like generated art."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([120 + 100 * np.sin(6 * x + seed), 90 + 80 * y, 150 + 60 * np.cos(5 * x * y + seed)], -1)
    rgb += rng.normal(0, 12, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def panels(count: int) -> list[PanelArt]:
    sides = ("left", "right", "center")
    return [PanelArt(panel_art(i), CAPTIONS[i % 6], DIALOGUE[i % 6], sides[i % 3])  # type: ignore[arg-type]
            for i in range(count)]


def timed(function: Callable[[], object], runs: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    six, twelve = panels(6), panels(12)
    pages_12 = render_comic("The Lighthouse Keeper", twelve)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("render 6-panel page", lambda: render_comic("The Lighthouse Keeper", six)),
        ("render 12 panels (2 pages)", lambda: render_comic("The Lighthouse Keeper", twelve)),
        ("export 2 pages png", lambda: export_png(pages_12)),
        ("export 2 pages pdf", lambda: export_pdf(pages_12, title="The Lighthouse Keeper", author="bench")),
        ("export 2 pages cbz", lambda: export_cbz(pages_12, ComicInfo("The Lighthouse Keeper", "bench"))),
        ("fit 2 pages cbz to 1 MB", lambda: fit_to_limit(pages_12, fmt="cbz", limit_bytes=1_000_000,
                                                           title="The Lighthouse Keeper", author="bench")),
    ]
    results: dict[str, float] = {}
    sizes: dict[str, int] = {}
    print(f"{'case':<28} {'median ms':>10} {'min ms':>8} {'max ms':>8}  output")
    for name, function in cases:
        times, result = timed(function, args.runs)
        median = statistics.median(times) * 1000
        results[name] = round(median, 1)
        if isinstance(result, bytes):
            sizes[name] = len(result)
            note = f"{len(result) / 1e6:.2f} MB"
        elif isinstance(result, list) and result and isinstance(result[0], bytes):
            sizes[name] = sum(len(b) for b in result)
            note = f"{sizes[name] / 1e6:.2f} MB in {len(result)} files"
        elif isinstance(result, list) and result and hasattr(result[0], "data"):
            sizes[name] = sum(f.size for f in result)
            note = ", ".join(f"{f.filename} {f.size / 1e6:.2f} MB" for f in result)
        else:
            note = f"{len(result) if isinstance(result, list) else '?'} pages"
        print(f"{name:<28} {median:>10.1f} {min(times) * 1000:>8.1f} {max(times) * 1000:>8.1f}  {note}")
    print(json.dumps({
        "bench": "comic_render",
        "runs": args.runs,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "median_ms": results,
        "bytes": sizes,
    }))


if __name__ == "__main__":
    main()
