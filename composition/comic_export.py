"""Export rendered comic pages as PNG images, a multi-page PDF or a CBZ archive.

* :func:`export_png` gives one lossless PNG per page.
* :func:`export_pdf` gives one PDF with a page per comic page and title/author metadata.
  Pillow stores colour pages in a PDF as JPEG, so the quality is set high by default.
* :func:`export_cbz` gives a comic-book ZIP: zero-padded page images plus a
  ``ComicInfo.xml`` (ComicRack / Anansi schema v2.0) describing the comic and its pages.
* :func:`fit_to_limit` makes any of these fit an upload limit (Discord's, say): it steps
  from lossless PNG down through JPEG qualities and, where one file still cannot hold the
  whole comic at a good quality, splits it into several files, each under the limit.

All of this is CPU work on large images: run it in a worker thread or an executor.
"""

from __future__ import annotations

import io
import logging
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Final, Literal

from PIL import Image

from composition.comic_render import RenderedPage

log = logging.getLogger(__name__)

PageSource = RenderedPage | Image.Image
ExportFormat = Literal["png", "pdf", "cbz"]
ImageFormat = Literal["png", "jpeg"]

PDF_DPI: Final = 200.0
_ZIP_DATE: Final = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same pages give the same archive
_XML_INVALID: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CONTAINER_OVERHEAD: Final = 4096
_PER_PAGE_OVERHEAD: Final = 1024


@dataclass(frozen=True)
class Encoding:
    """How page images are stored: format, JPEG quality and a scale factor (1.0 = full size)."""

    fmt: ImageFormat
    quality: int = 92
    scale: float = 1.0

    @property
    def extension(self) -> str:
        return "png" if self.fmt == "png" else "jpg"


LOSSLESS: Final = Encoding("png")
# Tried in order for the whole export; splitting into several files is preferred over
# going below the last of these.
GOOD_ENCODINGS: Final = (Encoding("jpeg", 92), Encoding("jpeg", 85), Encoding("jpeg", 75))
# Tried for a single page that cannot fit the limit at the last good encoding.
FALLBACK_ENCODINGS: Final = (
    Encoding("jpeg", 65),
    Encoding("jpeg", 55, 0.8),
    Encoding("jpeg", 50, 0.64),
    Encoding("jpeg", 45, 0.5),
    Encoding("jpeg", 40, 0.35),
    Encoding("jpeg", 35, 0.25),
    Encoding("jpeg", 30, 0.15),
)


@dataclass(frozen=True)
class ComicInfo:
    """Metadata written to a CBZ's ``ComicInfo.xml`` (ComicRack / Anansi schema v2.0)."""

    title: str
    writer: str
    summary: str = ""
    series: str | None = None
    number: str | None = None
    published: date | None = None
    penciller: str | None = "Stable Diffusion"
    genre: str | None = None
    web: str | None = None
    language_iso: str | None = None
    manga: bool = False
    notes: str | None = None


@dataclass(frozen=True)
class ExportFile:
    """One file to upload: its name, bytes, and which comic pages (1-based) it holds."""

    filename: str
    data: bytes
    page_numbers: tuple[int, ...] = field(default=())

    @property
    def size(self) -> int:
        return len(self.data)


def page_image(page: PageSource) -> Image.Image:
    """The RGB image of a rendered page (or of a plain image)."""
    image = page.image if isinstance(page, RenderedPage) else page
    return image if image.mode == "RGB" else image.convert("RGB")


def _check_pages(pages: Sequence[PageSource]) -> list[Image.Image]:
    if len(pages) == 0:
        raise ValueError("pages must hold at least one page, got none")
    return [page_image(page) for page in pages]


