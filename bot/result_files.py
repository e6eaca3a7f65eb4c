"""The files a result posts: its images as PNG, one grid for several, withheld cells grey, fitted to the upload limit.

Every PNG carries its generation parameters in the web UI's ``parameters`` text chunk
(:mod:`rules.png_parameters`); a grid carries the first image's. A result re-encoded as WebP or JPEG
to fit the upload limit keeps them in its EXIF UserComment, as the web UI does.

Blocking Pillow work: call these through ``asyncio.to_thread``. No Discord here.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from bot import embeds
from composition.grid import make_grid
from composition.upload_fit import fit_upload
from rules.png_parameters import png_bytes
from rules.safety import Decision

#: A withheld image's cell in a grid.
WITHHELD_GREY = (64, 64, 64)


@dataclass(frozen=True)
class ResultUpload:
    """What a result message carries: one file (a grid, or the one image) or none, and each image's fate."""

    filename: str | None
    data: bytes | None
    decisions: tuple[Decision, ...]

    @property
    def shown(self) -> tuple[bool, ...]:
        """Whether each image can be seen in the message (withheld ones can't)."""
        return tuple(decision != "withhold" for decision in self.decisions)

def encode_png_all(images: list[Image.Image], parameters: list[str] | None = None) -> list[bytes]:
    """Each image as PNG bytes with its ``parameters`` text (fast settings: these are stored and posted as they are)."""
    texts: list[str | None] = list(parameters) if parameters is not None else [None] * len(images)
    return [png_bytes(image, text) for image, text in zip(images, texts, strict=True)]

def result_upload(
    images: list[Image.Image],
    encoded: list[bytes],
    decisions: tuple[Decision, ...],
    job_id: int,
    seeds: list[int],
    limit: int,
    parameters: str | None = None,
) -> ResultUpload:
    """The file a result posts (blocking: grid making and encoding; run it in a thread).

    One image: itself. Several: one grid, withheld cells painted grey. Spoilers: the whole file
    (``SPOILER_`` name). Nothing shown: no file. A PNG over ``limit`` is re-encoded to fit.
    ``parameters`` is the text the posted file carries: the image's own, or a grid's first image's.
    """
    shown = [decision != "withhold" for decision in decisions]
    if not any(shown):
        return ResultUpload(None, None, decisions)
    if len(images) == 1:
        picture, data, name = images[0], encoded[0], embeds.image_filename(job_id, 0, seeds[0])
    else:
        cells = [
            image if visible else Image.new("RGB", image.size, WITHHELD_GREY)
            for image, visible in zip(images, shown, strict=True)
        ]
        picture = make_grid(cells)
        data, name = png_bytes(picture, parameters, optimize=True), embeds.grid_filename(job_id, seeds[0])
    if len(data) > limit:
        fitted = fit_upload(picture, limit, filename_stem=name.rsplit(".", 1)[0], parameters=parameters)
        data, name = fitted.data, fitted.filename
    if "spoiler" in decisions:
        name = f"SPOILER_{name}"
    return ResultUpload(name, data, decisions)

def withheld_note(decisions: tuple[Decision, ...]) -> str:
    """The note a result's embed carries about images the safety checker flagged."""
    withheld = [str(i + 1) for i, decision in enumerate(decisions) if decision == "withhold"]
    if not withheld:
        return "Flagged by the safety checker: shown as a spoiler." if "spoiler" in decisions else ""
    if len(decisions) == 1:
        return "This image was flagged by the safety checker and is not shown here."
    return f"Image {', '.join(withheld)} was flagged by the safety checker and is not shown here."
