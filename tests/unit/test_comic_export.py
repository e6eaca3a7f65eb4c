"""Comic export: PNG pages, multi-page PDF, CBZ with ComicInfo.xml, and fitting to upload limits."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile
from datetime import date

import numpy as np
import pytest
from PIL import Image, PdfParser

from composition.comic_export import (
    ComicInfo,
    Encoding,
    comic_info_xml,
    export_cbz,
    export_pdf,
    export_png,
    fit_to_limit,
)
from composition.comic_render import PanelArt, RenderedPage, render_comic

PAGE_SIZE = (620, 877)  # small A-ratio pages keep the tests fast


def noisy_panel(seed: int, size: tuple[int, int] = (384, 384)) -> Image.Image:
    """Smooth colour with fine noise: compresses like real art rather than like flat colour."""
    rng = np.random.default_rng(seed)
    width, height = size
    base = np.zeros((height, width, 3))
    base[..., 0] = np.linspace(40, 220, width)[None, :]
    base[..., 1] = np.linspace(200, 60, height)[:, None]
    base[..., 2] = 90 + 60 * seed % 120
    noise = rng.normal(0, 28, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def pages() -> list[RenderedPage]:
    panels = [
        PanelArt(noisy_panel(i), f"Part {i + 1}.", "Onward!" if i % 2 else None,
                 "left" if i % 2 else "right")
        for i in range(9)
    ]
    return render_comic("Export Test", panels, panels_per_page=3, page_size=PAGE_SIZE)


def pdf_page_count(data: bytes) -> int:
    """Page objects in a PDF: '/Type /Page' not followed by 's' (that is the page tree)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def test_png_pages_decode_at_page_size(pages: list[RenderedPage]) -> None:
    blobs = export_png(pages)
    assert len(blobs) == len(pages) == 3
    for blob, page in zip(blobs, pages, strict=True):
        decoded = Image.open(io.BytesIO(blob))
        assert decoded.format == "PNG" and decoded.size == PAGE_SIZE
        assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(page.image))  # lossless


def test_pdf_has_one_page_per_comic_page_and_metadata(pages: list[RenderedPage]) -> None:
    data = export_pdf(pages, title="Export Test", author="Ada")
    assert data.startswith(b"%PDF-")
    assert pdf_page_count(data) == 3
    assert re.search(rb"/Count\s+3\b", data)
    parsed = PdfParser.PdfParser(buf=data)
    assert len(parsed.pages) == 3
    info = {getattr(key, "name", b"").decode(): value.decode("utf-16") for key, value in parsed.info.items()
            if getattr(key, "name", None) in (b"Title", b"Author")}
    assert info == {"Title": "Export Test", "Author": "Ada"}
    single = export_pdf(pages[:1], title="One", author="Ada")
    assert pdf_page_count(single) == 1


def test_pdf_does_not_leak_options_between_exports(pages: list[RenderedPage]) -> None:
    # Pillow remembers save options on the image it saved; a later one-page export must not
    # pick up the pages appended by an earlier multi-page one.
    export_pdf(pages, title="All", author="A")
    assert pdf_page_count(export_pdf([pages[0]], title="First", author="A")) == 1


def test_cbz_holds_pages_and_comic_info(pages: list[RenderedPage]) -> None:
    info = ComicInfo(title="Tom & Jerry <3 \"quoted\"", writer="Ada Lovelace",
                     summary="A test\x07 of escaping & control characters.", published=date(2024, 5, 17),
                     manga=True)
    data = export_cbz(pages, info)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert names == ["page001.png", "page002.png", "page003.png", "ComicInfo.xml"]
        for name in names[:-1]:
            assert Image.open(io.BytesIO(archive.read(name))).size == PAGE_SIZE
        root = ET.fromstring(archive.read("ComicInfo.xml"))
    assert root.tag == "ComicInfo"
    assert root.findtext("Title") == "Tom & Jerry <3 \"quoted\""
    assert root.findtext("Writer") == "Ada Lovelace"
    assert root.findtext("Summary") == "A test of escaping & control characters."
    assert root.findtext("PageCount") == "3"
    assert (root.findtext("Year"), root.findtext("Month"), root.findtext("Day")) == ("2024", "5", "17")
    assert root.findtext("Manga") == "YesAndRightToLeft"
    page_elements = root.findall("./Pages/Page")
    assert [p.get("Image") for p in page_elements] == ["0", "1", "2"]
    assert page_elements[0].get("Type") == "FrontCover" and page_elements[1].get("Type") == "Story"
    assert page_elements[0].get("ImageWidth") == str(PAGE_SIZE[0])
    # Schema order: Title before Summary before Writer before PageCount before Pages.
    order = [child.tag for child in root]
    assert order.index("Title") < order.index("Summary") < order.index("Writer") < order.index("PageCount")
    assert order[-1] == "Pages"


