"""Typed, validated settings loaded from a TOML file (``config.example.toml`` lists every key).

Each config section is one frozen pydantic dataclass (``[generation]`` is
:class:`rules.request.GenerationLimits`, ``[safety]`` is :class:`rules.safety.SafetyPolicy`):
types and ranges are declared on the fields, unknown keys are refused. Any error becomes a
:class:`ConfigError` whose key is pydantic's error location (``generation.max_steps``), so
``run_bot.py`` can print one readable line and exit with status 2. The token is kept out of
``repr()`` so it never reaches a log.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_type_hints

from pydantic import AfterValidator, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from composition.comic_layout import LAYOUTS, MAX_PANELS_PER_PAGE
from rules.loras import EmbeddingConfig, LoraConfig, check_names
from rules.models import MODEL_NAME_RE, ModelSpec, default_model_name
from rules.request import SCHEDULERS, GenerationLimits, canonical_scheduler
from rules.safety import SafetyPolicy
from rules.styles import DEFAULT_STYLES, StyleConfigError, StylePreset, styles_from_config

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg"
TOKEN_ENV = "DISCORD_TOKEN"

#: Every section refuses unknown keys; numbers are declared strict (``"3"`` is not a number).
_SECTION: Final = ConfigDict(extra="forbid")
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
_DEVICE_RE: Final = re.compile(r"auto|cpu|cuda|mps|cuda:.*")
_DTYPES: Final = ("auto", "float16", "bfloat16", "float32")


class ConfigError(ValueError):
    """A setting is missing or wrong; ``str()`` is one line naming the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(" ".join(f"config error: {key}: {message}".split()))
        self.key = key


def _rule(message: str) -> PydanticCustomError:
    """The error a validator raises: ``message`` says what is wrong with the value."""
    return PydanticCustomError("value_error", message)


@dataclass(frozen=True, config=_SECTION)
class DiscordSettings:
    """``[discord]``: how the bot reaches Discord."""

    token: str = field(repr=False, default="")
    guild_ids: tuple[Annotated[Int, Field(gt=0)], ...] = ()
    api_base: str = DISCORD_API_BASE
    gateway_url: str = DISCORD_GATEWAY_URL
    #: At least 1.0 for Discord's rate limits.
    progress_interval_s: Annotated[Float, Field(ge=1.0)] = 1.5
    #: Whether the commands work in direct messages (outside any server's permissions and
    #: moderators); the same caps apply there. Off: members are told to use a server.
    allow_dms: Annotated[bool, Strict()] = False

    @field_validator("api_base")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise _rule(f"must start with http:// or https://, not {url!r}")
        return url

    @field_validator("gateway_url")
    @classmethod
    def _websocket(cls, url: str) -> str:
        if not url.startswith(("ws://", "wss://")):
            raise _rule(f"must start with ws:// or wss://, not {url!r}")
        return url


def _check_model_name(name: str) -> str:
    if not MODEL_NAME_RE.match(name):
        raise _rule(f"must be 1-32 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit, "
                    f"not {name!r}")
    return name


def _check_scheduler(name: str) -> str:
    canonical = canonical_scheduler(name)
    if canonical is None:
        raise _rule(f"must be one of {', '.join(SCHEDULERS)}, not {name!r}")
    return canonical


def _check_model_source(model_id: str) -> str:
    if not model_id.strip():
        raise _rule("must name a hub model, a local folder, or a .safetensors or .ckpt file")
    return model_id


#: A model's ``id``: a hub id, a diffusers folder, or a single checkpoint file.
ModelSource = Annotated[str, AfterValidator(_check_model_source)]
#: A sampler's name in any accepted spelling, kept as listed in ``SCHEDULERS``; empty: the model's own.
SamplerName = Annotated[str, AfterValidator(lambda name: _check_scheduler(name) if name else name)]


