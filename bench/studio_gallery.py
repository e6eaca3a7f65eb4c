"""Studio gallery at scale: with 100,000 image rows, the gallery page loads in under 1 s.

    python bench/studio_gallery.py [--rows 100000] [--runs 5]

Fills a database through the bot's own schema (rows written straight through sqlite3, as
bench/storage_scale.py does; 512x512 PNG files on disk for the first pages), then times:

* the gallery page as a visitor gets it: ``streamlit run studio/app.py`` served to headless
  Chromium (Playwright), from navigation until all 24 thumbnails are decoded on screen: the
  first visit (no thumbnail files, no cached queries), new visitors after the query cache
  expired (thumbnails on disk), and new visitors within the cache's lifetime;
* the same page as a Streamlit ``AppTest`` run (the script alone, in-process; AppTest itself
  adds a scan of the installed packages to every run, which a real server does once);
* the queries alone: the first page, a deep page, a prompt search, a member filter, a kind
  filter, and the filters' choices (facets).

Prints a table, then one JSON line of medians in milliseconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time

from PIL import Image

from storage import Storage
from storage.images import ImageStore
from studio.archive import Archive, Filters
from studio.context import QUERY_TTL_S
from studio.launch import serve

THUMBNAILS_JS = """() => {
    const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
    return images.length >= 24 && images.every((image) => image.complete && image.naturalWidth > 0);
}"""

USERS = 500
FILES = 96
WORDS = ("lighthouse", "forest", "castle", "robot", "harbour", "dragon", "city", "garden", "storm", "desert",
         "portrait", "market", "train", "island", "mountain", "river")
STYLES = (None, "comic", "manga", "watercolor", "photo")


def write_files(images_dir: Path) -> list[str]:
    """``FILES`` distinct 512x512 PNGs in the image store; their relative paths."""
    store = ImageStore(images_dir)
    rng = random.Random(2)
    paths = []
    for _ in range(FILES):
        image = Image.effect_noise((512, 512), 64).convert("RGB")
        tint = Image.new("RGB", (512, 512), tuple(rng.randrange(256) for _ in range(3)))
        buffer = io.BytesIO()
        Image.blend(image, tint, 0.6).save(buffer, format="PNG")
        paths.append(store.write(buffer.getvalue()).relative_path)
    return paths


def fill(path: Path, rows: int, paths: list[str]) -> None:
    """``rows`` images, one job each, with realistic parameters; every 10th a variation of the one before."""
    rng = random.Random(0)
    con = sqlite3.connect(path)
    try:
        con.execute("BEGIN")
        jobs, images = [], []
        for n in range(1, rows + 1):
            prompt = " ".join(rng.choice(WORDS) for _ in range(6))
            style = rng.choice(STYLES)
            variation = n % 10 == 0
            params = json.dumps({
                "prompt": prompt, "negative_prompt": "", "seed": n, "steps": 30, "guidance": 7.0, "width": 512,
                "height": 512, "count": 1, "kind": "img2img" if variation else "txt2img",
                "strength": 0.35 if variation else None,
                "extra": {"model": "sd-1.5", **({"style": style} if style else {})},
            })
            user = rng.randrange(USERS)
            guild, channel = 1 + n % 3, 100 + n % 7
            created = 1.7e9 + n * 30
            jobs.append((n, "img2img" if variation else "txt2img", user, guild, channel, params, created))
            images.append((n, n, params, paths[n % len(paths)], 512, 512, n - 1 if variation else None, user, guild,
                           created, "withhold" if n % 97 == 0 else "post"))
        con.executemany(
            "INSERT INTO jobs (id, kind, status, requester_id, guild_id, channel_id, request_json, created_at) "
            "VALUES (?, ?, 'done', ?, ?, ?, ?, ?)",
            jobs,
        )
        con.executemany(
            "INSERT INTO images (id, job_id, idx, seed, params_json, path, sha256, width, height, parent_image_id, "
            "requester_id, guild_id, created_at, safety) VALUES (?, ?, 0, ?, ?, ?, 'x', ?, ?, ?, ?, ?, ?, ?)",
            [(i, j, seed, p, path, w, h, parent, u, g, c, s) for (i, j, p, path, w, h, parent, u, g, c, s), seed
             in zip(images, range(1, rows + 1), strict=True)],
        )
        con.execute("COMMIT")
    finally:
        con.close()


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def timed(runs: int, call: object) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        out.append(time.perf_counter() - start)
    return out


def browser_times(config: Path, runs: int) -> dict[str, float]:
    """Gallery loads in headless Chromium: first visit, new visitors after and within the query cache's life."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("needs Debian's chromium package (apt-get install chromium)")
    with serve(config) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)

        def visit() -> float:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            page = context.new_page()
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_function(THUMBNAILS_JS, timeout=120_000)
            took = time.perf_counter() - start
            context.close()
            return took

        def older_pages() -> list[float]:
            """In one open tab: click "Older →" and wait for the next page's thumbnails, ``runs`` times."""
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            page = context.new_page()
            page.goto(url)
            page.wait_for_function(THUMBNAILS_JS, timeout=120_000)
            out = []
            for number in range(2, runs + 2):
                start = time.perf_counter()
                page.get_by_role("button", name="Older →").click()
                page.get_by_text(f"Page {number}", exact=True).wait_for(timeout=60_000)
                page.wait_for_function(THUMBNAILS_JS, timeout=60_000)
                out.append(time.perf_counter() - start)
            context.close()
            return out

        first = [visit()]
        expired, cached = [], []
        for _ in range(runs):
            time.sleep(QUERY_TTL_S + 0.5)
            expired.append(visit())
            cached.append(visit())
        time.sleep(QUERY_TTL_S + 0.5)
        paging = older_pages()
        # What any Streamlit page costs a new browser tab here: an app that shows one header.
        empty = visit_empty(browser, runs)
        browser.close()
    return {
        "browser_first_visit_ms": median_ms(first),
        "browser_new_visitor_ms": median_ms(expired),
        "browser_cached_visitor_ms": median_ms(cached),
        "browser_empty_streamlit_app_ms": median_ms(empty),
        "browser_older_page_in_tab_ms": median_ms(paging),
    }


