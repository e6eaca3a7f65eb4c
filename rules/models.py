"""The models an operator configured (``[model]`` and ``[models.NAME]``), as plain data.

A :class:`ModelSpec` says where a model's weights are and which defaults its requests get; the
bot reads specs to fill the ``model`` option and a request's defaults, the engine reads them to
load the weights. :class:`ModelState` is what a worker reports about one model (family, native
size, whether it is loaded), for ``/models``. Nothing here imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

from rules.request import RequestError

#: A model's name: what members type after ``--model`` and pick in the ``model`` option.
MODEL_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
#: Families by the name ``/models`` shows, with each one's native image side in pixels.
NATIVE_SIZES: Final[dict[str, int]] = {"SD1": 512, "SD2": 768, "SDXL": 1024}


@dataclass(frozen=True)
class ModelSpec:
    """One configured model: where its weights are and the defaults its requests get (None: ``[generation]``'s)."""

    name: str
    #: A hub id (``owner/name``), a local diffusers folder, or a single ``.safetensors`` / ``.ckpt`` file.
    source: str
    display_name: str = ""
    #: A VAE to use instead of the model's own (hub id or folder), e.g. an fp16-safe SDXL VAE.
    vae: str = ""
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    #: A sampler name from :data:`rules.request.SCHEDULERS` (None: the model's own scheduler).
    scheduler: str | None = None
    negative_prompt: str | None = None

    @property
    def title(self) -> str:
        """The display name, else the name."""
        return self.display_name or self.name


@dataclass(frozen=True)
class ModelState:
    """What a worker knows about one model: its family and native size, and whether it is loaded."""

    name: str
    #: ``SD1``, ``SD2``, ``SDXL``, or ``""`` when not known before loading (a hub id not downloaded yet).
    family: str
    #: The native image side in pixels (0: not known before loading).
    native_size: int
    loaded: bool
    device: str
    #: Why the last load failed (empty: it did not fail).
    error: str = ""


def default_model_name(source: str) -> str:
    """A name for a model from where it is: the file or folder name, or the last part of a hub id, lowercased.

    ``stable-diffusion-v1-5/stable-diffusion-v1-5`` is ``stable-diffusion-v1-5``; ``models/Anime.safetensors`` is
    ``anime``. Characters a name may not hold become ``-``.
    """
    stem = PurePath(source.rstrip("/\\")).name
    stem = stem.removesuffix(".safetensors").removesuffix(".ckpt").lower()
    stem = re.sub(r"[^a-z0-9_.-]+", "-", stem).strip("-._") or "default"
    return stem[:32]


def find_model(name: str, specs: Sequence[ModelSpec]) -> ModelSpec:
    """The spec called ``name`` (case does not matter), or a :class:`RequestError` listing the models."""
    wanted = name.strip().lower()
    for spec in specs:
        if spec.name == wanted:
            return spec
    listing = ", ".join(spec.name for spec in specs)
    raise RequestError("model", f"`{name}` is not a model I know. Models: {listing}.")


def match_models(current: str, specs: Sequence[ModelSpec], limit: int = 25) -> list[ModelSpec]:
    """Specs for autocomplete: names or display names starting with ``current``, then containing it."""
    typed = current.strip().lower()
    starts = [s for s in specs if s.name.startswith(typed) or s.title.lower().startswith(typed)]
    contains = [s for s in specs if s not in starts and (typed in s.name or typed in s.title.lower())]
    return (starts + contains)[:limit]