@dataclass(frozen=True, config=_SECTION)
class ModelSettings:
    """``[model]``: which weights to load, where, and in which precision."""

    id: ModelSource = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    #: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    device: str = "auto"
    #: ``auto``, ``float16``, ``bfloat16`` or ``float32``.
    dtype: str = "auto"
    #: Several GPUs: one worker (and one copy of the pipeline) per device; empty means just ``device``.
    devices: tuple[str, ...] = ()
    #: An AutoencoderTiny (hub id or folder) for sharper previews; empty: the free latent projection.
    preview_decoder: str = ""
    #: A dedicated diffusers upscaler (hub id or folder, e.g. ``stabilityai/sd-x2-latent-upscaler``)
    #: for 🔍; empty: a hires-fix pass with the loaded model (Lanczos resize, then img2img).
    upscaler: str = ""
    #: IP-Adapter weights (hub id or folder, e.g. ``h94/IP-Adapter``) for drawing comic characters from
    #: their reference pictures without training; empty: no IP-Adapter route. The weight file is
    #: ``ip_adapter_subfolder/ip_adapter_weight_name``; its CLIP image encoder is the folder
    #: ``ip_adapter_image_encoder`` inside that subfolder (or a path with "/" inside ``ip_adapter``).
    ip_adapter: str = ""
    ip_adapter_subfolder: str = "models"
    ip_adapter_weight_name: str = "ip-adapter_sd15.safetensors"
    ip_adapter_image_encoder: str = "image_encoder"
    #: The name members pick this model by (``model`` option, ``--model``); empty: from ``id``.
    name: str = ""
    #: The name shown in ``/models``; empty: ``name``.
    display_name: str = ""
    #: A VAE used instead of the model's own (hub id or folder), e.g. ``madebyollin/sdxl-vae-fp16-fix``.
    vae: str = ""
    #: The sampler its requests get when they name none (empty: the model's own scheduler).
    scheduler: SamplerName = ""

    @field_validator("name")
    @classmethod
    def _model_name(cls, name: str) -> str:
        return _check_model_name(name) if name else name

    @property
    def model_name(self) -> str:
        """The name of this, the default model."""
        return self.name or default_model_name(self.id)

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not _DEVICE_RE.fullmatch(device):
            raise _rule(f"must be auto, cpu, cuda, cuda:N or mps, not {device!r}")
        return device

    @field_validator("devices")
    @classmethod
    def _devices(cls, devices: tuple[str, ...]) -> tuple[str, ...]:
        bad = [InitErrorDetails(
            type=_rule(f"must be auto, cpu, cuda, cuda:N or mps, not {device!r}"), loc=(index,), input=device
        ) for index, device in enumerate(devices) if not _DEVICE_RE.fullmatch(device)]
        if bad:
            raise ValidationError.from_exception_data("devices", bad)
        if len(set(devices)) != len(devices):
            raise _rule("lists a device twice")
        return devices

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, dtype: str) -> str:
        if dtype not in _DTYPES:
            raise _rule(f"must be auto, float16, bfloat16 or float32, not {dtype!r}")
        return dtype

    def all_devices(self) -> tuple[str, ...]:
        """The devices to start a worker on."""
        return self.devices or (self.device,)


@dataclass(frozen=True, config=_SECTION)
class ModelEntry:
    """``[models.NAME]``: one more model members can pick, and the defaults its requests get.

    Keys left out fall back to ``[generation]``'s defaults; the size falls back to the model's
    native size (512 for SD 1.x, 768 for SD 2.x, 1024 for SDXL).
    """

    #: A hub id, a local diffusers folder, or a single ``.safetensors`` / ``.ckpt`` file.
    id: ModelSource
    display_name: str = ""
    #: A VAE used instead of the model's own (hub id or folder), e.g. ``madebyollin/sdxl-vae-fp16-fix``.
    vae: str = ""
    width: Annotated[Int, Field(ge=64, le=4096, multiple_of=8)] | None = None
    height: Annotated[Int, Field(ge=64, le=4096, multiple_of=8)] | None = None
    steps: Annotated[Int, Field(ge=1)] | None = None
    guidance: Annotated[float, Field(ge=0, le=100), Strict()] | None = None
    scheduler: SamplerName = ""
    negative_prompt: str = ""

    def spec(self, name: str) -> ModelSpec:
        """This entry as the engine and the bot read it."""
        return ModelSpec(
            name=name, source=self.id, display_name=self.display_name, vae=self.vae, width=self.width,
            height=self.height, steps=self.steps, guidance=self.guidance, scheduler=self.scheduler or None,
            negative_prompt=self.negative_prompt or None,
        )


