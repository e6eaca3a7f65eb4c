"""The diffusers side: load a model once, run one :class:`GenerationRequest` on it.

:class:`DiffusionEngine` is blocking by design: the job queue calls :meth:`DiffusionEngine.run`
from its worker thread, never from the event loop. txt2img, img2img and upscaling share the one
set of weights (``from_pipe``), loaded once.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from generation.errors import JobStopped
from generation.previews import LatentProjection, Previewer, TinyAutoencoderPreview
from generation.request import SCHEDULERS, GenerationRequest

log = logging.getLogger(__name__)

#: Called from the worker thread after each denoising step: (step, total_steps, latents).
StepCallback = Callable[[int, int, Any], None]


@dataclass(frozen=True)
class Placement:
    """Where and in which precision the model runs."""

    device: str
    dtype: torch.dtype


def resolve_placement(device: str = "auto", dtype: str = "auto") -> Placement:
    """Turn the config's ``device`` / ``dtype`` (``auto`` or explicit) into a placement.

    ``auto`` means CUDA with float16 when a GPU is present, else the CPU with float32.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    auto = torch.float16 if device.startswith("cuda") else torch.float32
    chosen = auto if dtype == "auto" else dtypes[dtype]
    return Placement(device=device, dtype=chosen)


def _is_sdxl_checkpoint(path: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return any(key.startswith("conditioner.embedders.1") for key in handle.keys())  # noqa: SIM118


def load_text2image(model_id: str, placement: Placement) -> Any:
    """Load a text-to-image pipeline from a hub id, a local diffusers folder or a .safetensors file."""
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline, StableDiffusionXLPipeline

    path = Path(model_id).expanduser()
    kwargs: dict[str, Any] = {"torch_dtype": placement.dtype}
    if path.suffix == ".safetensors" and path.is_file():
        cls = StableDiffusionXLPipeline if _is_sdxl_checkpoint(path) else StableDiffusionPipeline
        pipe = cls.from_single_file(str(path), **kwargs)
    else:
        source = str(path) if path.exists() else model_id
        pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
    pipe = pipe.to(placement.device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class DiffusionEngine:
    """One loaded model on one device, running one request at a time."""

    def __init__(
        self, model_id: str, *, device: str = "auto", dtype: str = "auto", preview_decoder: str = ""
    ) -> None:
        self.model_id = model_id
        self.placement = resolve_placement(device, dtype)
        self.preview_decoder = preview_decoder
        self.previewer: Previewer = LatentProjection()
        self._text2image: Any = None
        self._image2image: Any = None
        self._default_scheduler: Any = None
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        """The device this engine runs on."""
        return self.placement.device

    @property
    def model_name(self) -> str:
        """A short name for embeds: the folder or file name, or the hub id."""
        path = Path(self.model_id)
        return path.name if path.exists() else self.model_id

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has run."""
        return self._text2image is not None

    def load(self) -> None:
        """Load the weights (blocking; minutes for a real model on first use)."""
        from diffusers import AutoPipelineForImage2Image

        pipe = load_text2image(self.model_id, self.placement)
        self._text2image = pipe
        self._image2image = AutoPipelineForImage2Image.from_pipe(pipe)
        self._image2image.set_progress_bar_config(disable=True)
        self._default_scheduler = pipe.scheduler
        if self.preview_decoder:
            self.previewer = TinyAutoencoderPreview.load(
                self.preview_decoder, device=self.device, dtype=self.placement.dtype
            )
        else:
            self.previewer = LatentProjection(sdxl="XL" in type(pipe).__name__)
        log.info("model %s loaded on %s (%s)", self.model_name, self.device, self.placement.dtype)

    @property
    def pipeline(self) -> Any:
        """The loaded text-to-image pipeline."""
        if self._text2image is None:
            raise RuntimeError("the model is not loaded yet")
        return self._text2image

    @property
    def native_size(self) -> int:
        """The model's native image side in pixels (512 for SD 1.5, 1024 for SDXL, 64 for the tiny model)."""
        pipe = self.pipeline
        return int(pipe.unet.config.sample_size * pipe.vae_scale_factor)

    @property
    def max_tokens(self) -> int:
        """How many tokens (start and end markers included) the text encoder reads."""
        return int(self.pipeline.tokenizer.model_max_length)

    def count_tokens(self, text: str) -> int:
        """The number of tokens ``text`` takes, start and end markers included."""
        return len(self.pipeline.tokenizer(text, truncation=False).input_ids)

    def _scheduler_for(self, pipe: Any, name: str | None) -> Any:
        if name is None:
            return self._default_scheduler
        import diffusers

        cls = getattr(diffusers, SCHEDULERS[name])
        extra = {"skip_prk_steps": True} if name == "pndm" else {}  # PRK steps need at least 4 steps
        return cls.from_config(self._default_scheduler.config, **extra)

    def run(
        self,
        request: GenerationRequest,
        *,
        init_image: Image.Image | None = None,
        on_step: StepCallback | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[Image.Image]:
        """Run one request and return its images (blocking); see :meth:`run_batch`."""
        return self.run_batch([request], [init_image], on_step=on_step, should_stop=should_stop)[0]

    def run_batch(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        *,
        on_step: StepCallback | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[list[Image.Image]]:
        """Run compatible requests (equal :meth:`GenerationRequest.batch_key`) as one pipeline call.

        Each image gets its own freshly seeded generator, so image ``i`` of a request equals the
        same request run alone with seed ``seed + i``, batched or not. ``should_stop`` is asked
        after every step; when it returns an exception (cancelled, timed out, shutting down) that
        exception is raised there, which stops the pipeline before the VAE decode.
        """
        if not requests or len(requests) != len(init_images):
            raise ValueError("run_batch needs one init image slot per request")
        key = requests[0].batch_key()
        if any(r.batch_key() != key for r in requests):
            raise ValueError("requests in one batch must share size, steps, guidance, scheduler and kind")
        with self._lock:
            images = self._run_locked(requests, init_images, on_step, should_stop)
        out: list[list[Image.Image]] = []
        for request in requests:
            out.append(images[: request.count])
            images = images[request.count :]
        return out

    def _run_locked(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        on_step: StepCallback | None,
        should_stop: Callable[[], JobStopped | None] | None,
    ) -> list[Image.Image]:
        first = requests[0]
        steps = first.steps
        if first.kind == "txt2img":
            pipe = self.pipeline
            total = steps
        else:
            if any(image is None for image in init_images):
                raise ValueError(f"a {first.kind} request needs its source image")
            pipe = self._image2image
            strength = first.strength or 1.0
            # img2img runs int(steps * strength) steps; make sure that is at least one.
            steps = max(steps, math.ceil(1 / strength))
            total = max(1, min(steps, int(steps * strength)))
        pipe.scheduler = self._scheduler_for(pipe, first.scheduler)

        def step_end(_pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                on_step(min(step + 1, total), total, tensors.get("latents"))
            stop = should_stop() if should_stop is not None else None
            if stop is not None:
                raise stop
            return tensors

        seeds = [seed for request in requests for seed in request.seeds()]
        common: dict[str, Any] = {
            "prompt": [r.prompt for r in requests for _ in range(r.count)],
            # "" is what diffusers uses for a missing negative prompt, so batching changes nothing.
            "negative_prompt": [r.negative_prompt for r in requests for _ in range(r.count)],
            "num_inference_steps": steps,
            "guidance_scale": first.guidance,
            "generator": [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds],
            "callback_on_step_end": step_end,
            "output_type": "pil",
        }
        if first.kind == "txt2img":
            result = pipe(width=first.width, height=first.height, **common)
            return list(result.images)
        sources: list[Image.Image] = []
        for request, image in zip(requests, init_images, strict=True):
            assert image is not None
            source = image.convert("RGB")
            if source.size != (request.width, request.height):
                source = source.resize((request.width, request.height), Image.Resampling.LANCZOS)
            sources.extend([source] * request.count)
        large = first.width * first.height > 1024 * 1024
        if large:
            pipe.vae.enable_tiling()
        try:
            result = pipe(image=sources, strength=first.strength, **common)
        finally:
            if large:
                pipe.vae.disable_tiling()
        return list(result.images)

    def preview_png(self, latents: Any, max_side: int = 160) -> bytes:
        """A small PNG of the first image's current latents (cheap; see :mod:`generation.previews`)."""
        return self.previewer.render_png(latents, max_side=max_side)

    def release_memory(self) -> None:
        """Give cached GPU memory back after a failure (out of memory, say)."""
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
