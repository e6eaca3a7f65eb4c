"""Gallery thumbnails: small WebP copies of archive images, made once and kept in a cache folder.

The archive's image folder is only read; thumbnails go to ``[studio] thumbnails_dir``, named by
the source file's name (content-addressed already), so a thumbnail is never stale.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageFilter

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 256
#: Spoilered images (flagged, posted behind a spoiler on Discord) are blurred in the gallery.
SPOILER_BLUR = 24


def thumbnail_path(images_dir: Path, relative_path: str, cache_dir: Path, *, blur: bool = False) -> Path | None:
    """The cached thumbnail of one stored image, made on first use; None if the image file is missing."""
    stem = Path(relative_path).stem + ("-blur" if blur else "")
    target = cache_dir / stem[:2] / f"{stem}-{THUMBNAIL_SIDE}.webp"
    if target.exists():
        return target
    source = images_dir / relative_path
    try:
        with Image.open(source) as image:
            small = image.convert("RGB")
    except OSError:
        log.warning("image file missing or unreadable: %s", source)
        return None
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    if blur:
        small = small.filter(ImageFilter.GaussianBlur(SPOILER_BLUR))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".webp")
    try:
        with os.fdopen(fd, "wb") as handle:
            small.save(handle, format="WEBP", quality=80)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