@dataclass(frozen=True, config=_SECTION)
class StorageSettings:
    """``[storage]``: the SQLite file and the image folder."""

    database: Path = Path("data/bot.sqlite3")
    images_dir: Path = Path("data/images")
    #: Days an upload is kept after its last job finished (``--vacuum`` deletes it then); 0 keeps forever.
    retention_days: Annotated[Float, Field(ge=0)] = 0.0

    @field_validator("database", "images_dir", mode="before")
    @classmethod
    def _path(cls, value: object) -> object:
        if isinstance(value, Path):
            return value
        if not isinstance(value, str) or not value:
            raise _rule(f"must be a path string, not {value!r}")
        return Path(value)


@dataclass(frozen=True, config=_SECTION)
class QueueSettings:
    """``[queue]``: caps and the per-job time limit."""

    max_pending_per_user: Annotated[Int, Field(ge=1)] = 10
    #: At least ``max_pending_per_user``.
    max_pending_total: Annotated[Int, Field(ge=1)] = 200
    #: The most jobs one server may have waiting or running, so one server cannot fill the queue
    #: for all (0: no per-server cap).
    max_pending_per_guild: Annotated[Int, Field(ge=0)] = 0
    job_timeout_s: Annotated[Float, Field(gt=0)] = 600.0
    #: Compatible queued jobs (same size, steps, guidance, scheduler) run as one call, up to this many images.
    max_batch_images: Annotated[Int, Field(ge=1, le=16)] = 4
    #: Seconds between preview images on a running job's status message; 0 turns previews off.
    preview_interval_s: Annotated[Float, Field(ge=0)] = 4.0
    #: Times a job may start (restarts, failed deliveries) before it ends ``failed`` instead.
    max_attempts: Annotated[Int, Field(ge=1, le=100)] = 3
    #: How many models each worker keeps loaded at once; a job for another model unloads the one
    #: used longest ago first (its memory freed) before the new one moves to the GPU.
    max_loaded_models: Annotated[Int, Field(ge=1, le=16)] = 1

    @field_validator("preview_interval_s")
    @classmethod
    def _off_or_a_second(cls, seconds: float) -> float:
        if 0 < seconds < 1:
            raise _rule("must be 0 (off) or at least 1 second")
        return seconds

    @field_validator("max_pending_total")
    @classmethod
    def _total_holds_one_user(cls, total: int, info: Any) -> int:
        per_user = info.data.get("max_pending_per_user")
        if per_user is not None and total < per_user:
            raise _rule(f"must be at least queue.max_pending_per_user ({per_user})")
        return total


@dataclass(frozen=True, config=_SECTION)
class PerformanceSettings:
    """``[performance]``: speed-ups applied to every pipeline after loading (see ``generation/performance.py``).

    All off by default; ``bench/gpu.py`` measures each one's speed and its effect on the pixels.
    """

    #: The UNet in channels-last memory layout (faster convolutions on tensor cores; same pixels).
    channels_last: bool = False
    #: ``torch.compile`` of the UNet (a compile per new shape at first; slower start).
    compile_unet: bool = False
    #: Decode and encode large images in overlapping tiles (less memory above the native size).
    vae_tiling: bool = False
    #: Decode a batch one image at a time (lower peak memory; same pixels).
    vae_slicing: bool = False
    #: A training-free step cache: "none", "tomesd" (token merging) or "pab" (pyramid attention broadcast).
    step_cache: Literal["none", "tomesd", "pab"] = "none"
    #: Keep the model in CPU memory and move each part to the GPU when it runs (small GPUs; slower).
    cpu_offload: bool = False


