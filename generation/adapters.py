"""LoRA weights loaded once per pipeline and switched on per job.

A request names the LoRAs it wants (:class:`rules.request.LoraUse`: name, source, weight). The
first job that uses a source loads it into the pipeline as a peft adapter (diffusers'
``load_lora_weights``); every later job only activates the set it names (``set_adapters``) or
switches all of them off (``disable_lora``). Jobs with different LoRAs never share a batch (the
LoRAs are part of :meth:`GenerationRequest.batch_key`), so one member's LoRA cannot leak into
another's image, and a job without LoRAs runs on exactly the base weights.

Runs on the engine's worker thread, under the engine's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generation.errors import AdapterLoadError
from rules.request import LoraUse

log = logging.getLogger(__name__)

#: The file diffusers' ``save_lora_weights`` writes in a folder (and the DreamBooth-LoRA example saves).
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


def _load_arguments(source: str) -> tuple[str, dict[str, Any]]:
    """What ``load_lora_weights`` needs for a file, a folder or a hub id."""
    path = Path(source).expanduser()
    if path.is_file():
        return str(path.parent), {"weight_name": path.name}
    if path.is_dir():
        return str(path), {"weight_name": LORA_WEIGHT_NAME} if (path / LORA_WEIGHT_NAME).exists() else {}
    return source, {}


class LoraAdapters:
    """The LoRAs loaded into one pipeline (and the pipelines made from it with ``from_pipe``)."""

    def __init__(self) -> None:
        #: source -> the adapter name it was loaded under.
        self._loaded: dict[str, str] = {}
        self._enabled = False

    @property
    def loaded(self) -> dict[str, str]:
        """The sources loaded so far, with their adapter names."""
        return dict(self._loaded)

    def _ensure_loaded(self, pipe: Any, use: LoraUse) -> str:
        adapter = self._loaded.get(use.source)
        if adapter is not None:
            return adapter
        adapter = f"lora_{len(self._loaded)}"
        location, kwargs = _load_arguments(use.source)
        try:
            pipe.load_lora_weights(location, adapter_name=adapter, **kwargs)
        except Exception as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise AdapterLoadError(f"LoRA {use.name!r} could not be loaded from its file: {first}") from error
        self._loaded[use.source] = adapter
        self._enabled = True
        log.info("LoRA %s loaded from %s as %s", use.name, use.source, adapter)
        return adapter

    def activate(self, pipe: Any, uses: Sequence[LoraUse]) -> None:
        """Make exactly ``uses`` active on ``pipe`` at their weights; none: the base weights alone."""
        if not uses:
            if self._enabled:
                pipe.disable_lora()
                self._enabled = False
            return
        weights: dict[str, float] = {}
        for use in uses:
            adapter = self._ensure_loaded(pipe, use)
            # The same LoRA named twice adds up, as it would in a prompt.
            weights[adapter] = weights.get(adapter, 0.0) + use.weight
        pipe.enable_lora()
        pipe.set_adapters(list(weights), list(weights.values()))
        self._enabled = True

    def unload(self, pipe: Any) -> None:
        """Remove every LoRA from ``pipe`` (before the model is freed or replaced)."""
        if self._loaded:
            pipe.unload_lora_weights()
        self._loaded.clear()
        self._enabled = False