def test_cbz_is_deterministic_and_can_hold_jpeg(pages: list[RenderedPage]) -> None:
    info = ComicInfo(title="Same", writer="Me")
    assert export_cbz(pages, info) == export_cbz(pages, info)
    jpeg = export_cbz(pages, info, encoding=Encoding("jpeg", 85))
    with zipfile.ZipFile(io.BytesIO(jpeg)) as archive:
        assert archive.namelist()[0] == "page001.jpg"
        assert Image.open(io.BytesIO(archive.read("page001.jpg"))).format == "JPEG"


def test_comic_info_leaves_out_empty_fields() -> None:
    root = ET.fromstring(comic_info_xml(ComicInfo(title="T", writer="W", penciller=None), [(10, 1, 2)]))
    assert [child.tag for child in root] == ["Title", "Writer", "PageCount", "Manga", "Pages"]


def test_export_refuses_no_pages() -> None:
    with pytest.raises(ValueError, match="at least one page"):
        export_png([])
    with pytest.raises(ValueError, match="fmt"):
        fit_to_limit([Image.new("RGB", (10, 10))], fmt="gif", limit_bytes=10**6,  # type: ignore[arg-type]
                     title="T", author="A")


@pytest.mark.parametrize("fmt", ["png", "pdf", "cbz"])
def test_fit_to_limit_makes_every_file_fit(pages: list[RenderedPage], fmt: str) -> None:
    lossless_total = sum(len(blob) for blob in export_png(pages))
    limit = 60_000
    assert lossless_total > 3 * limit  # the limit really bites
    files = fit_to_limit(pages, fmt=fmt, limit_bytes=limit, title="Fit", author="A")  # type: ignore[arg-type]
    assert files and all(file.size <= limit for file in files)
    assert [n for file in files for n in file.page_numbers] == [1, 2, 3]  # every page once, in order
    assert len({file.filename for file in files}) == len(files)
    for file in files:
        if fmt == "png":
            assert Image.open(io.BytesIO(file.data)).size[0] > 0
        elif fmt == "pdf":
            assert pdf_page_count(file.data) == len(file.page_numbers)
        else:
            with zipfile.ZipFile(io.BytesIO(file.data)) as archive:
                root = ET.fromstring(archive.read("ComicInfo.xml"))
                assert root.findtext("PageCount") == str(len(file.page_numbers))
                assert len(archive.namelist()) == len(file.page_numbers) + 1
    if fmt != "png":
        assert len(files) > 1 and files[0].filename == f"comic-part1of{len(files)}.{fmt}"


def test_fit_to_limit_keeps_one_lossless_file_when_it_fits(pages: list[RenderedPage]) -> None:
    (cbz,) = fit_to_limit(pages, fmt="cbz", limit_bytes=50_000_000, title="T", author="A", basename="story")
    assert cbz.filename == "story.cbz" and cbz.page_numbers == (1, 2, 3)
    with zipfile.ZipFile(io.BytesIO(cbz.data)) as archive:
        assert archive.namelist()[0] == "page001.png"
    pngs = fit_to_limit(pages, fmt="png", limit_bytes=50_000_000, title="T", author="A")
    assert [f.filename for f in pngs] == ["comic-page01.png", "comic-page02.png", "comic-page03.png"]


def test_fit_to_limit_steps_quality_down_before_splitting(pages: list[RenderedPage]) -> None:
    lossless = len(export_cbz(pages, ComicInfo(title="T", writer="A")))
    files = fit_to_limit(pages, fmt="cbz", limit_bytes=lossless // 2, title="T", author="A")
    assert len(files) == 1  # JPEG pages fit where PNG did not
    with zipfile.ZipFile(io.BytesIO(files[0].data)) as archive:
        assert archive.namelist()[0] == "page001.jpg"


def test_fit_to_limit_shrinks_a_page_too_big_for_the_limit_alone() -> None:
    big = Image.fromarray(np.random.default_rng(1).integers(0, 255, (900, 700, 3), dtype=np.uint8))
    (file,) = fit_to_limit([big], fmt="pdf", limit_bytes=25_000, title="Noise", author="A")
    assert file.size <= 25_000 and pdf_page_count(file.data) == 1
    with pytest.raises(ValueError, match="too small"):
        fit_to_limit([big], fmt="png", limit_bytes=300, title="T", author="A")
