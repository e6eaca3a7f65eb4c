"""Encoding result images so they fit Discord's upload limit, and grouping files into messages.

:func:`fit_upload` keeps the image lossless (PNG) when it fits. Otherwise it tries WebP, then
JPEG, at the highest quality of the ladder 95, 90, ... 40 that fits; when even quality 40 is too
big it shrinks the image (three quarters of each side per step) and tries again. For any limit of
at least 8 KiB it always returns something that fits.

Encoding a large image takes tens to hundreds of milliseconds and blocks: callers on the event
loop run it in a thread (``await asyncio.to_thread(fit_upload, image, limit, filename_stem=...)``).
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from PIL import Image, PngImagePlugin, features

log = logging.getLogger(__name__)

EncodedFormat = Literal["PNG", "WEBP", "JPEG"]

#: Lossy qualities tried, best first.
QUALITY_LADDER: Final[tuple[int, ...]] = tuple(range(95, 39, -5))
#: The smallest ``max_bytes`` :func:`fit_upload` promises to meet.
MIN_MAX_BYTES: Final = 8 * 1024
#: Each downscale step multiplies both sides by this.
DOWNSCALE_STEP: Final = 0.75
#: Never shrink below this many pixels on the shorter side.
MIN_SIDE: Final = 16

_CONTENT_TYPES: Final[dict[str, str]] = {"PNG": "image/png", "WEBP": "image/webp", "JPEG": "image/jpeg"}
_EXTENSIONS: Final[dict[str, str]] = {"PNG": "png", "WEBP": "webp", "JPEG": "jpg"}
_UNSAFE_NAME_RE: Final = re.compile(r"[^A-Za-z0-9._-]+")
#: EXIF's Exif IFD, and its UserComment tag (where the web UI writes parameters into JPEG and WebP).
_EXIF_IFD: Final = 0x8769
_USER_COMMENT: Final = 0x9286


@dataclass(frozen=True)
class EncodedImage:
    """An image ready to upload: the bytes, a file name and MIME type, and how it was encoded."""

    data: bytes
    filename: str
    content_type: str
    format: EncodedFormat
    #: The lossy quality used; ``None`` for PNG.
    quality: int | None
    #: The encoded size: smaller than the source's when it had to be shrunk.
    width: int
    height: int


def _safe_stem(stem: str) -> str:
    cleaned = _UNSAFE_NAME_RE.sub("_", stem).strip("._")[:64]
    return cleaned or "image"


def _metadata(fmt: EncodedFormat, parameters: str | None) -> dict[str, Any]:
    """Where the web UI keeps generation parameters: a PNG ``parameters`` text chunk, else EXIF UserComment."""
    if not parameters:
        return {}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", parameters)
        return {"pnginfo": info}
    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = b"UNICODE\0" + parameters.encode("utf-16-be")
    return {"exif": exif.tobytes()}


def _encode(image: Image.Image, fmt: EncodedFormat, quality: int | None, parameters: str | None = None) -> bytes:
    buffer = io.BytesIO()
    extra = _metadata(fmt, parameters)
    if fmt == "PNG":
        image.save(buffer, format="PNG", **extra)
    elif fmt == "WEBP":
        image.save(buffer, format="WEBP", quality=quality, method=4, **extra)
    else:
        image.save(buffer, format="JPEG", quality=quality, optimize=True, **extra)
    return buffer.getvalue()


def _for_format(image: Image.Image, fmt: EncodedFormat) -> Image.Image:
    """The image in a mode ``fmt`` can store; transparency is put over white for JPEG."""
    has_alpha = "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info)
    if fmt == "PNG":
        return image
    if has_alpha and fmt == "WEBP":
        return image if image.mode == "RGBA" else image.convert("RGBA")
    if has_alpha:
        base = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(base, image.convert("RGBA")).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _best_lossy(
    image: Image.Image, fmt: EncodedFormat, max_bytes: int, parameters: str | None = None
) -> tuple[bytes, int] | int:
    """The highest ladder quality whose encoding fits, found by bisection (size grows with quality).

    When even the lowest quality is too big, its byte count.
    """
    prepared = _for_format(image, fmt)
    lowest = QUALITY_LADDER[-1]
    data = _encode(prepared, fmt, lowest, parameters)
    if len(data) > max_bytes:
        return len(data)
    best: tuple[bytes, int] = (data, lowest)
    low, high = 0, len(QUALITY_LADDER) - 2  # indexes into the ladder, best quality first
    while low <= high:
        middle = (low + high) // 2
        quality = QUALITY_LADDER[middle]
        data = _encode(prepared, fmt, quality, parameters)
        if len(data) <= max_bytes:
            best = (data, quality)
            high = middle - 1
        else:
            low = middle + 1
    return best


def _lossy_formats() -> tuple[EncodedFormat, ...]:
    return ("WEBP", "JPEG") if features.check("webp") else ("JPEG",)


def fit_upload(
    image: Image.Image, max_bytes: int, *, filename_stem: str, parameters: str | None = None
) -> EncodedImage:
    """Encode ``image`` in at most ``max_bytes``: PNG, else WebP or JPEG, else smaller. Blocking.

    ``parameters`` (the web UI's generation text) is kept as AUTOMATIC1111 keeps it: a PNG
    ``parameters`` text chunk, or the EXIF UserComment of a WebP or JPEG.

    When shrinking, the next size is estimated from how far the smallest encoding missed (never
    less of a cut than :data:`DOWNSCALE_STEP` per side), so large misses take few steps.
    Raises ``ValueError`` only for ``max_bytes`` below :data:`MIN_MAX_BYTES`.
    """
    if max_bytes < MIN_MAX_BYTES:
        raise ValueError(f"max_bytes = {max_bytes} is below the smallest supported limit, {MIN_MAX_BYTES}")
    stem = _safe_stem(filename_stem)
    current = image
    try_png = True
    while True:
        result, smallest = _fit_at_size(current, max_bytes, try_png=try_png, parameters=parameters)
        if result is not None:
            data, fmt, quality = result
            if current.size != image.size:
                log.info("shrank %s from %dx%d to %dx%d to fit %d bytes", stem, *image.size, *current.size, max_bytes)
            return EncodedImage(
                data=data,
                filename=f"{stem}.{_EXTENSIONS[fmt]}",
                content_type=_CONTENT_TYPES[fmt],
                format=fmt,
                quality=quality,
                width=current.width,
                height=current.height,
            )
        if min(current.size) <= MIN_SIDE:
            raise ValueError(f"could not fit a {image.width}x{image.height} image in {max_bytes} bytes")
        # Bytes grow about linearly with the pixel count: aim a little under the limit.
        estimate = math.sqrt(0.9 * max_bytes / smallest)
        scale = max(min(DOWNSCALE_STEP, estimate), MIN_SIDE / min(current.size))
        size = (max(1, round(current.width * scale)), max(1, round(current.height * scale)))
        current = image.resize(size, Image.Resampling.LANCZOS)
        try_png = False  # PNG missed by more than the lossy formats did; smaller won't save it


def _fit_at_size(
    image: Image.Image, max_bytes: int, *, try_png: bool, parameters: str | None = None
) -> tuple[tuple[bytes, EncodedFormat, int | None] | None, int]:
    """The best encoding that fits, or ``None`` and the smallest byte count seen."""
    smallest = None
    if try_png:
        png = _encode(image, "PNG", None, parameters)
        if len(png) <= max_bytes:
            return (png, "PNG", None), len(png)
        smallest = len(png)
    for fmt in _lossy_formats():
        found = _best_lossy(image, fmt, max_bytes, parameters)
        if isinstance(found, int):
            smallest = found if smallest is None else min(smallest, found)
            continue
        return (found[0], fmt, found[1]), len(found[0])
    assert smallest is not None
    return None, smallest


def split_into_uploads(
    files: Sequence[tuple[str, bytes]], max_bytes_per_message: int, max_files_per_message: int = 10
) -> list[list[tuple[str, bytes]]]:
    """Group ``(name, data)`` files, in order, into messages within both limits.

    Each message gets as many of the next files as fit. A single file over
    ``max_bytes_per_message`` raises ``ValueError`` (encode it with :func:`fit_upload` first).
    """
    if max_bytes_per_message < 1 or max_files_per_message < 1:
        raise ValueError("the per-message limits must be at least 1")
    messages: list[list[tuple[str, bytes]]] = []
    current: list[tuple[str, bytes]] = []
    current_bytes = 0
    for name, data in files:
        if len(data) > max_bytes_per_message:
            raise ValueError(f"{name} is {len(data)} bytes, over the {max_bytes_per_message}-byte message limit")
        if current and (len(current) >= max_files_per_message or current_bytes + len(data) > max_bytes_per_message):
            messages.append(current)
            current, current_bytes = [], 0
        current.append((name, data))
        current_bytes += len(data)
    if current:
        messages.append(current)
    return messages