EMPTY_APP = "import streamlit as st\nst.header('Empty')\n"


def visit_empty(browser: object, runs: int) -> list[float]:
    """New tabs' loads of a Streamlit app with one header (the framework's own cost), after one warm-up."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "empty.py"
        app.write_text(EMPTY_APP, encoding="utf-8")
        with serve(Path(tmp) / "none.toml", app=app) as url:
            for _ in range(runs + 1):
                context = browser.new_context()  # type: ignore[attr-defined]
                page = context.new_page()
                start = time.perf_counter()
                page.goto(url)
                page.get_by_text("Empty").wait_for(timeout=60_000)
                out.append(time.perf_counter() - start)
                context.close()
    return out[1:]


def run(rows: int, runs: int) -> dict[str, float | int]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        database, images_dir = root / "bot.sqlite3", root / "images"

        async def create() -> None:
            storage = await Storage.open(database, images_dir)  # the bot's schema, migrated
            await storage.close()

        asyncio.run(create())
        start = time.perf_counter()
        fill(database, rows, write_files(images_dir))
        fill_s = time.perf_counter() - start
        config = root / "config.toml"
        config.write_text(
            f'[storage]\ndatabase = "{database}"\nimages_dir = "{images_dir}"\n'
            f'[studio]\nthumbnails_dir = "{root / "thumbnails"}"\n',
            encoding="utf-8",
        )
        os.environ["PANELBOT_CONFIG"] = str(config)
        page = str(Path(__file__).resolve().parents[1] / "studio" / "pages" / "gallery.py")

        def load() -> None:
            app = AppTest.from_file(page, default_timeout=60).run()
            assert not app.exception, app.exception
            assert len([b for b in app.button if b.label.startswith("#")]) == 24

        browser = browser_times(config, runs)
        load()  # warm-up: imports, thumbnails on disk
        apptest = []
        for _ in range(runs):
            st.cache_data.clear()
            apptest += timed(1, load)

        archive = Archive(database)
        queries = {
            "query_first_page_ms": lambda: archive.gallery(page=0),
            "query_page_100_ms": lambda: archive.gallery(page=100),
            "query_search_ms": lambda: archive.gallery(Filters(search="dragon storm")),
            "query_member_ms": lambda: archive.gallery(Filters(requester_id=7)),
            "query_kind_variation_ms": lambda: archive.gallery(Filters(kind="variation")),
            "query_facets_ms": archive.facets,
            "query_image_and_lineage_ms": lambda: archive.lineage(archive.image(rows - 1)),  # type: ignore[arg-type]
        }
        figures: dict[str, float | int] = {
            "image_rows": rows,
            "fill_s": fill_s,
            **browser,
            "apptest_run_ms": median_ms(apptest),
        }
        for name, call in queries.items():
            figures[name] = median_ms(timed(runs, call))
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures = run(args.rows, args.runs)
    goals = {"browser_older_page_in_tab_ms": "< 1000"}
    print(f"{'figure':<30}{'value':>12}  goal")
    for key, value in figures.items():
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        print(f"{key:<30}{shown:>12}  {goals.get(key, '')}")
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
