"""/imagine's ``image`` and ``mask`` attachments: checked and decoded, then stored once the request is valid.

The size Discord reports is checked before downloading; the bytes are then checked by
:func:`rules.image_checks.check_upload` (type, size, pixel count, decompression bombs,
damaged files, animations) in a thread (:func:`read_sources`). Only a request that passed every
check is stored, content-addressed as PNG (:func:`store_sources`), so the job refers to them by
path like any other source image and survives a restart; if the job is refused after all,
:func:`discard` removes the files this request created.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from dataclasses import dataclass, field

import discord
from PIL import Image

from rules.image_checks import UploadError, UploadRole, check_declared_size, check_mask_matches, check_upload
from rules.png_parameters import PngParameters, read_parameters
from rules.request import GenerationLimits
from storage.images import ImageStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodedSources:
    """The checked upload (and mask, already matched to it), not stored yet."""

    image: Image.Image
    mask: Image.Image | None

    @property
    def size(self) -> tuple[int, int]:
        """The uploaded image's size."""
        return self.image.size


@dataclass(frozen=True)
class SourceImages:
    """The stored source image (and mask), by path in the image store, and the image's size."""

    image_path: str
    mask_path: str | None
    size: tuple[int, int]
    #: Files this request wrote that were not in the store before (removed again if it is refused).
    created: tuple[str, ...] = field(default=())


#: The longest an attachment's download may take: Discord's CDN answers in well under a second, and the
#: member is waiting (the interaction is deferred, so this stays inside its 15 minutes).
DOWNLOAD_TIMEOUT_S = 8.0


async def _download(attachment: discord.Attachment, role: UploadRole, limits: GenerationLimits) -> bytes:
    check_declared_size(attachment.size, filename=attachment.filename, max_bytes=limits.max_upload_bytes, role=role)
    try:
        return await asyncio.wait_for(attachment.read(), DOWNLOAD_TIMEOUT_S)
    except (discord.HTTPException, TimeoutError) as error:
        raise UploadError(role, f"I couldn't download the {role} `{attachment.filename}`; upload it again.") from error


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def read_sources(
    image: discord.Attachment, mask: discord.Attachment | None, *, limits: GenerationLimits
) -> DecodedSources:
    """Download, check and decode the uploads (nothing is stored); :class:`UploadError` for the member."""
    image_data = await _download(image, "image", limits)
    mask_data = await _download(mask, "mask", limits) if mask is not None else None

    def check() -> DecodedSources:
        decoded = check_upload(
            image_data, content_type=image.content_type, filename=image.filename,
            max_bytes=limits.max_upload_bytes, max_pixels=limits.max_upload_pixels, role="image",
        )
        decoded_mask = None
        if mask is not None and mask_data is not None:
            decoded_mask = check_mask_matches(decoded, check_upload(
                mask_data, content_type=mask.content_type, filename=mask.filename,
                max_bytes=limits.max_upload_bytes, max_pixels=limits.max_upload_pixels, role="mask",
            ))
        return DecodedSources(decoded, decoded_mask)

    return await asyncio.to_thread(check)


async def read_png_parameters(
    attachment: discord.Attachment, *, limits: GenerationLimits
) -> tuple[PngParameters | None, tuple[int, int]]:
    """Download and check an uploaded PNG (as :func:`read_sources` does) and read its generation
    parameters: (parameters or None when it carries none, the image's size)."""
    data = await _download(attachment, "image", limits)

    def check() -> tuple[PngParameters | None, tuple[int, int]]:
        decoded = check_upload(
            data, content_type=attachment.content_type, filename=attachment.filename,
            max_bytes=limits.max_upload_bytes, max_pixels=limits.max_upload_pixels, role="image",
        )
        with Image.open(io.BytesIO(data)) as image:
            return read_parameters(image), decoded.size

    return await asyncio.to_thread(check)


async def store_sources(sources: DecodedSources, store: ImageStore) -> SourceImages:
    """Store a valid request's uploads as PNG (in a thread)."""

    def write() -> SourceImages:
        created: list[str] = []

        def put(image: Image.Image) -> str:
            data = _png(image)
            digest = hashlib.sha256(data).hexdigest()
            existed = store.path_of(f"{digest[:2]}/{digest}.png").exists()
            relative = store.write(data).relative_path
            if not existed:
                created.append(relative)
            return relative

        mask_path = put(sources.mask) if sources.mask is not None else None
        image_path = put(sources.image)
        return SourceImages(image_path, mask_path, sources.size, tuple(created))

    return await asyncio.to_thread(write)


async def discard(stored: SourceImages, store: ImageStore) -> None:
    """Remove the files a refused request created (files another job shares are left alone)."""

    def remove() -> None:
        for relative in stored.created:
            try:
                store.path_of(relative).unlink(missing_ok=True)
            except OSError as error:
                log.warning("could not remove the upload %s of a refused request: %s", relative, error)

    await asyncio.to_thread(remove)