@dataclass(frozen=True, config=_SECTION)
class StudioSettings:
    """``[studio]``: the Streamlit studio and the bot's local API it talks to (see ``studio/``)."""

    #: The shared secret the studio sends to the bot's API; empty: the API is off (no Generate page).
    secret: str = field(default="", repr=False)
    #: The port of the bot's local API (always bound to 127.0.0.1).
    api_port: Annotated[Int, Field(ge=1, le=65535)] = 8765
    #: A password the studio asks for before showing anything; empty: none (it is private to this machine).
    password: str = field(default="", repr=False)
    #: Public mode: the studio may listen beyond 127.0.0.1 and shows only the servers and channels listed.
    public: bool = False
    public_guild_ids: tuple[Annotated[Int, Field(gt=0)], ...] = ()
    public_channel_ids: tuple[Annotated[Int, Field(gt=0)], ...] = ()
    #: The Discord channel where generations from the studio are posted (0: studio generation off).
    channel_id: Annotated[Int, Field(ge=0)] = 0
    #: The member id the studio's generations are queued under (caps and fairness apply to it).
    user_id: Annotated[Int, Field(ge=1)] = 1
    #: Where gallery thumbnails are cached (the archive itself is only ever read).
    thumbnails_dir: Path = Path("data/thumbnails")

    @model_validator(mode="after")
    def _public_says_what_it_shows(self) -> StudioSettings:
        if self.public and not (self.public_guild_ids or self.public_channel_ids):
            raise _located(("public",), "public mode needs public_guild_ids or public_channel_ids (what it may show)")
        return self

    @property
    def api_url(self) -> str:
        """Where the bot's local API listens."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def generation_enabled(self) -> bool:
        """Whether the studio can send generations to the bot (a secret and a channel are set)."""
        return bool(self.secret) and self.channel_id > 0


_RAY_ADDRESS: Final = re.compile(r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True, config=_SECTION)
class ClusterSettings:
    """``[cluster]``: where the GPU workers run (this machine, or a Ray cluster; see docs/SCALE.md)."""

    #: "local": one worker per [model] device on this machine; "ray": workers are Ray actors.
    backend: Literal["local", "ray"] = "local"
    #: "auto", "ray://head:10001", "head:6379", or "" to start Ray on this machine.
    address: str = ""
    #: How many workers: a number, or "auto" (one per GPU the cluster offers).
    workers: Int | Literal["auto"] = "auto"
    num_gpus: Annotated[float, Field(ge=0, le=64), Strict()] = 1.0
    num_cpus: Annotated[float, Field(ge=0, le=1024), Strict()] = 1.0
    #: Host memory each worker reserves (0: no reservation).
    memory_gb: Annotated[float, Field(ge=0, le=4096), Strict()] = 0.0
    #: A job whose worker was lost this many times fails instead of going back in the queue.
    max_worker_losses: Annotated[Int, Field(ge=1, le=100)] = 3
    connect_timeout_s: Annotated[float, Field(gt=0, le=3600), Strict()] = 120.0
    watch_interval_s: Annotated[float, Field(gt=0, le=600), Strict()] = 5.0
    namespace: Annotated[str, Field(min_length=1, max_length=64)] = "panelbot"

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value in ("", "auto") or _RAY_ADDRESS.match(value):
            return value
        raise _rule('must be "auto", "ray://host:port", "host:port" or empty (start Ray here)')

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> object:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise _rule(f'must be a whole number or "auto", not {value!r}')
        if not 1 <= value <= 1024:
            raise _rule(f'must be between 1 and 1024, or "auto", not {value}')
        return value

    @model_validator(mode="after")
    def _auto_needs_gpus(self) -> ClusterSettings:
        if self.backend == "ray" and self.workers == "auto" and self.num_gpus == 0:
            raise _rule('workers = "auto" counts GPUs: give num_gpus > 0 or a number of workers')
        return self

    @property
    def memory_bytes(self) -> int:
        """``memory_gb`` in bytes, as Ray's ``memory`` resource wants it."""
        return int(self.memory_gb * 1024**3)


