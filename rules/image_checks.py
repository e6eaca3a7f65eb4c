"""Checks on images users upload (img2img sources and inpainting masks), done before anything is queued.

:func:`check_upload` answers every bad file with an :class:`UploadError` whose message says what to
change: a format other than PNG, JPEG or WebP, too many bytes, a damaged file, too many pixels
(decompression bombs included), an animation, an empty file.

Decompression bombs: Pillow reads only the header in :func:`PIL.Image.open`; the pixel count is
checked against ``max_pixels`` *before* :meth:`~PIL.Image.Image.load` decodes anything, so a tiny
file claiming 50000x50000 pixels costs nothing. Pillow's own guard (``Image.MAX_IMAGE_PIXELS``)
stays in place as a backstop and its :class:`~PIL.Image.DecompressionBombError` becomes an
``UploadError``. The global is never changed: uploads are checked in worker threads, where
setting and restoring it would race with other image code.

Animated PNG and WebP files are **refused** rather than cut to their first frame: the user
would not see which frame was used, and a still image is easy to upload instead. Multi-picture
JPEGs (MPO, which many phone cameras write) are not animations: their primary photo is used.

Decoding is blocking work (up to ``max_pixels`` pixels): call this from a thread.
"""

from __future__ import annotations

import io
import math
from typing import Final, Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from rules.request import RequestError

UploadRole = Literal["image", "mask"]

#: Formats accepted, as Pillow names them, and their MIME types and file name endings.
ALLOWED_FORMATS: Final[tuple[str, ...]] = ("PNG", "JPEG", "WEBP")
ALLOWED_CONTENT_TYPES: Final[frozenset[str]] = frozenset({"image/png", "image/jpeg", "image/jpg", "image/webp"})
ALLOWED_EXTENSIONS: Final[frozenset[str]] = frozenset({".png", ".jpg", ".jpeg", ".webp"})
#: How far a mask's aspect ratio may be from its image's (1%).
MASK_ASPECT_TOLERANCE: Final = 0.01

#: Magic bytes of formats people often try, for a clearer "this is a GIF" message.
_KNOWN_OTHER_FORMATS: Final[tuple[tuple[bytes, str], ...]] = (
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
)


class UploadError(RequestError):
    """An uploaded file can't be used; ``str()`` is a short message, ``field`` is the role."""


def _shown_name(filename: str) -> str:
    """The file name as it may appear inside a Discord code span: no backticks, not too long."""
    name = filename.replace("`", "'").strip() or "file"
    return name if len(name) <= 60 else name[:57] + "..."


def _megabytes(size: int) -> str:
    """``8 MB``, ``1.5 MB``; sizes under a megabyte in KB (``300 KB``)."""
    if size < 2**20:
        return f"{size / 2**10:.0f} KB"
    return f"{size / 2**20:.3g} MB"


def check_declared_size(size: int, *, filename: str, max_bytes: int, role: UploadRole = "image") -> None:
    """Refuse a file by the size Discord reports, before downloading it (the message of :func:`check_upload`)."""
    if size > max_bytes:
        raise UploadError(role, f"{_what(role, filename)} is {_megabytes(size)}; the limit is {_megabytes(max_bytes)}.")


def _check_type(content_type: str | None, filename: str, role: UploadRole) -> None:
    """Refuse a file whose declared MIME type (or, without one, file name) is not PNG, JPEG or WebP."""
    if content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime not in ALLOWED_CONTENT_TYPES:
            raise UploadError(role, f"{_what(role, filename)} is `{mime}`; upload a PNG, JPEG or WebP image.")
        return
    dot = filename.rfind(".")
    extension = filename[dot:].lower() if dot >= 0 else ""
    if extension not in ALLOWED_EXTENSIONS:
        raise UploadError(role, f"{_what(role, filename)} isn't a PNG, JPEG or WebP file.")


def _what(role: str, filename: str) -> str:
    return f"The {role} `{_shown_name(filename)}`"


def _unreadable(role: UploadRole, filename: str, data: bytes) -> UploadError:
    for magic, name in _KNOWN_OTHER_FORMATS:
        if data.startswith(magic):
            return UploadError(role, f"{_what(role, filename)} is a {name} file; upload a PNG, JPEG or WebP image.")
    return UploadError(
        role, f"{_what(role, filename)} couldn't be read as a PNG, JPEG or WebP image; it may be damaged."
    )


