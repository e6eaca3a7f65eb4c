"""Studio gallery at scale: with 100,000 image rows, a new browser tab shows the gallery in under 1 s.

    python bench/studio_gallery.py [--rows 100000] [--runs 7]

Fills a database through the bot's own schema (rows written straight through sqlite3, as
bench/storage_scale.py does; 512x512 PNG files on disk for the first pages), then times what a
visitor sees in headless Chromium (Playwright): from navigation until the first page's 24
thumbnails are decoded in the page (checked on every animation frame, so the next frame paints
them). ``streamlit run studio/app.py`` and an app that shows one header (what any Streamlit page
costs) are served side by side and visited in turn, so each gallery figure has the framework's
floor measured at the same moment next to it:

* a new tab in a browser that has opened the studio before (its static files in the browser's
  cache, as for anyone who comes back): the headline figure;
* a new browser profile (nothing cached: the very first visit of a browser);
* the first visit of all (no thumbnail files, no cached queries), and a new tab after the query
  cache expired; paging ("Older →") in an open tab;
* the same page as a Streamlit ``AppTest`` run (the script alone, in-process; AppTest itself
  adds a scan of the installed packages to every run, which a real server does once);
* the queries alone: the first page, a deep page, a prompt search, a member filter, a kind
  filter, and the filters' choices (facets).

The load average is printed before and after: on a shared machine the absolute times grow with
it, the difference to the floor much less. Prints a table, then one JSON line (milliseconds).
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
from typing import TYPE_CHECKING

from PIL import Image

from storage import Storage
from storage.images import ImageStore
from studio.archive import Archive, Filters
from studio.context import QUERY_TTL_S
from studio.launch import serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

#: The gallery's first page is on screen: 24 thumbnails in the grid, every one decoded.
THUMBNAILS_JS = """() => {
    const images = [...document.querySelectorAll('.panelbot-grid[aria-label="Gallery"] img')];
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


def load_average() -> float:
    """The 1-minute load average (0 where the system does not tell)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def browser_times(config: Path, runs: int) -> dict[str, float]:
    """Gallery loads in headless Chromium, each next to the empty app's at the same moment."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("needs Debian's chromium package (apt-get install chromium)")
    viewport = {"width": 1600, "height": 1000}
    with tempfile.TemporaryDirectory() as tmp, serve(config) as url, sync_playwright() as playwright:
        empty_app = Path(tmp) / "empty.py"
        empty_app.write_text(EMPTY_APP, encoding="utf-8")
        with serve(Path(tmp) / "none.toml", app=empty_app) as empty_url:
            browser = playwright.chromium.launch(executable_path=executable)

            def visit(context: BrowserContext, empty: bool = False) -> float:
                """One new tab in ``context``: navigation until the page is on screen; the tab is closed."""
                page = context.new_page()
                start = time.perf_counter()
                page.goto(empty_url if empty else url)
                if empty:
                    page.get_by_text("Empty").wait_for(timeout=60_000)
                else:
                    page.wait_for_function(THUMBNAILS_JS, timeout=120_000)
                took = time.perf_counter() - start
                page.close()
                return took

            def in_new_profile(empty: bool = False) -> float:
                context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
                try:
                    return visit(context, empty)
                finally:
                    context.close()

            figures: dict[str, float] = {"load_average_before": load_average()}
            first = [in_new_profile()]
            tabs: list[float] = []
            tabs_empty: list[float] = []
            profiles: list[float] = []
            profiles_empty: list[float] = []
            returning = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
            visit(returning), visit(returning, empty=True)  # the browser has seen both once
            for _ in range(runs):
                tabs_empty.append(visit(returning, empty=True))
                tabs.append(visit(returning))
                profiles_empty.append(in_new_profile(empty=True))
                profiles.append(in_new_profile())
            expired = []
            for _ in range(min(runs, 3)):
                time.sleep(QUERY_TTL_S + 0.5)
                expired.append(visit(returning))
            returning.close()
            time.sleep(QUERY_TTL_S + 0.5)
            paging = older_pages(browser, url, viewport, runs)
            browser.close()
    figures.update({
        "browser_new_tab_ms": median_ms(tabs),
        "browser_new_tab_empty_app_ms": median_ms(tabs_empty),
        "browser_new_tab_over_empty_ms": median_ms(tabs) - median_ms(tabs_empty),
        "browser_new_profile_ms": median_ms(profiles),
        "browser_new_profile_empty_app_ms": median_ms(profiles_empty),
        "browser_new_profile_over_empty_ms": median_ms(profiles) - median_ms(profiles_empty),
        "browser_first_visit_ms": median_ms(first),
        "browser_new_tab_query_cache_expired_ms": median_ms(expired),
        "browser_older_page_in_tab_ms": median_ms(paging),
        "load_average_after": load_average(),
    })
    return figures


def older_pages(browser: Browser, url: str, viewport: dict[str, int], runs: int) -> list[float]:
    """In one open tab: click "Older →" and wait for the next page's thumbnails, ``runs`` times."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
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


#: What any Streamlit page costs a new tab here: an app that shows one header.
EMPTY_APP = "import streamlit as st\nst.header('Empty')\n"


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
            assert app.html[0].value.count("data-image=") == 24

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
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    figures = run(args.rows, args.runs)
    goals = {"browser_new_tab_ms": "< 1000", "browser_older_page_in_tab_ms": "< 1000"}
    print(f"{'figure':<42}{'value':>10}  goal")
    for key, value in figures.items():
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        print(f"{key:<42}{shown:>10}  {goals.get(key, '')}")
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
