"""Several models on one worker: which are loaded, loading the next one, and unloading the oldest.

:class:`ModelManager` belongs to one worker (one :class:`~generation.engine.DiffusionEngine`, one
device) and is only used from that worker's thread. It holds the configured
:class:`~rules.models.ModelSpec` s by name and keeps up to ``max_loaded`` of them loaded, least
recently used first out. Loading is done in an order that keeps the current model safe:

1. the new weights are read into CPU memory (a missing or broken model fails here, with
   :class:`~generation.errors.ModelLoadError`, and nothing that was loaded is touched);
2. when the worker is full, the model used longest ago is unloaded and its memory freed
   (``gc`` and ``torch.cuda.empty_cache``) before
3. the new one moves to the device.

The pipeline class comes from the checkpoint: diffusers' ``AutoPipeline`` reads a folder's
``model_index.json``; a single ``.safetensors`` or ``.ckpt`` file is SDXL when it holds SDXL's
second text encoder. SDXL's own VAE overflows in float16, so in float16 it is upcast to float32
for decoding (``force_upcast``) unless the spec names an fp16-safe VAE (``vae = ...``).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from generation.adapters import LoraAdapters
from generation.errors import ModelLoadError
from generation.performance import PerformanceOptions, apply_performance
from generation.previews import LatentProjection, Previewer, TinyAutoencoderPreview
from rules.models import NATIVE_SIZES, ModelSpec, ModelState

log = logging.getLogger(__name__)

#: The file suffixes loaded as one single checkpoint file.
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


@dataclass
class LoadedModel:
    """One model's pipelines on the device: txt2img, and img2img and inpainting sharing its weights."""

    spec: ModelSpec
    text2image: Any
    image2image: Any
    inpaint: Any
    #: The scheduler the model shipped with (a request naming no sampler gets it).
    default_scheduler: Any
    #: The model's own safety checker, run by the engine (None: it ships none).
    checker: Any
    previewer: Previewer
    family: str
    native_size: int
    loaded_at: float = field(default_factory=time.monotonic)
    #: LoRAs loaded into this model's pipelines, switched on per job (they go when the model is unloaded).
    adapters: LoraAdapters = field(default_factory=LoraAdapters)
    #: compel over its text encoder(s), made on first use (``generation.prompt_encoding.PromptEncoder``).
    encoder: Any = None
    #: Textual-inversion embeddings loaded into it: name -> token.
    embeddings: dict[str, str] = field(default_factory=dict)


def _is_sdxl_checkpoint(path: Path) -> bool:
    """Whether a single checkpoint file holds SDXL's second text encoder."""
    marker = "conditioner.embedders.1"
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return any(key.startswith(marker) for key in handle.keys())  # noqa: SIM118
    state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else {}
    return any(str(key).startswith(marker) for key in state)


def family_of(pipe: Any) -> str:
    """``SDXL``, ``SD2`` or ``SD1`` for a loaded pipeline."""
    if "XL" in type(pipe).__name__ or getattr(pipe, "text_encoder_2", None) is not None:
        return "SDXL"
    cross = int(getattr(pipe.unet.config, "cross_attention_dim", 768) or 768)
    return "SD2" if cross == 1024 else "SD1"


