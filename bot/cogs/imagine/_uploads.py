"""/imagine's ``image`` and ``mask`` attachments: checked, decoded and stored before anything is queued.

The size Discord reports is checked before downloading; the bytes are then checked by
:func:`rules.image_checks.check_upload` (type, size, pixel count, decompression bombs,
damaged files, animations) in a thread, and stored content-addressed as PNG, so the job refers
to them by path like any other source image and survives a restart.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import discord
from PIL import Image

from rules.image_checks import UploadError, UploadRole, check_declared_size, check_mask_matches, check_upload
from rules.request import GenerationLimits
from storage.images import ImageStore


@dataclass(frozen=True)
class SourceImages:
    """The stored source image (and mask), by path in the image store, and the image's size."""

    image_path: str
    mask_path: str | None
    size: tuple[int, int]


async def _download(attachment: discord.Attachment, role: UploadRole, limits: GenerationLimits) -> bytes:
    check_declared_size(attachment.size, filename=attachment.filename, max_bytes=limits.max_upload_bytes, role=role)
    try:
        return await attachment.read()
    except (discord.HTTPException, discord.NotFound) as error:
        raise UploadError(role, f"I couldn't download the {role} `{attachment.filename}`; upload it again.") from error


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def read_sources(
    image: discord.Attachment, mask: discord.Attachment | None, *, limits: GenerationLimits, store: ImageStore
) -> SourceImages:
    """Check, decode and store the uploads; :class:`UploadError` with a message for the member."""
    image_data = await _download(image, "image", limits)
    mask_data = await _download(mask, "mask", limits) if mask is not None else None

    def check_and_store() -> SourceImages:
        decoded = check_upload(
            image_data, content_type=image.content_type, filename=image.filename,
            max_bytes=limits.max_upload_bytes, max_pixels=limits.max_upload_pixels, role="image",
        )
        mask_path = None
        if mask is not None and mask_data is not None:
            decoded_mask = check_upload(
                mask_data, content_type=mask.content_type, filename=mask.filename,
                max_bytes=limits.max_upload_bytes, max_pixels=limits.max_upload_pixels, role="mask",
            )
            mask_path = store.write(_png(check_mask_matches(decoded, decoded_mask))).relative_path
        image_path = store.write(_png(decoded)).relative_path
        return SourceImages(image_path=image_path, mask_path=mask_path, size=decoded.size)

    return await asyncio.to_thread(check_and_store)
