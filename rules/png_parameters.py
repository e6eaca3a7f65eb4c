"""Generation parameters inside the PNG, as AUTOMATIC1111's web UI writes them, and read back for a re-run.

Every PNG the bot writes carries a text chunk named ``parameters`` (:data:`PARAMETERS_KEY`) in the
web UI's format, which A1111, Forge, ComfyUI's loaders, Civitai and the metadata viewers read::

    a lighthouse at dusk, (fog:1.3) <lora:ink:0.8>
    Negative prompt: text, watermark
    Steps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 123, Size: 512x512, Model: sd15, Lora hashes: "ink: 3f2a9c1d0b7e"

As the web UI does, the LoRAs stay in the prompt as ``<lora:NAME:WEIGHT>`` tags (those given with
``--lora`` are added as tags), and ``Lora hashes`` holds the first 12 hex digits of each file's
SHA-256. Reading is done by ``sd-parsers`` (a maintained reader of A1111, ComfyUI, Fooocus, InvokeAI
and NovelAI metadata), so a PNG from another tool can be re-run too, as far as its fields map.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from PIL import Image, PngImagePlugin

from rules.loras import extract_lora_tags
from rules.request import GenerationRequest, LoraUse, canonical_scheduler

#: The PNG text chunk (and the key in Pillow's ``Image.info``) the web UI writes.
PARAMETERS_KEY: Final = "parameters"
_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@lru_cache(maxsize=256)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def lora_hash(source: str) -> str | None:
    """The web UI's short hash of a LoRA file (12 hex digits of its SHA-256), or None for a hub id or a
    missing file. Cached per path, size and modification time."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        path = files[0] if files else path
    if not path.is_file():
        return None
    stat = path.stat()
    return _file_hash(str(path), stat.st_size, stat.st_mtime_ns)


def prompt_with_lora_tags(prompt: str, loras: Sequence[LoraUse]) -> str:
    """``prompt`` with a ``<lora:NAME:WEIGHT>`` tag for every LoRA it does not already hold as a tag."""
    tags = [(name.lower(), weight) for name, weight in extract_lora_tags(prompt)]
    added: list[str] = []
    for use in loras:
        match = next(
            (tag for tag in tags
             if tag[0] == use.name.lower() and (tag[1] is None or math.isclose(tag[1], use.weight))),
            None,
        )
        if match is not None:
            tags.remove(match)
        else:
            added.append(f"<lora:{use.name}:{_number(use.weight)}>")
    return " ".join([prompt.strip(), *added])


def parameters_text(
    request: GenerationRequest,
    *,
    seed: int,
    model_name: str,
    sampler: str | None = None,
) -> str:
    """The ``parameters`` text of one image of ``request`` (its own ``seed``).

    ``sampler`` is the one the image was made with (the samplers carry the web UI's names); None:
    the request's, else ``Default`` (the model's own scheduler, none the web UI names).
    """
    lines = [" ".join(prompt_with_lora_tags(request.prompt, request.loras).split())]
    if request.negative_prompt.strip():
        lines.append(f"Negative prompt: {' '.join(request.negative_prompt.split())}")
    used = sampler or (canonical_scheduler(request.scheduler) if request.scheduler else None)
    fields = [
        ("Steps", str(request.steps)),
        ("Sampler", used or "Default"),
        ("CFG scale", _number(request.guidance)),
        ("Seed", str(seed)),
        ("Size", f"{request.width}x{request.height}"),
        ("Model", model_name.replace(",", " ")),
    ]
    if request.strength is not None and request.kind != "txt2img":
        fields.append(("Denoising strength", _number(request.strength)))
    hashes = {use.name: lora_hash(use.source) for use in request.loras}
    known = [f"{name}: {digest}" for name, digest in hashes.items() if digest]
    if known:
        fields.append(("Lora hashes", '"' + ", ".join(known) + '"'))
    lines.append(", ".join(f"{key}: {value}" for key, value in fields))
    return "\n".join(lines)


def png_bytes(image: Image.Image, parameters: str | None, *, optimize: bool = False) -> bytes:
    """``image`` as PNG, with ``parameters`` in a ``parameters`` text chunk (iTXt when not Latin-1)."""
    buffer = io.BytesIO()
    info = None
    if parameters:
        info = PngImagePlugin.PngInfo()
        info.add_text(PARAMETERS_KEY, parameters)
    image.save(buffer, format="PNG", optimize=optimize, pnginfo=info)
    return buffer.getvalue()


@dataclass(frozen=True)
class PngParameters:
    """What a PNG's metadata says about how it was made (None: the file does not say)."""

    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    sampler: str | None = None
    guidance: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None
    generator: str = ""

    @property
    def scheduler(self) -> str | None:
        """The sampler name in ``SCHEDULERS`` for :attr:`sampler` (None: the model's default)."""
        return scheduler_of(self.sampler)


def scheduler_of(sampler: str | None) -> str | None:
    """The sampler name in ``SCHEDULERS`` for a web UI (or ComfyUI) sampler name; None when unknown."""
    if not sampler:
        return None
    return canonical_scheduler(sampler) or canonical_scheduler(sampler.replace("ancestral", "a"))


def _whole(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _number_or_none(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def read_parameters(image: Image.Image) -> PngParameters | None:
    """The generation parameters in ``image``'s metadata, or None when it carries none (or no prompt)."""
    from sd_parsers import ParserManager

    try:
        info = ParserManager().parse(image)
    except Exception:  # a damaged or hostile chunk is the same as none
        return None
    if info is None or not info.samplers:
        return None
    sampler = info.samplers[0]
    prompt = info.full_prompt or ""
    if not prompt.strip():
        return None
    params = {key.lower(): value for key, value in (sampler.parameters or {}).items()}
    metadata = info.metadata if isinstance(info.metadata, Mapping) else {}
    width = height = None
    size = _SIZE_RE.match(str(metadata.get("Size", "")))
    if size:
        width, height = int(size[1]), int(size[2])
    model = sampler.model.name if sampler.model is not None else None
    return PngParameters(
        prompt=prompt.strip(),
        negative_prompt=(info.full_negative_prompt or "").strip(),
        steps=_whole(params.get("steps")),
        sampler=sampler.name,
        guidance=_number_or_none(params.get("cfg_scale", params.get("cfg"))),
        seed=_whole(params.get("seed")),
        width=width,
        height=height,
        model=model,
        generator=str(getattr(info.generator, "value", info.generator)),
    )