@dataclass(frozen=True, config=_SECTION)
class ComicSettings:
    """``[comic]``: caps, page layout and how far a continued panel may move from the previous one."""

    max_panels: Annotated[Int, Field(ge=1)] = 60
    max_characters: Annotated[Int, Field(ge=0)] = 12
    panels_per_page: Annotated[Int, Field(ge=1, le=MAX_PANELS_PER_PAGE)] = MAX_PANELS_PER_PAGE
    #: One of :data:`composition.comic_layout.LAYOUTS`.
    default_layout: str = "auto"
    continue_strength: Annotated[Float, Field(ge=0.05, le=1.0)] = 0.6
    #: /comic storyboard: consistent self-attention's sampling rate across its panels (0: off).
    storyboard_attention: Annotated[Float, Field(ge=0.0, le=1.0)] = 0.5

    @field_validator("default_layout")
    @classmethod
    def _layout(cls, layout: str) -> str:
        if layout not in LAYOUTS:
            raise _rule(f"must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        return layout


@dataclass(frozen=True, config=_SECTION)
class TrainingSettings:
    """``[training]``: character LoRA training (``/comic character train``) and its limits.

    The defaults are those of diffusers' DreamBooth-LoRA example for Stable Diffusion 1.5 on a
    consumer GPU: rank 4, 500 steps, learning rate 1e-4, batch size 1, at 512 px (0: the loaded
    model's native size), fp16 mixed precision and gradient checkpointing on CUDA.
    """

    enabled: bool = True
    steps: Annotated[Int, Field(ge=1)] = 500
    max_steps: Annotated[Int, Field(ge=1)] = 2000
    rank: Annotated[Int, Field(ge=1, le=128)] = 4
    learning_rate: Annotated[Float, Field(gt=0, le=1)] = 1e-4
    #: Training picture side in pixels (a multiple of 8); 0: the model's native size.
    resolution: Annotated[Int, Field(ge=0, le=2048, multiple_of=8)] = 0
    batch_size: Annotated[Int, Field(ge=1, le=16)] = 1
    #: Steps per turn on the queue: the job then writes its checkpoint and waits in line again.
    slice_steps: Annotated[Int, Field(ge=1)] = 50
    #: A checkpoint every this many steps inside a slice too (0: at the end of each slice only).
    checkpoint_every: Annotated[Int, Field(ge=0)] = 0
    train_text_encoder: bool = False
    #: The class word of the instance prompt ``a photo of <token> <class>``.
    class_word: Annotated[str, Field(min_length=1, max_length=40)] = "character"
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
    #: Training jobs one server may have queued or running at once.
    max_jobs_per_server: Annotated[Int, Field(ge=1)] = 1
    #: Reference pictures per character.
    max_references: Annotated[Int, Field(ge=1, le=10)] = 10
    #: Where LoRAs and checkpoints are written; empty: ``loras/`` and ``training/`` next to the database.
    data_dir: Path | None = None

    @model_validator(mode="after")
    def _steps_within_max(self) -> TrainingSettings:
        if self.steps > self.max_steps:
            raise _rule(f"steps must be at most max_steps ({self.max_steps})")
        return self


@dataclass(frozen=True, config=_SECTION)
class Settings:
    """Every setting of the bot; ``parse_settings`` builds it from the parsed TOML."""

    discord: DiscordSettings
    model: ModelSettings
    storage: StorageSettings
    generation: GenerationLimits
    queue: QueueSettings
    safety: SafetyPolicy = field(default_factory=SafetyPolicy)
    comic: ComicSettings = field(default_factory=ComicSettings)
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)
    studio: StudioSettings = field(default_factory=StudioSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    #: Style presets by name: the shipped ones, changed and extended by ``[styles.NAME]`` tables.
    styles: Mapping[str, StylePreset] = field(default_factory=lambda: dict(DEFAULT_STYLES))
    #: More models by name (``[models.NAME]``); ``[model]`` is the default one.
    models: Mapping[str, ModelEntry] = field(default_factory=dict)
    #: ``[loras.NAME]``: LoRAs members apply with ``--lora NAME:WEIGHT`` or ``<lora:NAME:WEIGHT>``.
    loras: Mapping[str, LoraConfig] = field(default_factory=dict)
    #: ``[embeddings.NAME]``: textual-inversion embeddings loaded at start, used by their token.
    embeddings: Mapping[str, EmbeddingConfig] = field(default_factory=dict)

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, raw: object) -> object:
        if not isinstance(raw, Mapping):
            raise _rule("must hold tables ([models.NAME])")
        bad = [InitErrorDetails(type=_rule(
            f"{name!r} is not a model name: use 1-32 lowercase letters, digits, '-', '_' or '.'"
        ), loc=(str(name),), input=name) for name in raw if not isinstance(name, str) or not MODEL_NAME_RE.match(name)]
        if bad:
            raise ValidationError.from_exception_data("models", bad)
        return raw

    def model_specs(self) -> tuple[ModelSpec, ...]:
        """Every configured model, the default one (``[model]``) first."""
        default = ModelSpec(
            name=self.model.model_name, source=self.model.id, display_name=self.model.display_name,
            vae=self.model.vae, scheduler=self.model.scheduler or None,
        )
        return (default, *(entry.spec(name) for name, entry in self.models.items()))

    @field_validator("loras", "embeddings", mode="after")
    @classmethod
    def _typable_names(cls, tables: Mapping[str, Any], info: Any) -> Mapping[str, Any]:
        try:
            check_names(tables, info.field_name)
        except ValueError as error:
            raise _rule(str(error)) from None
        return tables

    @field_validator("styles", mode="before")
    @classmethod
    def _styles(cls, raw: object) -> object:
        """``[styles.NAME]`` tables are merged over the shipped presets by :func:`styles_from_config`."""
        if not isinstance(raw, Mapping):
            raise _rule("must hold tables ([styles.NAME])")
        if all(isinstance(preset, StylePreset) for preset in raw.values()):
            return raw
        try:
            return styles_from_config(raw)
        except StyleConfigError as error:  # its key is the whole key, ``styles.NAME.key``
            raise _located((error.key.removeprefix("styles."),), error.message) from None

    @model_validator(mode="after")
    def _check_across_sections(self) -> Settings:
        if not self.discord.token.strip():
            raise _located(("discord", "token"), f"missing; set it in the file or the {TOKEN_ENV} environment variable")
        g = self.generation
        for name, preset in self.styles.items():
            if preset.steps is not None and preset.steps > g.max_steps:
                raise _located(("styles", name, "steps"), f"must be at most generation.max_steps ({g.max_steps})")
            if preset.guidance is not None and preset.guidance > g.max_guidance:
                raise _located(
                    ("styles", name, "guidance"), f"must be at most generation.max_guidance ({g.max_guidance:g})"
                )
        for name, entry in self.models.items():
            if name == self.model.model_name:
                raise _located(("models", name), f"is the default model's name ([model] name = {name!r}); "
                                                 "rename one of them")
            if entry.steps is not None and entry.steps > g.max_steps:
                raise _located(("models", name, "steps"), f"must be at most generation.max_steps ({g.max_steps})")
            if entry.guidance is not None and entry.guidance > g.max_guidance:
                raise _located(
                    ("models", name, "guidance"), f"must be at most generation.max_guidance ({g.max_guidance:g})"
                )
            for side in ("width", "height"):
                value = getattr(entry, side)
                if value is not None and value > g.max_size:
                    raise _located(("models", name, side), f"must be at most generation.max_size ({g.max_size})")
        return self


