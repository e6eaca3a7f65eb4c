"""Typed, validated settings loaded from a TOML file (``config.example.toml`` lists every key).

Each config section becomes one frozen dataclass. Unknown keys, missing secrets and bad values
raise :class:`ConfigError`, whose message names the key, so ``run_bot.py`` can print one readable
line and exit with status 2. The token is kept out of ``repr()`` so it never reaches a log.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from composition.comic_layout import LAYOUTS, MAX_PANELS_PER_PAGE
from rules.request import GenerationLimits
from rules.safety import SafetyPolicy
from rules.styles import DEFAULT_STYLES, StyleConfigError, StylePreset, styles_from_config

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg"
TOKEN_ENV = "DISCORD_TOKEN"


class ConfigError(ValueError):
    """A setting is missing or wrong; ``str()`` is one line naming the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config error: {key}: {message}")
        self.key = key


@dataclass(frozen=True)
class DiscordSettings:
    """``[discord]``: how the bot reaches Discord."""

    token: str = field(repr=False, default="")
    guild_ids: tuple[int, ...] = ()
    api_base: str = DISCORD_API_BASE
    gateway_url: str = DISCORD_GATEWAY_URL
    progress_interval_s: float = 1.5


@dataclass(frozen=True)
class ModelSettings:
    """``[model]``: which weights to load, where, and in which precision."""

    id: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    device: str = "auto"
    dtype: str = "auto"
    #: Several GPUs: one worker (and one copy of the pipeline) per device; empty means just ``device``.
    devices: tuple[str, ...] = ()
    #: An AutoencoderTiny (hub id or folder) for sharper previews; empty: the free latent projection.
    preview_decoder: str = ""
    #: A dedicated diffusers upscaler (hub id or folder, e.g. ``stabilityai/sd-x2-latent-upscaler``)
    #: for 🔍; empty: a hires-fix pass with the loaded model (Lanczos resize, then img2img).
    upscaler: str = ""

    def all_devices(self) -> tuple[str, ...]:
        """The devices to start a worker on."""
        return self.devices or (self.device,)


@dataclass(frozen=True)
class StorageSettings:
    """``[storage]``: the SQLite file and the image folder."""

    database: Path = Path("data/bot.sqlite3")
    images_dir: Path = Path("data/images")


@dataclass(frozen=True)
class QueueSettings:
    """``[queue]``: caps and the per-job time limit."""

    max_pending_per_user: int = 10
    max_pending_total: int = 200
    job_timeout_s: float = 600.0
    #: Compatible queued jobs (same size, steps, guidance, scheduler) run as one call, up to this many images.
    max_batch_images: int = 4
    #: Seconds between preview images on a running job's status message; 0 turns previews off.
    preview_interval_s: float = 4.0


@dataclass(frozen=True)
class ComicSettings:
    """``[comic]``: caps, page layout and how far a continued panel may move from the previous one."""

    max_panels: int = 60
    max_characters: int = 12
    panels_per_page: int = MAX_PANELS_PER_PAGE
    default_layout: str = "auto"
    continue_strength: float = 0.6

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("max_panels", self.max_panels >= 1, "must be at least 1"),
            ("max_characters", self.max_characters >= 0, "must not be negative"),
            ("panels_per_page", 1 <= self.panels_per_page <= MAX_PANELS_PER_PAGE,
             f"must be between 1 and {MAX_PANELS_PER_PAGE}"),
            ("default_layout", self.default_layout in LAYOUTS, f"must be one of {', '.join(LAYOUTS)}"),
            ("continue_strength", 0.05 <= self.continue_strength <= 1.0, "must be between 0.05 and 1"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} = {getattr(self, name)!r} {rule}")


@dataclass(frozen=True)
class Settings:
    """Every setting of the bot."""

    discord: DiscordSettings
    model: ModelSettings
    storage: StorageSettings
    generation: GenerationLimits
    queue: QueueSettings
    safety: SafetyPolicy = field(default_factory=SafetyPolicy)
    comic: ComicSettings = field(default_factory=ComicSettings)
    #: Style presets by name: the shipped ones, changed and extended by ``[styles.NAME]`` tables.
    styles: Mapping[str, StylePreset] = field(default_factory=lambda: dict(DEFAULT_STYLES))