def _folder_of(source: str) -> Path | None:
    """The local diffusers folder for ``source``: the folder itself, or a hub id's cached snapshot."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists() or "/" not in source or source.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "model_index.json")
    except Exception:
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def detect_family(source: str) -> tuple[str, int]:
    """A model's family and native size from its files, without loading it: ``("", 0)`` when not known.

    A folder (or a hub id already in the local cache) is read from its ``model_index.json`` and
    UNet and VAE configs; a single checkpoint file from its tensor names. Never downloads.
    """
    path = Path(source).expanduser()
    if path.is_file() and path.suffix in SINGLE_FILE_SUFFIXES:
        try:
            family = "SDXL" if _is_sdxl_checkpoint(path) else "SD1"
        except Exception:
            return "", 0
        return family, NATIVE_SIZES[family]
    folder = _folder_of(source)
    if folder is None:
        return "", 0
    index = _read_json(folder / "model_index.json")
    if not index:
        return "", 0
    unet = _read_json(folder / "unet" / "config.json")
    vae = _read_json(folder / "vae" / "config.json")
    if "XL" in str(index.get("_class_name", "")) or "text_encoder_2" in index:
        family = "SDXL"
    else:
        family = "SD2" if unet.get("cross_attention_dim") == 1024 else "SD1"
    sample = unet.get("sample_size")
    blocks = vae.get("block_out_channels")
    if isinstance(sample, int) and isinstance(blocks, list) and blocks:
        return family, sample * 2 ** (len(blocks) - 1)
    return family, NATIVE_SIZES[family]


def _failure(spec: ModelSpec, error: BaseException, key: str) -> ModelLoadError:
    """The error for a model that failed to load: one line for the operator (its config ``key``, why, what
    to do), and a short reason a member may read."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    source = spec.source
    path = Path(source).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    if path.exists():
        hint = "it is not a diffusers folder or .safetensors/.ckpt checkpoint this bot can load"
        reason = "its files are damaged or not a model this bot can load"
    elif "/" in source and not source.startswith((".", "/", "~")):
        hint = (
            "it was not found on the model hub nor in the local cache"
            + (" (HF_HUB_OFFLINE is set)" if offline else " (no network, or a wrong id)")
            + "; check the id, or download it once with network access, or point id at a local folder"
        )
        reason = "its files are not downloaded"
    else:
        hint = "no such file or folder; check the path, or use a hub id like owner/name"
        reason = "its files are missing"
    return ModelLoadError(
        f"{key}: {source!r} could not be loaded: {hint} ({type(error).__name__}: {first})",
        model=spec.name, reason=reason,
    )


