"""The gallery's URL (filters and page as query parameters) and its HTML grid of thumbnail links."""

from __future__ import annotations

import base64
import html
import io
import re
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl

from PIL import Image

from studio.archive import Filters
from studio.gallery_links import GalleryPlace, filters_on, image_link, place_from_query, place_query
from studio.thumbnail_grid import CAPTION_CHARS, Cell, data_uri, grid_html
from studio.thumbnails import thumbnail_path


def test_a_gallery_place_survives_the_url() -> None:
    since, until = datetime(2026, 11, 1, tzinfo=UTC).timestamp(), datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    filters = Filters(search="red kite", guild_id=10, channel_id=100, requester_id=1001, model="sd-1.5",
                      style="noir", kind="variation", since=since, until=until)
    place = GalleryPlace(filters, date(2026, 11, 1), date(2026, 11, 30), page=2)
    query = place_query(place)
    assert query == {"search": "red kite", "server": "10", "channel": "100", "member": "1001", "model": "sd-1.5",
                     "style": "noir", "kind": "variation", "from": "2026-11-01", "to": "2026-11-30", "page": "3"}
    assert place_from_query(query) == place
    assert filters_on(place) == 8


def test_the_plain_gallery_has_an_empty_query_and_odd_values_narrow_nothing() -> None:
    assert place_query(GalleryPlace()) == {}
    assert place_from_query({}) == GalleryPlace()
    assert filters_on(GalleryPlace()) == 0
    odd = place_from_query({"server": "ten", "member": "1e3", "kind": "sculpture", "from": "2026-13-01",
                            "to": "2026-11-30", "page": "0"})
    assert odd == GalleryPlace()
    backwards = place_from_query({"from": "2026-11-30", "to": "2026-11-01"})  # an empty range is no range
    assert backwards.filters.since is None and backwards.first_day is None


def test_an_image_link_keeps_the_gallery_place_for_the_way_back() -> None:
    place = GalleryPlace(Filters(search="a & b", kind="panel"), page=4)
    link = image_link(42, place)
    assert link.startswith("?image=42&")
    query = dict(parse_qsl(link[1:]))
    assert query.pop("image") == "42"
    assert place_from_query(query) == place


def webp(tmp_path: Path) -> Path:
    source = tmp_path / "images" / "ab" / "abcdef.png"
    source.parent.mkdir(parents=True)
    Image.new("RGB", (512, 384), (200, 40, 40)).save(source)
    made = thumbnail_path(tmp_path / "images", "ab/abcdef.png", tmp_path / "thumbnails")
    assert made is not None
    return made


def test_the_grid_is_links_with_inline_pictures_and_escaped_prompts(tmp_path: Path) -> None:
    picture = data_uri(webp(tmp_path))
    prompt = 'a "quoted" <script>alert(1)</script> & a very long prompt that goes on and on past the caption'
    body = grid_html(
        [Cell(7, image_link(7, GalleryPlace(page=1)), picture, prompt), Cell(3, "?image=3", None, "missing file")],
        "Gallery",
    )
    assert "<script>" not in body
    assert 'aria-label="Gallery"' in body
    links = re.findall(r'<a role="listitem" href="([^"]+)" data-image="(\d+)" title="([^"]*)">', body)
    assert [(html.unescape(href), int(i)) for href, i, _ in links] == [("?image=7&page=2", 7), ("?image=3", 3)]
    assert html.unescape(links[0][2]) == prompt  # the whole prompt in the tooltip (it is under 200 characters)
    captions = [html.unescape(c) for c in re.findall(r'<div class="prompt">([^<]*)</div>', body)]
    assert captions[0] == prompt[: CAPTION_CHARS - 1].rstrip() + "…" and captions[1] == "missing file"
    [inline] = re.findall(r'<img src="data:image/webp;base64,([^"]+)"', body)
    with Image.open(io.BytesIO(base64.b64decode(inline))) as shown:
        assert shown.format == "WEBP" and shown.size == (256, 192)
    assert 'aria-label="image file missing"' in body  # the cell without a file keeps its place and link
