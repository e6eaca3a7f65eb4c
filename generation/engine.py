"""The diffusers side: load a model once, run one :class:`GenerationRequest` on it.

:class:`DiffusionEngine` is blocking by design: the job queue calls :meth:`DiffusionEngine.run`
from its worker thread, never from the event loop. txt2img, img2img, inpainting and the hires-fix
upscale share the one set of weights (``from_pipe``), loaded once; an operator may configure a
dedicated diffusers upscaler instead, loaded on its first use.

Safety: when the model ships a safety checker, the pipelines run without it (so a flagged image
is not blacked out) and the engine runs it itself on every result, marking flagged images in
``image.info[FLAGGED_INFO_KEY]``; the bot then withholds them or posts them as spoilers, as the
operator chose. :meth:`DiffusionEngine.configure` swaps in another checker (``module:function``)
or turns checking off.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from generation.adapters import LoraAdapters
from generation.consistent_attention import consistent_attention
from generation.errors import JobStopped, ModelLoadError
from generation.ip_adapter import IpAdapter, IpAdapterSource
from generation.models import LoadedModel, ModelManager, read_text2image
from generation.performance import PerformanceOptions
from generation.previews import LatentProjection, Previewer
from generation.prompt_encoding import PromptEncoder
from rules.loras import EmbeddingConfig, embeddings_for, strip_lora_tags
from rules.models import ModelSpec, ModelState, default_model_name
from rules.prompt_weights import plain_text
from rules.request import (
    FLAGGED_INFO_KEY,
    MASK_INFO_KEY,
    SAMPLER_INFO_KEY,
    SCHEDULERS,
    GenerationRequest,
    canonical_scheduler,
)

log = logging.getLogger(__name__)

#: Called from the worker thread after each denoising step: (step, total_steps, latents).
StepCallback = Callable[[int, int, Any], None]
#: Says which images are unsafe: (images, their prompts) -> one flag per image. Runs in the worker thread.
SafetyChecker = Callable[[list[Image.Image], list[str]], list[bool]]
#: Images above this many pixels are decoded by the VAE in tiles.
TILED_DECODE_PIXELS = 1024 * 1024


def load_safety_checker(spec: str) -> SafetyChecker:
    """Import the ``package.module:function`` named in ``[safety] checker``."""
    module_name, _, attribute = spec.partition(":")
    checker = getattr(importlib.import_module(module_name), attribute)
    if not callable(checker):
        raise TypeError(f"{spec} is not callable")
    return checker


class _ModelSafetyChecker:
    """The model's own safety checker (``StableDiffusionSafetyChecker`` and its feature extractor)."""

    def __init__(self, checker: Any, feature_extractor: Any, placement: Placement) -> None:
        self.checker = checker
        self.feature_extractor = feature_extractor
        self.placement = placement

    def __call__(self, images: list[Image.Image], prompts: list[str]) -> list[bool]:
        import numpy as np

        inputs = self.feature_extractor(images, return_tensors="pt").pixel_values
        arrays = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 for image in images])
        with torch.no_grad():
            _, flags = self.checker(
                images=arrays, clip_input=inputs.to(self.placement.device, self.placement.dtype)
            )
        return [bool(flag) for flag in flags]


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
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"model.device: {device!r} needs a CUDA GPU and none is available here; "
            'set device = "cpu" or "auto" in [model]'
        )
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    auto = torch.float16 if device.startswith("cuda") else torch.float32
    chosen = auto if dtype == "auto" else dtypes[dtype]
    return Placement(device=device, dtype=chosen)


def sampler_name(model: LoadedModel) -> str | None:
    """The sampler a model runs when a request names none: its configured one, else the name in
    ``SCHEDULERS`` that its own scheduler is (None: not one of those)."""
    if model.spec.scheduler:
        return canonical_scheduler(model.spec.scheduler)
    scheduler = model.default_scheduler
    config = getattr(scheduler, "config", {})
    for name, (class_name, changes) in SCHEDULERS.items():
        if type(scheduler).__name__ == class_name and all(config.get(k) == v for k, v in changes.items()):
            return name
    return None


def _embedding_source(source: str) -> str:
    path = Path(source).expanduser()
    return str(path) if path.exists() else source