def _too_many_pixels(role: UploadRole, filename: str, width: int, height: int, max_pixels: int) -> UploadError:
    return UploadError(
        role,
        f"{_what(role, filename)} is {width}x{height} ({width * height:,} pixels); "
        f"the limit is {max_pixels:,} pixels. Scale it down and upload it again.",
    )


def _flatten(image: Image.Image, role: UploadRole) -> Image.Image:
    """RGB for an image (transparency over white), L for a mask (transparency counts as black: keep)."""
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    if "A" in image.getbands():
        background = (255, 255, 255, 255) if role == "image" else (0, 0, 0, 255)
        base = Image.new("RGBA", image.size, background)
        image = Image.alpha_composite(base, image.convert("RGBA"))
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float greyscale: scale to 8 bits rather than clip.
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGB" if role == "image" else "L")


def check_upload(
    data: bytes,
    *,
    content_type: str | None,
    filename: str,
    max_bytes: int,
    max_pixels: int,
    role: UploadRole = "image",
) -> Image.Image:
    """Check an uploaded file and return it decoded: RGB for ``role="image"``, L for ``role="mask"``.

    ``content_type`` is the MIME type Discord reports (``None`` when it reports none: the file
    name's ending is checked instead); the bytes themselves must be PNG, JPEG or WebP whatever
    they claim. The EXIF orientation of phone photos is applied. Masks are white where the image
    is to be redrawn. Raises :class:`UploadError` with a message for the user.
    """
    if not data:
        raise UploadError(role, f"{_what(role, filename)} is empty (0 bytes).")
    if len(data) > max_bytes:
        raise UploadError(
            role, f"{_what(role, filename)} is {_megabytes(len(data))}; the limit is {_megabytes(max_bytes)}."
        )
    _check_type(content_type, filename, role)
    try:
        image = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.DecompressionBombError:
        raise UploadError(
            role, f"{_what(role, filename)} has far too many pixels; the limit is {max_pixels:,}."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise _unreadable(role, filename, data) from None
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise UploadError(role, f"{_what(role, filename)} is {width}x{height}: it has no pixels.")
        if width * height > max_pixels:
            raise _too_many_pixels(role, filename, width, height, max_pixels)
        # Phone cameras write MPO: a JPEG whose extra frames are previews or depth maps, not an
        # animation. Frame 0, the one Pillow shows, is the photo itself.
        if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
            raise UploadError(role, f"{_what(role, filename)} is animated; upload a still image.")
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return _flatten(upright if upright is not None else image, role)
        except Image.DecompressionBombError:
            raise _too_many_pixels(role, filename, width, height, max_pixels) from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise _unreadable(role, filename, data) from None


def check_mask_matches(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The mask resized to the image's size; :class:`UploadError` unless their aspect ratios agree within 1%."""
    image_ratio = image.width / image.height
    mask_ratio = mask.width / mask.height
    if abs(mask_ratio / image_ratio - 1) > MASK_ASPECT_TOLERANCE:
        raise UploadError(
            "mask",
            f"The mask is {mask.width}x{mask.height} but the image is {image.width}x{image.height}; "
            "the mask must have the image's shape (paint it on a copy of the image).",
        )
    mask = mask if mask.mode == "L" else mask.convert("L")
    if mask.size == image.size:
        return mask
    return mask.resize(image.size, Image.Resampling.BILINEAR)


def fit_size(width: int, height: int, max_pixels: int, multiple: int = 8) -> tuple[int, int]:
    """A size with the aspect of ``width x height``, sides multiples of ``multiple``, at most ``max_pixels``.

    Images are shrunk, never enlarged past the nearest multiple; each side is at least ``multiple``.
    """
    if width <= 0 or height <= 0 or multiple <= 0 or max_pixels < multiple * multiple:
        raise ValueError(f"bad size {width}x{height} for max_pixels={max_pixels}, multiple={multiple}")
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    exact_w, exact_h = width * scale, height * scale

    def rounded(exact: float, down: bool) -> int:
        steps = math.floor(exact / multiple) if down else round(exact / multiple)
        return max(multiple, steps * multiple)

    new_w, new_h = rounded(exact_w, down=False), rounded(exact_h, down=False)
    if new_w * new_h > max_pixels:
        new_w, new_h = rounded(exact_w, down=True), rounded(exact_h, down=True)
    return new_w, new_h