def _scaled(image: Image.Image, scale: float) -> Image.Image:
    """A new image ``scale`` times the size of ``image`` (a plain copy at 1.0).

    Always a new object: Pillow keeps save options on the image it saved (``encoderinfo``)
    and merges them into the next save, so saving callers' images directly would leak one
    export's options (even its appended pages) into the next.
    """
    if scale == 1.0:
        return image.copy()
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _jpeg_options(quality: int) -> dict[str, int]:
    """JPEG settings: 4:4:4 chroma at high quality keeps lettering crisp; 4:2:0 below saves bytes.

    No ``optimize``: Pillow sizes its optimize buffer at one byte per pixel and fails on
    noisy 4:4:4 pages that need more ("Suspension not allowed here").
    """
    return {"quality": quality, "subsampling": 0 if quality >= 85 else 2}


def encode_image(image: Image.Image, encoding: Encoding) -> bytes:
    """Encode one page image as PNG or JPEG, scaled by ``encoding.scale``."""
    image = _scaled(image, encoding.scale)
    buffer = io.BytesIO()
    if encoding.fmt == "png":
        image.save(buffer, "PNG", compress_level=6)
    else:
        image.save(buffer, "JPEG", **_jpeg_options(encoding.quality))
    return buffer.getvalue()


def export_png(pages: Sequence[PageSource]) -> list[bytes]:
    """One lossless PNG per page."""
    return [encode_image(image, LOSSLESS) for image in _check_pages(pages)]


def _pdf_bytes(images: Sequence[Image.Image], *, title: str, author: str, encoding: Encoding) -> bytes:
    images = [_scaled(image, encoding.scale) for image in images]
    buffer = io.BytesIO()
    first, *rest = images
    first.save(
        buffer, "PDF", save_all=True, append_images=rest, resolution=PDF_DPI * encoding.scale,
        title=title, author=author, creator="panelbot", producer="panelbot",
        **_jpeg_options(encoding.quality),
    )
    return buffer.getvalue()