def read_text2image(spec: ModelSpec, dtype: torch.dtype, *, key: str = "model.id") -> Any:
    """Read a model's text-to-image pipeline into CPU memory.

    :class:`ModelLoadError` naming the model's config ``key`` when it can't be read.
    """
    from diffusers import AutoencoderKL, AutoPipelineForText2Image, StableDiffusionPipeline, StableDiffusionXLPipeline

    path = Path(spec.source).expanduser()
    kwargs: dict[str, Any] = {"torch_dtype": dtype}
    try:
        if spec.vae:
            vae_path = Path(spec.vae).expanduser()
            kwargs["vae"] = AutoencoderKL.from_pretrained(str(vae_path) if vae_path.exists() else spec.vae,
                                                          torch_dtype=dtype)
        if path.suffix in SINGLE_FILE_SUFFIXES and path.is_file():
            cls = StableDiffusionXLPipeline if _is_sdxl_checkpoint(path) else StableDiffusionPipeline
            pipe = cls.from_single_file(str(path), **kwargs)
        else:
            source = str(path) if path.exists() else spec.source
            pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
    except Exception as error:
        raise _failure(spec, error, key) from error
    if family_of(pipe) == "SDXL" and dtype == torch.float16 and not spec.vae:
        # SDXL's VAE produces NaNs (black images) in float16: decode in float32 instead.
        pipe.vae.register_to_config(force_upcast=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def free_memory(device: str) -> None:
    """Give memory of dropped pipelines back (Python's, then the GPU's cached blocks)."""
    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


class ModelManager:
    """The configured models of one worker, up to ``max_loaded`` of them loaded (least recently used out)."""

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        *,
        device: str,
        dtype: torch.dtype,
        max_loaded: int = 1,
        preview_decoder: str = "",
        performance: PerformanceOptions | None = None,
    ) -> None:
        if not specs:
            raise ValueError("a model manager needs at least one model")
        if max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        self.specs: dict[str, ModelSpec] = {spec.name: spec for spec in specs}
        #: The first spec: what a request naming no model runs on.
        self.default = specs[0].name
        self.device = device
        self.dtype = dtype
        self.max_loaded = max_loaded
        self.preview_decoder = preview_decoder
        self.performance = performance
        #: Loaded models, least recently used first.
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        #: Why each model's last load failed (cleared when it loads).
        self.errors: dict[str, str] = {}
        #: Family and native size of each model, from its files (filled on first ask, then on load).
        self._detected: dict[str, tuple[str, int]] = {}

    def config_key(self, name: str) -> str:
        """Where a model's weights are named in the config: ``model.id`` or ``models.NAME.id``."""
        return "model.id" if name == self.default else f"models.{name}.id"

    @property
    def loaded_names(self) -> tuple[str, ...]:
        """The models loaded now, least recently used first."""
        return tuple(self._loaded)

    def peek(self, name: str) -> LoadedModel | None:
        """The model if it is loaded, without touching its place in the LRU order."""
        return self._loaded.get(name)

    def get(self, name: str | None) -> LoadedModel:
        """The loaded model called ``name`` (None: the default), loading it first if needed (blocking).

        :class:`ModelLoadError` for a name not configured or a model that fails to load; the
        models loaded before stay loaded when reading the new weights fails.
        """
        name = name or self.default
        loaded = self._loaded.get(name)
        if loaded is not None:
            self._loaded.move_to_end(name)
            return loaded
        spec = self.specs.get(name)
        if spec is None:
            known = ", ".join(self.specs)
            raise ModelLoadError(f"model {name!r} is not configured on this worker (known: {known})",
                                 model=name, reason="it is not configured on the GPU worker that took the job")
        return self._load(spec)

    def _load(self, spec: ModelSpec) -> LoadedModel:
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

        started = time.monotonic()
        try:
            pipe = read_text2image(spec, self.dtype, key=self.config_key(spec.name))
        except ModelLoadError as error:
            self.errors[spec.name] = str(error)
            raise
        while len(self._loaded) >= self.max_loaded:
            self.unload(next(iter(self._loaded)))
        try:
            pipe = pipe.to(self.device)
        except Exception as error:
            del pipe
            free_memory(self.device)
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            message = (f"model.device: model {spec.name!r} could not be moved to {self.device!r} ({first}); "
                       "check [model] device and dtype")
            self.errors[spec.name] = message
            reason = "it does not fit on the GPU next to the others"
            raise ModelLoadError(message, model=spec.name, reason=reason) from error
        checker = getattr(pipe, "safety_checker", None)
        feature_extractor = getattr(pipe, "feature_extractor", None)
        if checker is not None:
            # The engine runs the checker itself: the pipelines would black flagged images out, and
            # the operator may prefer them behind a spoiler.
            pipe.safety_checker = None
            pipe.register_to_config(requires_safety_checker=False)
        # Both share every component of ``pipe``: no weights are loaded or copied again.
        image2image = AutoPipelineForImage2Image.from_pipe(pipe)
        image2image.set_progress_bar_config(disable=True)
        inpaint = AutoPipelineForInpainting.from_pipe(pipe)
        inpaint.set_progress_bar_config(disable=True)
        if self.performance is not None:
            apply_performance(pipe, self.performance, self.device)
        family = family_of(pipe)
        previewer: Previewer
        if self.preview_decoder:
            previewer = TinyAutoencoderPreview.load(self.preview_decoder, device=self.device, dtype=self.dtype)
        else:
            previewer = LatentProjection(sdxl=family == "SDXL")
        native = int(pipe.unet.config.sample_size * pipe.vae_scale_factor)
        loaded = LoadedModel(
            spec=spec, text2image=pipe, image2image=image2image, inpaint=inpaint, default_scheduler=pipe.scheduler,
            checker=(checker, feature_extractor) if checker is not None else None, previewer=previewer,
            family=family, native_size=native,
        )
        self._loaded[spec.name] = loaded
        self._detected[spec.name] = (family, native)
        self.errors.pop(spec.name, None)
        log.info("model %s (%s, %d px) loaded on %s in %.1f s", spec.name, family, native, self.device,
                 time.monotonic() - started)
        return loaded

    def unload(self, name: str) -> bool:
        """Unload one model and free its memory; False if it was not loaded."""
        loaded = self._loaded.pop(name, None)
        if loaded is None:
            return False
        loaded.text2image = loaded.image2image = loaded.inpaint = loaded.default_scheduler = None
        loaded.checker = None
        del loaded
        free_memory(self.device)
        log.info("model %s unloaded from %s", name, self.device)
        return True

    def states(self) -> list[ModelState]:
        """Each configured model: family, native size, whether loaded here, and its last load error."""
        out = []
        for name, spec in self.specs.items():
            if name not in self._detected:
                self._detected[name] = detect_family(spec.source)
            family, native = self._detected.get(name, ("", 0))
            out.append(ModelState(
                name=name, family=family, native_size=native, loaded=name in self._loaded, device=self.device,
                error=self.errors.get(name, ""),
            ))
        return out