def _located(loc: tuple[str | int, ...], message: str) -> ValidationError:
    """An error at ``loc`` (a model validator's own errors have no field of their own)."""
    return ValidationError.from_exception_data(
        "Settings", [InitErrorDetails(type=_rule(message), loc=loc, input=None)]
    )


#: The sections a config file may have.
SECTIONS: Final = tuple(section.name for section in dataclasses.fields(Settings))


def _key(loc: tuple[str | int, ...]) -> str:
    """Pydantic's error location as a config key: ``("model", "devices", 1)`` is ``model.devices[1]``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else part)
    return key


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _known_keys(section: str | int) -> str:
    hint = ModelEntry if section == "models" else get_type_hints(Settings).get(str(section))
    return ", ".join(key.name for key in dataclasses.fields(hint)) if dataclasses.is_dataclass(hint) else ""


def _message(error: ErrorDetails) -> str:
    """What is wrong, in one line; pydantic's wording, with the value given where it helps."""
    kind, value = error["type"], error["input"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"unknown setting (known: {_known_keys(error['loc'][0])})"
    if kind == "value_error":
        return error["msg"].removeprefix("Value error, ")
    if kind.startswith("dataclass"):  # a section that is not a table
        return f"must be a table, not {_shown(value)}"
    message = error["msg"]
    return f"{message[0].lower()}{message[1:]}, not {_shown(value)}"


def _config_error(error: ValidationError) -> ConfigError:
    """The first of pydantic's errors as one line: its location is the key."""
    first = error.errors(include_url=False)[0]
    loc = tuple(first["loc"])
    if first["type"] in ("extra_forbidden", "unexpected_keyword_argument") and len(loc) == 1:
        return ConfigError(_key(loc), f"unknown section (known: {', '.join(SECTIONS)})")
    return ConfigError(_key(loc), _message(first))


def parse_settings(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Build validated settings from parsed TOML; ``DISCORD_TOKEN`` in ``env`` overrides the file."""
    env = os.environ if env is None else env
    values = dict(raw)
    for name in ("discord", "model", "storage", "generation", "queue"):
        values.setdefault(name, {})
    if env.get(TOKEN_ENV) and isinstance(values["discord"], Mapping):
        values["discord"] = {**values["discord"], "token": env[TOKEN_ENV]}
    try:
        return Settings(**values)
    except ValidationError as error:
        raise _config_error(error) from None
    except TypeError as error:  # a key that is not a string
        raise ConfigError("config", str(error)) from None


def parse_section(raw: Mapping[str, Any], name: str) -> Any:
    """One section of parsed TOML alone (defaults where absent), validated as :func:`parse_settings` does.

    For tools that read a few sections of the bot's config without needing all of it (the studio).
    """
    section = get_type_hints(Settings)[name]
    table = raw.get(name, {})
    if not isinstance(table, Mapping):
        raise ConfigError(name, f"must be a table, not {_shown(table)}")
    try:
        return section(**table)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        raise ConfigError(_key((name, *first["loc"])), _message({**first, "loc": (name, *first["loc"])})) from None
    except TypeError as error:
        raise ConfigError(name, str(error)) from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The parsed TOML at ``path`` (:class:`ConfigError` naming the file if it is missing or not TOML)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found (copy config.example.toml to start)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), f"not valid TOML: {error}") from None


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the TOML file at ``path``; relative storage paths are kept as given."""
    return parse_settings(read_config_file(path), env)
