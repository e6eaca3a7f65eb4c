"""Comic rendering memory (defect 6): pictures decoded at frame size, one page drawn for /comic show,
renders on their own small pool."""

from __future__ import annotations

import threading
from pathlib import Path

from PIL import Image

from bot.cogs.comic import _group_pages, _pages
from tests.reliability import record_reliability

BIG = (2048, 2048)


def big_png(path: Path) -> Path:
    Image.new("RGB", BIG, (200, 80, 40)).save(path)
    return path


def test_a_panel_is_decoded_at_about_its_frame_size(tmp_path: Path) -> None:
    picture = _pages._load(big_png(tmp_path / "big.png"), (500, 400))
    assert picture.width >= 500 and picture.height >= 400
    assert picture.width * picture.height <= BIG[0] * BIG[1] // 4
    jpeg = tmp_path / "big.jpg"
    Image.new("RGB", BIG, (10, 90, 200)).save(jpeg, quality=90)
    picture = _pages._load(jpeg, (500, 400))
    assert 500 <= picture.width < BIG[0] // 2 and picture.height >= 400


def test_show_draws_only_the_page_shown(tmp_path: Path) -> None:
    """Defect 6: /comic show rendered every page (every picture at full size) to post one."""
    path = big_png(tmp_path / "big.png")
    panels = [_pages.PanelSource(path, None, None, "left") for _ in range(12)]
    [page] = _pages.render_pages("Twelve", panels, layout="grid", panels_per_page=4, only_page=2)
    assert page.page_number == 2
    every = _pages.render_pages("Twelve", panels, layout="grid", panels_per_page=4)
    assert [p.page_number for p in every] == [1, 2, 3]
    assert page.image.tobytes() == every[1].image.tobytes()
    record_reliability("defect", "6. comic show renders every page at full size", 1, "one page, frame-sized decodes")


async def test_renders_run_on_the_bounded_render_pool() -> None:
    name = await _group_pages._in_render_pool(lambda: threading.current_thread().name)
    assert name.startswith("comic-render")
    assert _group_pages._RENDER_POOL._max_workers == _group_pages.RENDER_WORKERS
