"""What a user asks the GPU for: :class:`GenerationRequest`, its limits, and its validation.

Validation happens before anything is queued, and each error names the field, the allowed range
and what the user gave, so the bot can answer with a message that says what to change. Nothing
here imports torch: the bot builds and checks requests on the event loop.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, Strict, ValidationError, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import InitErrorDetails, PydanticCustomError

#: Key in a source image's ``info`` under which the bot hands the engine an inpainting mask (an
#: ``L`` image), and in a result image's ``info`` under which the engine marks it flagged by the
#: safety checker (a bool). The queue carries images without looking inside them.
MASK_INFO_KEY = "panelbot.mask"
FLAGGED_INFO_KEY = "panelbot.flagged"
#: Key in a result image's ``info`` naming the sampler it was made with (a name in ``SCHEDULERS``, or
#: None when the model's own scheduler is none of those), for the PNG's parameters.
SAMPLER_INFO_KEY = "panelbot.sampler"

RequestKind = Literal["txt2img", "img2img", "inpaint", "upscale"]
#: Kinds that start from a source image.
IMAGE_KINDS: tuple[str, ...] = ("img2img", "inpaint", "upscale")
SEED_MAX = 2**32 - 1
#: The most panels one storyboard draws (one image each, as one batch).
MAX_STORYBOARD_PANELS = 6
#: The most reference images an IP-Adapter request carries, and its largest scale.
MAX_REFERENCE_IMAGES = 4
MAX_IP_ADAPTER_SCALE = 2.0

#: Schedulers ("samplers") by the names artists know from other tools, mapped to the diffusers
#: class and the config changes that make it that sampler. The engine builds each from the
#: loaded model's own scheduler config. ``DPM++ SDE Karras`` runs as DPM-Solver++ in its SDE
#: form (``algorithm_type="sde-dpmsolver++"``): the same sampler as diffusers'
#: ``DPMSolverSDEScheduler`` without needing the ``torchsde`` package.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ SDE Karras": (
        "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}
    ),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True}),
}

#: Other spellings accepted (and the lowercase names jobs stored before these names were used).
_SCHEDULER_ALIASES: dict[str, str] = {
    "euler_a": "Euler a",
    "euler ancestral": "Euler a",
    "k_euler_a": "Euler a",
    "k_euler": "Euler",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp 2m": "DPM++ 2M",
    "dpmpp 2m karras": "DPM++ 2M Karras",
    "dpmpp sde karras": "DPM++ SDE Karras",
    "pndm": "PLMS",
    "unipc": "UniPC",
}


def _scheduler_key(text: str) -> str:
    """Lower case, ``_`` and ``-`` as spaces, single spaces: ``"DPM++_2M-karras"`` -> ``"dpm++ 2m karras"``."""
    return " ".join(text.replace("_", " ").replace("-", " ").lower().split())


_SCHEDULER_KEYS: dict[str, str] = {
    **{_scheduler_key(alias): name for alias, name in _SCHEDULER_ALIASES.items()},
    **{alias: name for alias, name in _SCHEDULER_ALIASES.items()},
    **{_scheduler_key(name): name for name in SCHEDULERS},
}


def canonical_scheduler(text: str) -> str | None:
    """The scheduler's name as listed in :data:`SCHEDULERS` for any accepted spelling, else None.

    Case, underscores and dashes do not matter (``"dpm++ 2m karras"``, ``"euler_a"``), and the old
    lowercase names stored jobs use (``dpmpp_2m``, ``pndm``) still work.
    """
    return _SCHEDULER_KEYS.get(text.strip()) or _SCHEDULER_KEYS.get(_scheduler_key(text))


def scheduler_error(field_name: str, given: str) -> RequestError:
    """The error for a scheduler name that is not known: it names the field and lists the known names."""
    return RequestError(field_name, f"`{field_name}` must be one of {', '.join(SCHEDULERS)}; you gave {given!r}.")


class RequestError(ValueError):
    """A request a user made cannot run; ``str()`` is a short message saying what to change."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


#: Unknown fields are refused; numbers are declared strict (``"3"`` is not a number).
_FIELDS = ConfigDict(extra="forbid")
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]