_SECTIONS: dict[str, type] = {
    "discord": DiscordSettings,
    "model": ModelSettings,
    "storage": StorageSettings,
    "generation": GenerationLimits,
    "queue": QueueSettings,
    "safety": SafetyPolicy,
    "comic": ComicSettings,
}
#: Sections read by their own parser rather than as one dataclass.
_OTHER_SECTIONS = ("styles",)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check one TOML value against the dataclass field's type, converting where TOML can't say it."""
    origin = get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(key, f"must be a list, not {value!r}")
        (item,) = get_args(hint)[:1]
        return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, f"must be a path string, not {value!r}")
        return Path(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be a whole number, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, not {value!r}")
        return value
    raise ConfigError(key, f"unsupported setting type {hint!r}")


def _section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(name, "must be a table ([" + name + "])")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}", f"unknown setting (known: {', '.join(sorted(known))})")
        values[key] = _coerce(f"{name}.{key}", value, hints[key])
    try:
        return cls(**values)
    except ValueError as error:  # the dataclass's own range checks
        text = str(error)
        field_name = text.split(" ", 1)[0]
        raise ConfigError(f"{name}.{field_name}", text) from None


def _check(settings: Settings) -> None:
    d, m, q = settings.discord, settings.model, settings.queue
    if not d.token.strip():
        raise ConfigError("discord.token", f"missing; set it in the file or the {TOKEN_ENV} environment variable")
    for key, url, schemes in (
        ("discord.api_base", d.api_base, ("http://", "https://")),
        ("discord.gateway_url", d.gateway_url, ("ws://", "wss://")),
    ):
        if not url.startswith(schemes):
            raise ConfigError(key, f"must start with {' or '.join(schemes)}, not {url!r}")
    if any(g <= 0 for g in d.guild_ids):
        raise ConfigError("discord.guild_ids", "guild ids are positive numbers")
    if d.progress_interval_s < 1.0:
        raise ConfigError("discord.progress_interval_s", "must be at least 1.0 (Discord's rate limits)")
    if not m.id.strip():
        raise ConfigError("model.id", "must name a hub model, a local folder or a .safetensors file")
    for key, device in [("model.device", m.device)] + [(f"model.devices[{i}]", d) for i, d in enumerate(m.devices)]:
        if device != "auto" and not (device in ("cpu", "cuda", "mps") or device.startswith("cuda:")):
            raise ConfigError(key, f"must be auto, cpu, cuda, cuda:N or mps, not {device!r}")
    if len(set(m.devices)) != len(m.devices):
        raise ConfigError("model.devices", "lists a device twice")
    if m.dtype not in ("auto", "float16", "bfloat16", "float32"):
        raise ConfigError("model.dtype", f"must be auto, float16, bfloat16 or float32, not {m.dtype!r}")
    if q.max_pending_per_user < 1:
        raise ConfigError("queue.max_pending_per_user", "must be at least 1")
    if q.max_pending_total < q.max_pending_per_user:
        raise ConfigError("queue.max_pending_total", "must be at least queue.max_pending_per_user")
    if q.job_timeout_s <= 0:
        raise ConfigError("queue.job_timeout_s", "must be positive")
    if not 1 <= q.max_batch_images <= 16:
        raise ConfigError("queue.max_batch_images", "must be between 1 and 16")
    if q.preview_interval_s != 0 and q.preview_interval_s < 1:
        raise ConfigError("queue.preview_interval_s", "must be 0 (off) or at least 1 second")
    g = settings.generation
    if g.variation_subtle_strength > g.variation_strong_strength:
        raise ConfigError("generation.variation_subtle_strength", "must not be above variation_strong_strength")
    checker = settings.safety.checker
    if checker not in ("auto", "off") and (checker.count(":") != 1 or not all(checker.split(":"))):
        raise ConfigError("safety.checker", f"must be auto, off or package.module:function, not {checker!r}")
    for name, preset in settings.styles.items():
        if preset.steps is not None and preset.steps > g.max_steps:
            raise ConfigError(f"styles.{name}.steps", f"must be at most generation.max_steps ({g.max_steps})")
        if preset.guidance is not None and preset.guidance > g.max_guidance:
            raise ConfigError(
                f"styles.{name}.guidance", f"must be at most generation.max_guidance ({g.max_guidance:g})"
            )


def _styles(raw: Any) -> dict[str, StylePreset]:
    if not isinstance(raw, Mapping):
        raise ConfigError("styles", "must hold tables ([styles.NAME])")
    try:
        return styles_from_config(raw)
    except StyleConfigError as error:
        raise ConfigError(error.key, error.message) from None


def parse_settings(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Build validated settings from parsed TOML; ``DISCORD_TOKEN`` in ``env`` overrides the file."""
    env = os.environ if env is None else env
    for name in raw:
        if name not in _SECTIONS and name not in _OTHER_SECTIONS:
            raise ConfigError(name, f"unknown section (known: {', '.join([*_SECTIONS, *_OTHER_SECTIONS])})")
    sections = {name: _section(name, cls, raw.get(name, {})) for name, cls in _SECTIONS.items()}
    if env.get(TOKEN_ENV):
        sections["discord"] = dataclasses.replace(sections["discord"], token=env[TOKEN_ENV])
    settings = Settings(**sections, styles=_styles(raw.get("styles", {})))
    _check(settings)
    return settings


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