def export_pdf(pages: Sequence[PageSource], *, title: str, author: str, quality: int = 92) -> bytes:
    """A multi-page PDF (one comic page per PDF page, A4 at 200 dpi) with title and author set.

    Pages are stored as JPEG at ``quality`` (Pillow's PDF writer has no lossless colour mode).
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    return _pdf_bytes(_check_pages(pages), title=title, author=author, encoding=Encoding("jpeg", quality))


def _xml_text(value: str) -> str:
    """``value`` without the control characters XML 1.0 cannot hold (ElementTree escapes the rest)."""
    return _XML_INVALID.sub("", value)


def comic_info_xml(info: ComicInfo, pages: Sequence[tuple[int, int, int]]) -> bytes:
    """``ComicInfo.xml`` for ``info``; ``pages`` holds (byte size, width, height) per page image.

    Elements follow the order of the schema's sequence; empty optional fields are left out.
    """
    root = ET.Element("ComicInfo", {
        "xmlns:xsd": "http://www.w3.org/2001/XMLSchema",
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
    })

    def add(tag: str, value: str | int | None) -> None:
        if value is None or value == "":
            return
        ET.SubElement(root, tag).text = _xml_text(str(value))

    add("Title", info.title)
    add("Series", info.series)
    add("Number", info.number)
    add("Summary", info.summary)
    add("Notes", info.notes)
    if info.published is not None:
        add("Year", info.published.year)
        add("Month", info.published.month)
        add("Day", info.published.day)
    add("Writer", info.writer)
    add("Penciller", info.penciller)
    add("Genre", info.genre)
    add("Web", info.web)
    add("PageCount", len(pages))
    add("LanguageISO", info.language_iso)
    add("Manga", "YesAndRightToLeft" if info.manga else "No")
    pages_element = ET.SubElement(root, "Pages")
    for index, (size, width, height) in enumerate(pages):
        ET.SubElement(pages_element, "Page", {
            "Image": str(index),
            "Type": "FrontCover" if index == 0 else "Story",
            "ImageSize": str(size),
            "ImageWidth": str(width),
            "ImageHeight": str(height),
        })
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _page_names(count: int, extensions: Sequence[str]) -> list[str]:
    width = max(3, len(str(count)))
    return [f"page{number:0{width}d}.{extension}" for number, extension in enumerate(extensions, start=1)]


def _cbz_bytes(encoded: Sequence[tuple[bytes, Encoding, tuple[int, int]]], info: ComicInfo) -> bytes:
    """Zip already-encoded pages with their ComicInfo.xml."""
    names = _page_names(len(encoded), [enc.extension for _, enc, _ in encoded])
    xml = comic_info_xml(info, [(len(data), w, h) for data, _, (w, h) in encoded])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, (data, _, _) in zip(names, encoded, strict=True):
            archive.writestr(zipfile.ZipInfo(name, _ZIP_DATE), data, compress_type=zipfile.ZIP_STORED)
        # Stored, not deflated: its size then depends only on its text (see fit_to_limit).
        archive.writestr(zipfile.ZipInfo("ComicInfo.xml", _ZIP_DATE), xml, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def _encode_page(image: Image.Image, encoding: Encoding) -> tuple[bytes, Encoding, tuple[int, int]]:
    data = encode_image(image, encoding)
    size = (max(1, round(image.width * encoding.scale)), max(1, round(image.height * encoding.scale)))
    return (data, encoding, size)


def export_cbz(pages: Sequence[PageSource], info: ComicInfo, *, encoding: Encoding = LOSSLESS) -> bytes:
    """A CBZ (ZIP) of the pages as ``page001.png``... plus ``ComicInfo.xml``."""
    images = _check_pages(pages)
    return _cbz_bytes([_encode_page(image, encoding) for image in images], info)


# --- Fitting exports to an upload limit -------------------------------------------------


def _fit_page(image: Image.Image, limit: int, start: Sequence[Encoding]) -> tuple[bytes, Encoding]:
    """The first encoding in ``start`` then the fallbacks whose bytes fit ``limit``."""
    for encoding in (*start, *FALLBACK_ENCODINGS):
        data = encode_image(image, encoding)
        if len(data) <= limit:
            return data, encoding
    raise ValueError("limit_bytes is too small to hold even one heavily compressed page")


def _parts_name(basename: str, part: int, parts: int, extension: str) -> str:
    return f"{basename}.{extension}" if parts == 1 else f"{basename}-part{part}of{parts}.{extension}"


def _fit_pngs(images: Sequence[Image.Image], limit: int, basename: str) -> list[ExportFile]:
    files = []
    width = max(2, len(str(len(images))))
    for number, image in enumerate(images, start=1):
        data, encoding = _fit_page(image, limit, (LOSSLESS, *GOOD_ENCODINGS))
        files.append(ExportFile(f"{basename}-page{number:0{width}d}.{encoding.extension}", data, (number,)))
    return files


def _build(fmt: ExportFormat, images: Sequence[Image.Image], encoded: Sequence[tuple[bytes, Encoding]],
           *, title: str, author: str, info: ComicInfo) -> bytes:
    """One PDF or CBZ holding ``images`` stored as ``encoded`` says."""
    if fmt == "cbz":
        return _cbz_bytes([
            (data, encoding, (max(1, round(image.width * encoding.scale)),
                              max(1, round(image.height * encoding.scale))))
            for image, (data, encoding) in zip(images, encoded, strict=True)
        ], info)
    encodings = {encoding for _, encoding in encoded}
    if len(encodings) == 1:
        return _pdf_bytes(images, title=title, author=author, encoding=encodings.pop())
    # Pages at different encodings: Pillow writes one encoding per save, so pre-scale and
    # use the lowest quality among them.
    scaled = [_scaled(image, enc.scale) for image, (_, enc) in zip(images, encoded, strict=True)]
    quality = min(enc.quality for enc in encodings)
    return _pdf_bytes(scaled, title=title, author=author, encoding=Encoding("jpeg", quality))


def fit_to_limit(
    pages: Sequence[PageSource],
    *,
    fmt: ExportFormat,
    limit_bytes: int,
    title: str,
    author: str,
    info: ComicInfo | None = None,
    basename: str = "comic",
) -> list[ExportFile]:
    """Export ``pages`` as ``fmt`` in as few files as needed, each at most ``limit_bytes``.

    * ``png``: one file per page; lossless if it fits, else JPEG at falling quality and,
      for a huge page under a tiny limit, smaller size.
    * ``pdf`` / ``cbz``: one file if the whole comic fits at lossless (CBZ only) or JPEG
      quality 92, 85 or 75; otherwise the pages are split over several files
      (``{basename}-part1of3.pdf``...) at quality 75, a page that cannot fit alone at that
      quality being compressed further.

    ``info`` (CBZ only) defaults to a :class:`ComicInfo` built from ``title`` and ``author``.
    Raises ``ValueError`` only for a limit too small to hold one tiny page (about 10 KB).
    """
    if fmt not in ("png", "pdf", "cbz"):
        raise ValueError(f"fmt must be 'png', 'pdf' or 'cbz', got {fmt!r}")
    if limit_bytes < 1:
        raise ValueError(f"limit_bytes must be positive, got {limit_bytes}")
    images = _check_pages(pages)
    if fmt == "png":
        return _fit_pngs(images, limit_bytes, basename)
    info = info or ComicInfo(title=title, writer=author)

    # 1. The whole comic in one file, at the best encoding whose pages add up under the limit.
    levels = (LOSSLESS, *GOOD_ENCODINGS) if fmt == "cbz" else GOOD_ENCODINGS
    budget = limit_bytes - _CONTAINER_OVERHEAD - _PER_PAGE_OVERHEAD * len(images)
    last: list[tuple[bytes, Encoding]] = []
    for encoding in levels:
        last = [(encode_image(image, encoding), encoding) for image in images]
        if sum(len(data) for data, _ in last) <= budget:
            data = _build(fmt, images, last, title=title, author=author, info=info)
            if len(data) <= limit_bytes:
                return [ExportFile(f"{basename}.{fmt}", data, tuple(range(1, len(images) + 1)))]

    # 2. Split: each page at the last good encoding (or smaller where one page alone is too big).
    page_limit = limit_bytes - _CONTAINER_OVERHEAD - _PER_PAGE_OVERHEAD
    encoded = [
        (data, enc) if len(data) <= page_limit else _fit_page(image, page_limit, ())
        for image, (data, enc) in zip(images, last, strict=True)
    ]
    groups: list[list[int]] = [[]]
    used = _CONTAINER_OVERHEAD
    for index, (data, _) in enumerate(encoded):
        cost = len(data) + _PER_PAGE_OVERHEAD
        if groups[-1] and used + cost > limit_bytes:
            groups.append([])
            used = _CONTAINER_OVERHEAD
        groups[-1].append(index)
        used += cost

    # Build each part; one that comes out too big is halved. Parts are sized with the longest
    # part title they can get, so naming them afterwards cannot push one over the limit.
    digits = "9" * len(str(len(images)))
    sizing_info = replace(info, title=f"{info.title} (part {digits} of {digits})",
                          number=info.number or digits)
    built: list[list[int]] = []
    queue = list(groups)
    while queue:
        group = queue.pop(0)
        data = _build(fmt, [images[i] for i in group], [encoded[i] for i in group],
                      title=title, author=author, info=sizing_info)
        if len(data) > limit_bytes:
            if len(group) == 1:
                raise ValueError(f"limit_bytes={limit_bytes} is too small to hold page {group[0] + 1}")
            half = len(group) // 2
            queue[:0] = [group[:half], group[half:]]
            continue
        built.append(group)

    files: list[ExportFile] = []
    for part, group in enumerate(built, start=1):
        part_info = info
        if len(built) > 1:
            part_info = replace(info, title=f"{info.title} (part {part} of {len(built)})",
                                number=info.number or str(part))
        data = _build(fmt, [images[i] for i in group], [encoded[i] for i in group],
                      title=title, author=author, info=part_info)
        files.append(ExportFile(_parts_name(basename, part, len(built), fmt), data,
                                tuple(i + 1 for i in group)))
    log.debug("export of %d pages split into %d %s files", len(images), len(files), fmt)
    return files