@pydantic_dataclass(frozen=True, config=_FIELDS)
class GenerationLimits:
    """Defaults and limits for requests, from the ``[generation]`` config section.

    Each range is declared on its field; a value checked against another field (a default against
    its maximum) is checked after both are read. Bad values raise a pydantic ``ValidationError``
    (a ``ValueError``) whose error ``loc`` names the field.
    """

    default_steps: Annotated[Int, Field(ge=1)] = 30
    max_steps: Annotated[Int, Field(ge=1)] = 100
    default_guidance: Annotated[Float, Field(ge=0)] = 7.0
    max_guidance: Annotated[Float, Field(ge=0)] = 30.0
    default_count: Annotated[Int, Field(ge=1)] = 4
    max_count: Annotated[Int, Field(ge=1, le=4)] = 4
    min_size: Annotated[Int, Field(ge=8, multiple_of=8)] = 64
    max_size: Annotated[Int, Field(ge=8, multiple_of=8)] = 2048
    max_pixels: Annotated[Int, Field(ge=64)] = 1024 * 1024
    default_upscale_strength: Annotated[Float, Field(gt=0, le=1)] = 0.3
    max_upscaled_pixels: Annotated[Int, Field(ge=64)] = 2048 * 2048
    max_prompt_chars: Annotated[Int, Field(ge=1)] = 1000
    #: How much of a source image img2img and inpainting redraw when the request names no strength.
    default_strength: Annotated[Float, Field(ge=0.01, le=1)] = 0.6
    #: 🎨 variations: the strength of a subtle and of a strong one.
    variation_subtle_strength: Annotated[Float, Field(ge=0.01, le=1)] = 0.35
    variation_strong_strength: Annotated[Float, Field(ge=0.01, le=1)] = 0.65
    #: Upscales multiply each side by this.
    upscale_factor: Annotated[Int, Field(ge=2, le=4)] = 2
    #: Uploaded source images and masks: the most bytes and pixels accepted.
    max_upload_bytes: Annotated[Int, Field(ge=1024)] = 8 * 1024 * 1024
    max_upload_pixels: Annotated[Int, Field(ge=64)] = 4096 * 4096
    #: The largest result file posted; larger ones are re-encoded (WebP or JPEG) to fit. The
    #: guild's or the interaction's own upload limit applies too, whichever is smaller.
    max_result_bytes: Annotated[Int, Field(ge=64 * 1024)] = 10 * 1024 * 1024

    @model_validator(mode="after")
    def _check_against_each_other(self) -> GenerationLimits:
        smallest = self.min_size * self.min_size
        checks: list[tuple[str, bool, str]] = [
            ("default_steps", self.default_steps <= self.max_steps, f"must be at most max_steps ({self.max_steps})"),
            ("default_guidance", self.default_guidance <= self.max_guidance,
             f"must be at most max_guidance ({self.max_guidance:g})"),
            ("default_count", self.default_count <= self.max_count, f"must be at most max_count ({self.max_count})"),
            ("max_size", self.max_size >= self.min_size, f"must be at least min_size ({self.min_size})"),
            ("max_pixels", self.max_pixels >= smallest, f"must be at least min_size squared ({smallest})"),
            ("max_upscaled_pixels", self.max_upscaled_pixels >= self.max_pixels,
             f"must be at least max_pixels ({self.max_pixels})"),
            ("max_upload_pixels", self.max_upload_pixels >= smallest,
             f"must be at least min_size squared ({smallest})"),
            ("variation_subtle_strength", self.variation_subtle_strength <= self.variation_strong_strength,
             f"must not be above variation_strong_strength ({self.variation_strong_strength:g})"),
        ]
        failed = [
            InitErrorDetails(type=PydanticCustomError("range", rule), loc=(name,), input=getattr(self, name))
            for name, ok, rule in checks
            if not ok
        ]
        if failed:
            raise ValidationError.from_exception_data(type(self).__name__, failed)
        return self


@dataclass(frozen=True)
class LoraUse:
    """One LoRA applied to a request: its name (for people and metadata), where its weights are, how strongly.

    ``source`` is a ``.safetensors`` file, a folder holding ``pytorch_lora_weights.safetensors``, or a
    hub id: the engine loads each source once and activates it per job. The bot resolves names (from
    ``[loras.NAME]`` or a trained character) to sources when it builds the request, so a stored job
    re-runs with the same weights after a restart.
    """

    name: str
    source: str
    weight: float = 1.0


