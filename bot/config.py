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

from pydantic import ConfigDict, Field, Strict, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from composition.comic_layout import LAYOUTS, MAX_PANELS_PER_PAGE
from rules.request import GenerationLimits
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


@dataclass(frozen=True, config=_SECTION)
class ModelSettings:
    """``[model]``: which weights to load, where, and in which precision."""

    id: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
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

    @field_validator("id")
    @classmethod
    def _named(cls, model_id: str) -> str:
        if not model_id.strip():
            raise _rule("must name a hub model, a local folder or a .safetensors file")
        return model_id

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
class StorageSettings:
    """``[storage]``: the SQLite file and the image folder."""

    database: Path = Path("data/bot.sqlite3")
    images_dir: Path = Path("data/images")

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
class ComicSettings:
    """``[comic]``: caps, page layout and how far a continued panel may move from the previous one."""

    max_panels: Annotated[Int, Field(ge=1)] = 60
    max_characters: Annotated[Int, Field(ge=0)] = 12
    panels_per_page: Annotated[Int, Field(ge=1, le=MAX_PANELS_PER_PAGE)] = MAX_PANELS_PER_PAGE
    #: One of :data:`composition.comic_layout.LAYOUTS`.
    default_layout: str = "auto"
    continue_strength: Annotated[Float, Field(ge=0.05, le=1.0)] = 0.6

    @field_validator("default_layout")
    @classmethod
    def _layout(cls, layout: str) -> str:
        if layout not in LAYOUTS:
            raise _rule(f"must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        return layout


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
    #: Style presets by name: the shipped ones, changed and extended by ``[styles.NAME]`` tables.
    styles: Mapping[str, StylePreset] = field(default_factory=lambda: dict(DEFAULT_STYLES))

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
    hint = get_type_hints(Settings).get(str(section))
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


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the TOML file at ``path``; relative storage paths are kept as given."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found (copy config.example.toml to start)") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), f"not valid TOML: {error}") from None
    return parse_settings(raw, env)