def _load_sdxl_embedding(pipe: Any, config: EmbeddingConfig) -> None:
    """An SDXL embedding holds one tensor per encoder (``clip_l``, ``clip_g``): load each into its own."""
    from safetensors.torch import load_file

    state = load_file(_embedding_source(config.source))
    pipe.load_textual_inversion(
        state["clip_l"], token=config.token, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer
    )
    pipe.load_textual_inversion(
        state["clip_g"], token=config.token, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2
    )


def load_text2image(model_id: str, placement: Placement) -> Any:
    """Load a text-to-image pipeline from a hub id, a local diffusers folder or a single checkpoint file."""
    spec = ModelSpec(name=default_model_name(model_id), source=model_id)
    pipe = read_text2image(spec, placement.dtype)
    try:
        return pipe.to(placement.device)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ModelLoadError(
            f"model.device: the model could not be moved to {placement.device!r} ({first}); "
            "check [model] device and dtype"
        ) from error


class DiffusionEngine:
    """The models of one device (see :class:`~generation.models.ModelManager`), running one request at a time.

    ``model_id`` is the default model (``[model]``); ``models`` adds more by name. Each request
    runs on the model it names (:attr:`GenerationRequest.model`; None: the default), loaded on
    this worker's thread when it is not loaded yet. The properties that describe "the model"
    (:attr:`model_name`, :attr:`native_size`, the tokenizer) describe the default one.
    """

    def __init__(
        self,
        model_id: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        preview_decoder: str = "",
        performance: PerformanceOptions | None = None,
        models: Sequence[ModelSpec] = (),
        max_loaded_models: int = 1,
    ) -> None:
        self.model_id = model_id
        #: Speed and memory switches applied after loading (None: diffusers' defaults).
        self.performance = performance
        self.placement = resolve_placement(device, dtype)
        self.preview_decoder = preview_decoder
        specs = list(models)
        if not specs or specs[0].source != model_id:
            specs.insert(0, ModelSpec(name=default_model_name(model_id), source=model_id))
        #: Every model this worker can run, and which are loaded.
        self.models = ModelManager(
            specs, device=self.placement.device, dtype=self.placement.dtype, max_loaded=max_loaded_models,
            preview_decoder=preview_decoder, performance=performance,
        )
        #: The model the last (or running) job used.
        self._active: LoadedModel | None = None
        #: The default model's tokenizer and native size, kept when the model itself is unloaded.
        self._tokenizer: Any = None
        self._native_size = 0
        #: ``[safety] checker``: "auto" (each model's own), "off", or the checker function loaded.
        self._checker_choice: str | SafetyChecker = "auto"
        #: A dedicated upscaler model (hub id or folder); empty: hires fix with the loaded model.
        self.upscaler_id = ""
        self._upscaler: Any = None
        #: The configured IP-Adapter (``[model] ip_adapter``), loaded on its first use; None: none.
        self.ip_adapter: IpAdapter | None = None
        #: ``[embeddings.NAME]``: each model gets those made for its family when it becomes active.
        self._embedding_catalog: dict[str, EmbeddingConfig] = {}
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
    def default_model(self) -> str:
        """The name of the default model (what a request naming none runs on)."""
        return self.models.default

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has run."""
        return self._tokenizer is not None

    @property
    def loaded_models(self) -> tuple[str, ...]:
        """The models loaded on this worker now (the queue prefers it for their jobs)."""
        return self.models.loaded_names

    def model_states(self) -> list[ModelState]:
        """Each configured model as this worker knows it (for ``/models``; reads small files, call off the loop)."""
        return self.models.states()

    def load(self) -> None:
        """Load the default model's weights (blocking; minutes for a real model on first use)."""
        with self._lock:
            self._active = self.models.get(None)
            pipe = self._active.text2image
            self._tokenizer = pipe.tokenizer
            self._native_size = self._active.native_size
        log.info("model %s loaded on %s (%s)", self.model_name, self.device, self.placement.dtype)

    def use_model(self, name: str | None) -> LoadedModel:
        """Make ``name`` (None: the default) the model the next job runs on, loading it if needed (blocking).

        :class:`ModelLoadError` if it can't be loaded; the models loaded before keep serving.
        """
        with self._lock:
            return self._use_locked(name)

    def _use_locked(self, name: str | None) -> LoadedModel:
        try:
            chosen = self.models.get(name)  # loads it if needed; most recently used now
        except ModelLoadError:
            active = self._active
            if active is not None and self.models.peek(active.spec.name) is not active:
                self._active = None  # unloaded to make room before the new one failed to move in
            raise
        self._active = chosen
        if self._embedding_catalog:
            self._embed_into(chosen)
        return chosen

    @property
    def active(self) -> LoadedModel:
        """The model the last (or running) job used."""
        if self._active is None:
            raise RuntimeError("the model is not loaded yet")
        return self._active

    @property
    def previewer(self) -> Previewer:
        """The preview renderer of the active model."""
        return self._active.previewer if self._active is not None else LatentProjection()

    @property
    def safety_checker(self) -> SafetyChecker | None:
        """The checker run on every result of the active model (None: no checking)."""
        choice = self._checker_choice
        if choice == "off":
            return None
        if choice == "auto":
            own = self._active.checker if self._active is not None else None
            return _ModelSafetyChecker(own[0], own[1], self.placement) if own is not None else None
        assert callable(choice)
        return choice

    @property
    def _image2image(self) -> Any:
        return self.active.image2image

    @property
    def _inpaint(self) -> Any:
        return self.active.inpaint

    @property
    def _default_scheduler(self) -> Any:
        return self.active.default_scheduler

    def configure(self, *, safety_checker: str = "auto", upscaler: str = "") -> None:
        """Apply the operator's ``[safety] checker`` and ``[model] upscaler`` (after :meth:`load`).

        ``safety_checker``: ``auto`` (each model's own, if it ships one), ``off``, or
        ``package.module:function``. ``upscaler``: a diffusers upscaler loaded on first use, or
        empty for the hires fix. Waits for the running job, so a job never sees half a change.
        """
        choice: str | SafetyChecker = (
            safety_checker if safety_checker in ("auto", "off") else load_safety_checker(safety_checker)
        )
        with self._lock:
            self._checker_choice = choice
            if upscaler != self.upscaler_id:
                self.upscaler_id = upscaler
                self._upscaler = None

    def configure_ip_adapter(
        self,
        location: str,
        *,
        reference_root: Path,
        subfolder: str = "models",
        weight_name: str = "ip-adapter_sd15.safetensors",
        image_encoder: str = "image_encoder",
    ) -> None:
        """Use these IP-Adapter weights (``[model] ip_adapter``: hub id or folder) for requests with
        reference images, read from ``reference_root``; loaded on first use. ``location`` empty: none
        (a request with references then fails with a message naming the setting)."""
        source = (
            IpAdapterSource(location, subfolder=subfolder, weight_name=weight_name, image_encoder=image_encoder)
            if location else None
        )
        with self._lock:
            current = self.ip_adapter
            if source is None:
                self.ip_adapter = None
            elif current is None or current.source != source or current.reference_root != reference_root:
                self.ip_adapter = IpAdapter(source, reference_root)

    def pipelines(self) -> dict[str, Any]:
        """The pipelines by the request kind they run (the dedicated upscaler only once loaded)."""
        upscale = self._upscaler if self._upscaler is not None else self._image2image
        return {"txt2img": self.pipeline, "img2img": self._image2image, "inpaint": self._inpaint, "upscale": upscale}

    @property
    def pipeline(self) -> Any:
        """The active model's text-to-image pipeline."""
        return self.active.text2image

    @property
    def native_size(self) -> int:
        """The default model's native image side in pixels (512 for SD 1.5, 1024 for SDXL, 64 for the tiny model)."""
        if not self.loaded:
            raise RuntimeError("the model is not loaded yet")
        return self._native_size

    @property
    def max_tokens(self) -> int:
        """How many tokens (start and end markers included) the default model's text encoder reads."""
        if not self.loaded:
            raise RuntimeError("the model is not loaded yet")
        return int(self._tokenizer.model_max_length)

    @property
    def family(self) -> str:
        """The active model's family, as LoRAs and embeddings name it: ``sd1``, ``sd2`` or ``sdxl``."""
        return self.active.family.lower()

    @property
    def adapters(self) -> LoraAdapters:
        """The LoRAs loaded into the active model."""
        return self.active.adapters

    @property
    def embeddings(self) -> dict[str, str]:
        """The textual-inversion embeddings loaded into the active model: name -> token."""
        return dict(self.active.embeddings)

    @property
    def default_sampler(self) -> str | None:
        """The sampler (a name in ``SCHEDULERS``) the active model runs when a request names none, if known."""
        return sampler_name(self.active)

    def load_embeddings(self, catalog: Mapping[str, EmbeddingConfig]) -> None:
        """Load the configured textual-inversion embeddings made for the active model's family (after
        :meth:`load`); models loaded later get theirs when they first run.

        Each adds its token to the tokenizer(s); prompts without the token encode exactly as before.
        A file that cannot be loaded is a :class:`ModelLoadError` naming its table.
        """
        with self._lock:
            self._embedding_catalog = dict(catalog)
            self._embed_into(self.active)

    def _embed_into(self, model: LoadedModel) -> None:
        family = model.family.lower()
        pipe = model.text2image
        for name, config in embeddings_for(self._embedding_catalog, family).items():
            if name in model.embeddings:
                continue
            try:
                if family == "sdxl":
                    _load_sdxl_embedding(pipe, config)
                else:
                    pipe.load_textual_inversion(_embedding_source(config.source), token=config.token)
            except Exception as error:
                first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
                raise ModelLoadError(f"embeddings.{name}: {config.source!r} could not be loaded ({first})") from error
            model.embeddings[name] = config.token
            model.encoder = None  # the tokenizer changed
            log.info("embedding %s loaded into %s as %s", name, model.spec.name, config.token)

    def _prompt_encoder(self) -> PromptEncoder:
        active = self.active
        if active.encoder is None:
            active.encoder = PromptEncoder(active.text2image)
        return active.encoder

    def encode_prompts(self, prompts: Sequence[str], negatives: Sequence[str]) -> dict[str, Any]:
        """The active model's prompt embeddings, one row per image (see :mod:`generation.prompt_encoding`)."""
        return self._prompt_encoder().encode(prompts, negatives)

    def count_tokens(self, text: str) -> int:
        """The number of tokens ``text`` takes, start and end markers included."""
        if not self.loaded:
            raise RuntimeError("the model is not loaded yet")
        return len(self._tokenizer(text, truncation=False).input_ids)

    def _scheduler_for(self, pipe: Any, name: str | None) -> Any:
        """The scheduler a request names (any spelling accepted), else the model's configured default, else
        the model's own, built from the model's own scheduler config."""
        name = name or self.active.spec.scheduler
        if name is None:
            return self._default_scheduler
        import diffusers

        canonical = canonical_scheduler(name)
        if canonical is None:
            raise ValueError(f"unknown scheduler {name!r}")
        class_name, changes = SCHEDULERS[canonical]
        return getattr(diffusers, class_name).from_config(self._default_scheduler.config, **changes)

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
            raise ValueError("requests in one batch must share size, steps, guidance, scheduler, kind and LoRAs")
        if len(requests) > 1 and any(r.solo for r in requests):
            raise ValueError("a request whose images share attention (a storyboard) runs alone")
        with self._lock:
            self._use_locked(requests[0].model)
            images = self._run_by_length(requests, init_images, on_step, should_stop)
        out: list[list[Image.Image]] = []
        for request in requests:
            out.append(images[: request.count])
            images = images[request.count :]
        return out

    def encoded_length(self, request: GenerationRequest) -> int:
        """How many token positions the request's prompts encode to (a multiple of 77)."""
        encoder = self._prompt_encoder()
        return max(encoder.length(request.prompt), encoder.length(request.negative_prompt))

    def _run_by_length(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        on_step: StepCallback | None,
        should_stop: Callable[[], JobStopped | None] | None,
    ) -> list[Image.Image]:
        """Requests whose prompts encode to different lengths run as separate calls, one length each:
        padding a short prompt to a long one's length would change its image. Images come back in order."""
        if self.upscaler_id and requests[0].kind == "upscale":
            return self._run_locked(requests, init_images, on_step, should_stop)
        groups: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(self.encoded_length(request), []).append(index)
        if len(groups) == 1:
            return self._run_locked(requests, init_images, on_step, should_stop)
        by_request: dict[int, list[Image.Image]] = {}
        for indices in groups.values():
            group = [requests[i] for i in indices]
            images = self._run_locked(group, [init_images[i] for i in indices], on_step, should_stop)
            for i, request in zip(indices, group, strict=True):
                by_request[i], images = images[: request.count], images[request.count :]
        return [image for i in range(len(requests)) for image in by_request[i]]

    def _run_locked(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        on_step: StepCallback | None,
        should_stop: Callable[[], JobStopped | None] | None,
    ) -> list[Image.Image]:
        images = self._generate(requests, init_images, on_step, should_stop)
        # The sampler each image was made with, by the name the PNG parameters write.
        first = requests[0].scheduler
        sampler = canonical_scheduler(first) if first else sampler_name(self.active)
        for image in images:
            image.info[SAMPLER_INFO_KEY] = sampler
        self._flag_unsafe(requests, images)
        return images

    def _flag_unsafe(self, requests: Sequence[GenerationRequest], images: list[Image.Image]) -> None:
        """Mark each image with the safety checker's verdict (``info[FLAGGED_INFO_KEY]``)."""
        checker = self.safety_checker
        prompts = [prompt for r in requests for prompt in r.image_prompts()]
        flags = checker(images, prompts) if checker is not None else [False] * len(images)
        if len(flags) != len(images):
            raise RuntimeError(f"the safety checker gave {len(flags)} verdicts for {len(images)} images")
        for image, flag in zip(images, flags, strict=True):
            image.info[FLAGGED_INFO_KEY] = bool(flag)

    def _generate(
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
            if first.kind == "upscale" and self.upscaler_id:
                return self._run_upscaler(requests, init_images, on_step, should_stop)
            pipe = self._inpaint if first.kind == "inpaint" else self._image2image
            strength = first.strength or 1.0
            # img2img runs int(steps * strength) steps; make sure that is at least one.
            steps = max(steps, math.ceil(1 / strength))
            total = max(1, min(steps, int(steps * strength)))
        pipe.scheduler = self._scheduler_for(pipe, first.scheduler)
        # Every request of a batch names the same LoRAs (batch_key); none: the base weights.
        self.adapters.activate(pipe, first.loras)

        def step_end(_pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                on_step(min(step + 1, total), total, tensors.get("latents"))
            stop = should_stop() if should_stop is not None else None
            if stop is not None:
                raise stop
            return tensors

        seeds = [seed for request in requests for seed in request.seeds()]
        # One row of embeddings per image, made after the LoRAs are switched (they may touch the
        # text encoder). "" is what diffusers uses for a missing negative prompt, so batching changes nothing.
        embeds = self.encode_prompts(
            [prompt for r in requests for prompt in r.image_prompts()],
            [r.negative_prompt for r in requests for _ in range(r.count)],
        )
        common: dict[str, Any] = {
            **embeds,
            "num_inference_steps": steps,
            "guidance_scale": first.guidance,
            "generator": [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds],
            "callback_on_step_end": step_end,
            "output_type": "pil",
        }
        with self._extensions(first, pipe, len(seeds)) as extra:
            common.update(extra)
            if first.kind == "txt2img":
                return list(pipe(width=first.width, height=first.height, **common).images)
            return self._from_sources(pipe, requests, init_images, common)

    @contextlib.contextmanager
    def _extensions(self, request: GenerationRequest, pipe: Any, images: int) -> Iterator[dict[str, Any]]:
        """IP-Adapter and consistent attention for one pipeline call, when the request asks for them;
        yields the extra pipeline arguments. Both are taken out again on exit."""
        with contextlib.ExitStack() as stack:
            extra: dict[str, Any] = {}
            if request.ip_adapter_images:
                if self.ip_adapter is None:
                    raise ValueError("this request has reference images but no IP-Adapter is configured "
                                     "([model] ip_adapter)")
                references = stack.enter_context(
                    self.ip_adapter.applied(pipe, request.ip_adapter_images, request.ip_adapter_scale)
                )
                extra["ip_adapter_image"] = [references]
            if request.shared_attention > 0:
                stack.enter_context(
                    consistent_attention(pipe.unet, images=images, rate=request.shared_attention, seed=request.seed)
                )
            yield extra

    def _from_sources(
        self,
        pipe: Any,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        common: dict[str, Any],
    ) -> list[Image.Image]:
        """img2img or inpainting from each request's source image."""
        first = requests[0]
        sources, masks = self._sources(requests, init_images)
        if first.kind == "inpaint":
            common["mask_image"] = masks
            common["width"], common["height"] = first.width, first.height
        # Tiling the operator turned on for every size stays on.
        large = first.width * first.height > TILED_DECODE_PIXELS and not pipe.vae.use_tiling
        if large:
            pipe.vae.enable_tiling()
        try:
            result = pipe(image=sources, strength=first.strength, **common)
        finally:
            if large:
                pipe.vae.disable_tiling()
        return list(result.images)

    @staticmethod
    def _sources(
        requests: Sequence[GenerationRequest], init_images: Sequence[Image.Image | None]
    ) -> tuple[list[Image.Image], list[Image.Image]]:
        """Each request's source image (and inpainting mask), Lanczos-resized to its size, once per image."""
        sources: list[Image.Image] = []
        masks: list[Image.Image] = []
        for request, image in zip(requests, init_images, strict=True):
            assert image is not None
            size = (request.width, request.height)
            source = image.convert("RGB")
            if source.size != size:
                source = source.resize(size, Image.Resampling.LANCZOS)
            sources.extend([source] * request.count)
            if request.kind == "inpaint":
                mask = image.info.get(MASK_INFO_KEY)
                if not isinstance(mask, Image.Image):
                    raise ValueError("an inpaint request needs its mask")
                mask = mask.convert("L")
                if mask.size != size:
                    mask = mask.resize(size, Image.Resampling.BILINEAR)
                masks.extend([mask] * request.count)
        return sources, masks

    def _load_upscaler(self) -> Any:
        """The dedicated upscaler, loaded on first use (blocking, in the worker thread)."""
        if self._upscaler is None:
            from diffusers import DiffusionPipeline

            path = Path(self.upscaler_id).expanduser()
            source = str(path) if path.exists() else self.upscaler_id
            log.info("loading upscaler %s on %s", self.upscaler_id, self.device)
            upscaler = DiffusionPipeline.from_pretrained(source, torch_dtype=self.placement.dtype)
            upscaler = upscaler.to(self.device)
            upscaler.set_progress_bar_config(disable=True)
            self._upscaler = upscaler
        return self._upscaler

    def _run_upscaler(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        on_step: StepCallback | None,
        should_stop: Callable[[], JobStopped | None] | None,
    ) -> list[Image.Image]:
        """Upscale with the dedicated model, then fit the result to the requested size (Lanczos)."""
        pipe = self._load_upscaler()
        first = requests[0]
        total = first.steps
        accepts = inspect.signature(pipe.__call__).parameters

        def step(index: int, latents: Any) -> None:
            if on_step is not None:
                on_step(min(index + 1, total), total, latents)
            stop = should_stop() if should_stop is not None else None
            if stop is not None:
                raise stop

        kwargs: dict[str, Any] = {
            # Upscalers take text: the words without weights or LoRA tags.
            "prompt": [plain_text(strip_lora_tags(r.prompt)) for r in requests for _ in range(r.count)],
            "image": [image.convert("RGB") for image, r in zip(init_images, requests, strict=True)
                      if image is not None for _ in range(r.count)],
            "num_inference_steps": total,
            "generator": [torch.Generator(device="cpu").manual_seed(s) for r in requests for s in r.seeds()],
            "output_type": "pil",
        }
        if "callback_on_step_end" in accepts:

            def step_end(_pipe: Any, index: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
                step(index, tensors.get("latents"))
                return tensors

            kwargs["callback_on_step_end"] = step_end
        elif "callback" in accepts:
            kwargs["callback"] = lambda i, _t, latents: step(i, latents)
            kwargs["callback_steps"] = 1
        large = first.width * first.height > TILED_DECODE_PIXELS and not getattr(
            getattr(pipe, "vae", None), "use_tiling", True
        )
        if large:
            pipe.vae.enable_tiling()
        try:
            images = list(pipe(**kwargs).images)
        finally:
            if large:
                pipe.vae.disable_tiling()
        sizes = [(r.width, r.height) for r in requests for _ in range(r.count)]
        return [
            image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)
            for image, size in zip(images, sizes, strict=True)
        ]

    def exclusive(self) -> threading.Lock:
        """The lock jobs hold while they use the model (training holds it for a slice: ``with engine.exclusive():``)."""
        return self._lock

    def preview_png(self, latents: Any, max_side: int = 160) -> bytes:
        """A small PNG of the first image's current latents (cheap; see :mod:`generation.previews`)."""
        return self.previewer.render_png(latents, max_side=max_side)

    def release_memory(self) -> None:
        """Give cached GPU memory back after a failure (out of memory, say)."""
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
