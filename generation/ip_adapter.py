"""IP-Adapter: draw a character from its reference pictures without training (``[model] ip_adapter``).

diffusers does the work (``load_ip_adapter`` puts image-conditioned cross-attention processors
and an image projection into the UNet; ``set_ip_adapter_scale`` weighs them; the pipeline encodes
``ip_adapter_image`` with a CLIP vision encoder). This module adds what a shared, long-running
engine needs around that:

* the adapter's weights and its image encoder are read from disk once, on the first job that
  uses them, and kept (the encoder on the engine's device, the adapter weights on the CPU);
* the adapter is put into the UNet for one pipeline call only and taken out after it
  (:meth:`IpAdapter.applied`, under the engine's lock), restoring the exact processors that were
  there before, so a job without references draws the same pixels as before any adapter was
  loaded: scale 0 is not enough, since the adapted UNet expects image embeddings on every call.

Reference images are read on the worker thread, from paths relative to the image store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IpAdapterSource:
    """Where the IP-Adapter weights are: a hub id or folder, the subfolder and file, the image encoder."""

    location: str
    subfolder: str = "models"
    weight_name: str = "ip-adapter_sd15.safetensors"
    #: The CLIP vision encoder: a folder name inside ``subfolder``, or a path ("a/b") inside ``location``.
    image_encoder: str = "image_encoder"


def _weights_file(source: IpAdapterSource) -> Path:
    """The adapter's weight file, local or from the hub cache (downloaded once when allowed)."""
    folder = Path(source.location).expanduser()
    if folder.exists():
        return folder / source.subfolder / source.weight_name
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(source.location, source.weight_name, subfolder=source.subfolder or None))


def read_state_dict(source: IpAdapterSource) -> dict[str, dict[str, torch.Tensor]]:
    """The adapter's weights as diffusers' ``load_ip_adapter`` takes them: ``image_proj`` and ``ip_adapter``."""
    path = _weights_file(source)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        flat = load_file(str(path))
        state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for key, tensor in flat.items():
            group, _, rest = key.partition(".")
            if group in state:
                state[group][rest] = tensor
        return state
    loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    return {"image_proj": loaded["image_proj"], "ip_adapter": loaded["ip_adapter"]}


def load_image_encoder(source: IpAdapterSource, device: str, dtype: torch.dtype) -> Any:
    """The CLIP vision encoder the adapter was trained with."""
    from transformers import CLIPVisionModelWithProjection

    inside = source.image_encoder if "/" in source.image_encoder else f"{source.subfolder}/{source.image_encoder}"
    folder = Path(source.location).expanduser()
    encoder: Any
    if folder.exists():
        encoder = CLIPVisionModelWithProjection.from_pretrained(str(folder / inside), dtype=dtype)
    else:
        encoder = CLIPVisionModelWithProjection.from_pretrained(source.location, subfolder=inside.strip("/"),
                                                                dtype=dtype)
    return encoder.to(device)


def load_references(root: Path, paths: Sequence[str]) -> list[Image.Image]:
    """The reference pictures (RGB), read from the image store on the worker thread."""
    images: list[Image.Image] = []
    for relative in paths:
        with Image.open(root / relative) as image:
            images.append(image.convert("RGB"))
    return images


class IpAdapter:
    """One configured IP-Adapter for one engine: loaded lazily, applied for one call at a time."""

    def __init__(self, source: IpAdapterSource, reference_root: Path) -> None:
        self.source = source
        self.reference_root = reference_root
        self._state: dict[str, dict[str, torch.Tensor]] | None = None
        self._encoder: Any = None

    def _load(self, device: str, dtype: torch.dtype) -> None:
        if self._state is None:
            log.info("loading IP-Adapter %s (%s/%s)", self.source.location, self.source.subfolder,
                     self.source.weight_name)
            self._state = read_state_dict(self.source)
            self._encoder = load_image_encoder(self.source, device, dtype)

    @contextlib.contextmanager
    def applied(self, pipe: Any, paths: Sequence[str], scale: float) -> Iterator[list[Image.Image]]:
        """The adapter in ``pipe``'s UNet at ``scale`` for the calls made inside; yields the reference
        images to pass as ``ip_adapter_image``. Everything it changed is put back on exit."""
        from transformers import CLIPImageProcessor

        unet = pipe.unet
        self._load(str(unet.device), unet.dtype)
        assert self._state is not None
        references = load_references(self.reference_root, paths)
        saved = dict(unet.attn_processors)
        saved_projection = (unet.encoder_hid_proj, unet.config.encoder_hid_dim_type)
        saved_extractor = getattr(pipe, "feature_extractor", None)
        size = int(self._encoder.config.image_size)
        extractor = saved_extractor or CLIPImageProcessor(size=size, crop_size=size)
        pipe.register_modules(image_encoder=self._encoder, feature_extractor=extractor)
        try:
            state = {group: dict(tensors) for group, tensors in self._state.items()}
            pipe.load_ip_adapter(state, subfolder="", weight_name="", image_encoder_folder=None)
            pipe.set_ip_adapter_scale(scale)
            yield references
        finally:
            unet.set_attn_processor(saved)
            unet.encoder_hid_proj, unet.config.encoder_hid_dim_type = saved_projection
            pipe.register_modules(image_encoder=None, feature_extractor=saved_extractor)
