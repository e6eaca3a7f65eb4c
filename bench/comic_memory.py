"""Peak memory of rendering one page of a comic of many large panels (``/comic show``).

    python bench/comic_memory.py [--panels 60] [--side 2048]

Each variant runs in its own process and reports its peak resident memory (``ru_maxrss``) above
a baseline process that only imported the same modules and wrote the picture:
"before" decodes every panel at full size and renders every page (what ``/comic show`` did);
"after" renders only the page shown, each picture decoded at about its frame's size.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

# The repository, not bench/ (whose queue.py would shadow the standard library's ``queue``).
sys.path[0] = str(Path(__file__).resolve().parents[1])


def run_variant(variant: str, picture: Path, panels: int) -> None:
    from PIL import Image

    from bot.cogs.comic import _pages
    from composition.comic_render import PanelArt, render_comic

    sources = [_pages.PanelSource(picture, None, None, "left") for _ in range(panels)]
    if variant == "before":
        def full(path: Path) -> Image.Image:
            with Image.open(path) as image:
                return image.convert("RGB")

        art = [PanelArt(full(picture), None, None, "left") for _ in sources]
        render_comic("Bench", art, layout="grid", panels_per_page=6)
    elif variant == "after":
        _pages.render_pages("Bench", sources, layout="grid", panels_per_page=6, only_page=1)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=60)
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--picture", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        run_variant(args.variant, args.picture, args.panels)
        return
    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        picture = Path(folder) / "upscale.png"
        Image.effect_noise((args.side, args.side), 64).convert("RGB").save(picture)
        peaks = {}
        for variant in ("baseline", "before", "after"):
            command = [sys.executable, __file__, "--variant", variant, "--picture", str(picture)]
            out = subprocess.run(
                [*command, "--panels", str(args.panels)], check=True, capture_output=True, text=True
            ).stdout
            peaks[variant] = int(out.strip().splitlines()[-1]) / 1024
    for variant in ("before", "after"):
        print(
            f"{variant:>6}: peak {peaks[variant] - peaks['baseline']:7.1f} MiB above baseline "
            f"({args.panels} panels of {args.side}x{args.side}, one page shown)"
        )


if __name__ == "__main__":
    main()