@dataclass(frozen=True)
class GenerationRequest:
    """Everything needed to reproduce one pipeline call. Image ``i`` uses seed ``seed + i``."""

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 30
    guidance: float = 7.0
    width: int = 512
    height: int = 512
    count: int = 1
    scheduler: str | None = None
    kind: RequestKind = "txt2img"
    #: The configured model to run on, by name (None: the default model, ``[model]``).
    model: str | None = None
    #: Path (relative to the image store) of the source image for img2img, inpaint and upscale.
    init_image: str | None = None
    #: Path (relative to the image store) of the inpainting mask: white is redrawn, black kept.
    mask_image: str | None = None
    strength: float | None = None
    #: LoRAs applied to every image of this request, in order; empty: none (the base model alone).
    loras: tuple[LoraUse, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    #: A storyboard: image ``i`` is drawn from ``panel_prompts[i]`` (``count`` equals its length);
    #: empty for an ordinary request, whose images all use ``prompt``.
    panel_prompts: list[str] = field(default_factory=list)
    #: Consistent self-attention across the images of this request (StoryDiffusion's sampling
    #: rate: the share of the other images' tokens each image attends to); 0 is off.
    shared_attention: float = 0.0
    #: IP-Adapter reference images (paths relative to the image store) and the adapter's scale.
    ip_adapter_images: list[str] = field(default_factory=list)
    ip_adapter_scale: float = 0.0

    def __post_init__(self) -> None:
        # JSON (and callers) hand lists of dicts or lists; keep one hashable form for batch keys.
        uses = tuple(
            use if isinstance(use, LoraUse)
            else LoraUse(**use) if isinstance(use, dict)
            else LoraUse(str(use[0]), str(use[1]), float(use[2]))
            for use in self.loras
        )
        object.__setattr__(self, "loras", uses)

    def seeds(self) -> list[int]:
        """The seed of each image, in order."""
        return [(self.seed + i) % (SEED_MAX + 1) for i in range(self.count)]

    def image_prompts(self) -> list[str]:
        """The prompt of each image, in order (a storyboard's panels differ; others repeat ``prompt``)."""
        return list(self.panel_prompts) if self.panel_prompts else [self.prompt] * self.count

    def image_request(self, index: int) -> GenerationRequest:
        """The request that draws image ``index`` alone (a storyboard's panel: its own prompt, unshared)."""
        if not self.panel_prompts:
            return self.replace(seed=self.seeds()[index], count=1)
        return self.replace(prompt=self.panel_prompts[index], panel_prompts=[], shared_attention=0.0,
                            seed=self.seeds()[index], count=1)

    @property
    def solo(self) -> bool:
        """Whether this request must run as its own pipeline call: its images share attention."""
        return bool(self.panel_prompts) or self.shared_attention > 0

    def to_json(self) -> str:
        """Serialise for the database."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GenerationRequest:
        """Read back what :meth:`to_json` wrote."""
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> GenerationRequest:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def batch_key(self) -> tuple[Any, ...]:
        """Requests with equal keys can run as one pipeline call."""
        return (
            self.kind, self.width, self.height, self.steps, self.guidance, self.scheduler, self.strength, self.model,
            self.loras, tuple(self.ip_adapter_images), self.ip_adapter_scale if self.ip_adapter_images else 0.0,
        )


def random_seed() -> int:
    """A fresh seed for a request that did not name one."""
    return random.randint(0, SEED_MAX)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise RequestError(name, f"`{name}` must be between {low:g} and {high:g}; you gave {value:g}.")


def validate(request: GenerationRequest, limits: GenerationLimits) -> GenerationRequest:
    """Check a request against the limits; return it, or raise :class:`RequestError` naming the field.

    Prompts are capped in characters (``max_prompt_chars``) only: the engine encodes a prompt past
    the text encoder's 77 tokens in full, in 77-token chunks (``generation.prompt_encoding``).
    """
    prompt = request.prompt.strip()
    if not prompt:
        raise RequestError("prompt", "`prompt` is empty; describe the image you want.")
    panels = [text.strip() for text in request.panel_prompts]
    texts = [("prompt", prompt), ("negative", request.negative_prompt)]
    texts += [(f"panel{i}", text) for i, text in enumerate(panels, start=1)]
    for name, text in texts:
        if name.startswith("panel") and not text:
            raise RequestError(name, f"`{name}` is empty; describe what the panel shows.")
        if len(text) > limits.max_prompt_chars:
            raise RequestError(
                name,
                f"`{name}` is {len(text)} characters long; the limit is {limits.max_prompt_chars}.",
            )
    _check_range("seed", request.seed, 0, SEED_MAX)
    _check_range("steps", request.steps, 1, limits.max_steps)
    _check_range("guidance", request.guidance, 0, limits.max_guidance)
    for use in request.loras:
        _check_range(f"LoRA {use.name} weight", use.weight, -4.0, 4.0)
    if panels:
        _check_range("panels", len(panels), 2, MAX_STORYBOARD_PANELS)
        if request.count != len(panels):
            raise RequestError("count", f"a storyboard draws one image per panel ({len(panels)}), not {request.count}.")
        if request.kind != "txt2img":
            raise RequestError("kind", "a storyboard is drawn from text only.")
    else:
        _check_range("count", request.count, 1, limits.max_count)
    _check_range("shared_attention", request.shared_attention, 0, 1)
    if request.ip_adapter_images:
        if len(request.ip_adapter_images) > MAX_REFERENCE_IMAGES:
            given = len(request.ip_adapter_images)
            raise RequestError("references", f"at most {MAX_REFERENCE_IMAGES} reference images; you gave {given}.")
        _check_range("ip_adapter_scale", request.ip_adapter_scale, 0, MAX_IP_ADAPTER_SCALE)
    scheduler = request.scheduler
    if scheduler is not None:
        scheduler = canonical_scheduler(scheduler)
        if scheduler is None:
            raise scheduler_error("scheduler", str(request.scheduler))
    max_pixels = limits.max_upscaled_pixels if request.kind == "upscale" else limits.max_pixels
    max_size = max(limits.max_size, 2 * limits.max_size if request.kind == "upscale" else 0)
    for name in ("width", "height"):
        value = getattr(request, name)
        if value % 8 or not limits.min_size <= value <= max_size:
            raise RequestError(
                name,
                f"`{name}` must be a multiple of 8 between {limits.min_size} and {max_size}; you gave {value}.",
            )
    if request.width * request.height > max_pixels:
        raise RequestError(
            "width",
            f"{request.width}x{request.height} is {request.width * request.height:,} pixels; "
            f"the limit is {max_pixels:,}. Pick a smaller `width` or `height`.",
        )
    if request.kind in IMAGE_KINDS:
        if not request.init_image:
            raise RequestError("image", f"a {request.kind} request needs a source image.")
        if request.kind == "inpaint" and not request.mask_image:
            raise RequestError("mask", "an inpaint request needs a mask.")
        if request.strength is None:
            raise RequestError("strength", "`strength` is needed with a source image.")
        _check_range("strength", request.strength, 0.01, 1.0)
    return request.replace(prompt=prompt, panel_prompts=panels, scheduler=scheduler)


def reroll_of(request: GenerationRequest, seed: int | None = None) -> GenerationRequest:
    """The same request with a new seed (🔄)."""
    return request.replace(seed=random_seed() if seed is None else seed)


def upscale_of(
    request: GenerationRequest,
    *,
    source_path: str,
    source_seed: int,
    width: int,
    height: int,
    limits: GenerationLimits,
    factor: int | None = None,
) -> GenerationRequest:
    """A hires-fix upscale of one image (🔍): Lanczos-resize ``factor`` times, then img2img at low strength.

    Raises :class:`RequestError` when the result would pass the configured maximum size.
    """
    factor = limits.upscale_factor if factor is None else factor
    new_width, new_height = width * factor, height * factor
    if new_width * new_height > limits.max_upscaled_pixels:
        raise RequestError(
            "upscale",
            f"This image is already {width}x{height}; upscaling it again would pass the "
            f"{limits.max_upscaled_pixels:,}-pixel limit.",
        )
    return request.replace(
        kind="upscale",
        width=new_width,
        height=new_height,
        count=1,
        seed=source_seed,
        init_image=source_path,
        mask_image=None,
        strength=limits.default_upscale_strength,
    )


def fit_source(width: int, height: int, limits: GenerationLimits) -> tuple[int, int]:
    """The size to draw from a ``width x height`` source at: its aspect, within ``max_size`` and
    ``max_pixels``, each side a multiple of 8 and at least ``min_size``.

    An upscaled image (up to ``max_upscaled_pixels``) or a large comic panel is scaled down to
    fit, so a variation of it or a panel continuing from it passes validation.
    """
    scale = min(1.0, limits.max_size / width, limits.max_size / height)
    scaled_w, scaled_h = max(1, round(width * scale)), max(1, round(height * scale))
    fitted_w, fitted_h = _fit(scaled_w, scaled_h, limits.max_pixels)
    return (
        min(max(fitted_w, limits.min_size), limits.max_size),
        min(max(fitted_h, limits.min_size), limits.max_size),
    )


def _fit(width: int, height: int, max_pixels: int, multiple: int = 8) -> tuple[int, int]:
    """The aspect of ``width x height`` at most ``max_pixels``, sides multiples of ``multiple`` (never enlarged)."""
    scale = min(1.0, (max_pixels / (width * height)) ** 0.5)
    new_w = max(multiple, round(width * scale / multiple) * multiple)
    new_h = max(multiple, round(height * scale / multiple) * multiple)
    if new_w * new_h > max_pixels:
        new_w = max(multiple, int(width * scale // multiple) * multiple)
        new_h = max(multiple, int(height * scale // multiple) * multiple)
    return new_w, new_h


def variation_of(
    request: GenerationRequest,
    *,
    source_path: str,
    width: int,
    height: int,
    strength: float,
    seed: int | None = None,
) -> GenerationRequest:
    """A variation of one image (🎨): img2img from it with the same prompt, ``strength``, and a new seed."""
    return request.replace(
        kind="img2img",
        width=width,
        height=height,
        count=1,
        seed=random_seed() if seed is None else seed,
        init_image=source_path,
        mask_image=None,
        strength=strength,
    )
