"""The studio's settings: the ``[studio]`` table of the bot's config file, and the paths it shares.

The studio reads the same TOML file as the bot with :mod:`tomllib` and takes from it only what it
needs: ``[storage]`` (the database and image folder), ``[comic] panels_per_page`` and its own
``[studio]`` table (see ``docs/studio-config.toml``). Bad values raise :class:`StudioConfigError`
naming the key, like the bot's own config errors.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: Where the studio looks for the config file when no ``--config`` is given.
CONFIG_ENV = "PANELBOT_CONFIG"
LOOPBACK = "127.0.0.1"


class StudioConfigError(ValueError):
    """A ``[studio]`` setting is wrong; ``str()`` is one line naming the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config error: {key}: {message}")
        self.key = key


@dataclass(frozen=True)
class StudioSettings:
    """``[studio]``: the web app and the bot's local API it talks to."""

    #: The shared secret the studio sends to the bot's API; empty: the API is off (no Generate page).
    secret: str = field(default="", repr=False)
    #: The port of the bot's local API (always bound to 127.0.0.1).
    api_port: int = 8765
    #: A password the studio asks for before showing anything; empty: none (it is private to this machine).
    password: str = field(default="", repr=False)
    #: Public mode: the studio may listen beyond 127.0.0.1 and shows only the servers and channels listed.
    public: bool = False
    public_guild_ids: tuple[int, ...] = ()
    public_channel_ids: tuple[int, ...] = ()
    #: The Discord channel where generations from the studio are posted (and filed in the gallery).
    channel_id: int = 0
    #: The member id the studio's generations are queued under (caps and fairness apply to it).
    user_id: int = 1
    #: Where gallery thumbnails are cached (the archive itself is only ever read).
    thumbnails_dir: Path = Path("data/thumbnails")

    def __post_init__(self) -> None:
        if not 1 <= self.api_port <= 65535:
            raise StudioConfigError("studio.api_port", f"must be a port number (1-65535), not {self.api_port}")
        if self.public and not (self.public_guild_ids or self.public_channel_ids):
            raise StudioConfigError(
                "studio.public", "public mode needs public_guild_ids or public_channel_ids (what it may show)"
            )
        if self.user_id < 1:
            raise StudioConfigError("studio.user_id", "must be a positive id")
        if self.channel_id < 0:
            raise StudioConfigError("studio.channel_id", "must be a channel id (0: studio generation off)")

    @property
    def api_url(self) -> str:
        """Where the bot's local API listens."""
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def generation_enabled(self) -> bool:
        """Whether the studio can send generations to the bot (a secret and a channel are set)."""
        return bool(self.secret) and self.channel_id > 0


@dataclass(frozen=True)
class StudioConfig:
    """Everything the studio reads from the config file."""

    database: Path
    images_dir: Path
    panels_per_page: int
    studio: StudioSettings


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise StudioConfigError(key, f"must be true or false, not {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise StudioConfigError(key, f"must be a whole number, not {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise StudioConfigError(key, f"must be a string, not {value!r}")
        return value
    if isinstance(default, Path):
        if not isinstance(value, str):
            raise StudioConfigError(key, f"must be a path string, not {value!r}")
        return Path(value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise StudioConfigError(key, f"must be a list of ids, not {value!r}")
        return tuple(value)
    raise StudioConfigError(key, "unsupported setting")  # pragma: no cover - every field is one of the above


def studio_settings(raw: Mapping[str, Any]) -> StudioSettings:
    """``[studio]`` from parsed TOML (the whole file's mapping); missing keys take their defaults."""
    table = raw.get("studio", {})
    if not isinstance(table, Mapping):
        raise StudioConfigError("studio", "must be a table")
    defaults = StudioSettings()
    known = {f.name: getattr(defaults, f.name) for f in fields(StudioSettings)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise StudioConfigError(f"studio.{key}", f"unknown setting (known: {', '.join(sorted(known))})")
        values[key] = _coerce(f"studio.{key}", value, known[key])
    return StudioSettings(**values)


def parse_config(raw: Mapping[str, Any]) -> StudioConfig:
    """What the studio needs from the parsed config file."""
    storage = raw.get("storage", {})
    comic = raw.get("comic", {})
    panels_per_page = comic.get("panels_per_page", 6)
    if not isinstance(panels_per_page, int) or not 1 <= panels_per_page <= 6:
        raise StudioConfigError("comic.panels_per_page", "must be between 1 and 6")
    return StudioConfig(
        database=Path(storage.get("database", "data/bot.sqlite3")),
        images_dir=Path(storage.get("images_dir", "data/images")),
        panels_per_page=panels_per_page,
        studio=studio_settings(raw),
    )


def load_config(path: Path | str) -> StudioConfig:
    """Read the config file at ``path`` (relative paths inside it are kept as given)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudioConfigError(str(path), "file not found (copy config.example.toml to start)") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise StudioConfigError(str(path), f"not valid TOML: {error}") from None
    return parse_config(raw)


def load_studio_settings(path: Path | str) -> StudioSettings:
    """Only ``[studio]`` of the config file at ``path`` (what the bot's local API needs)."""
    return load_config(path).studio


def config_path(argv: list[str]) -> Path:
    """The config file: ``--config PATH`` after ``--`` on the streamlit command line, else the environment."""
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return Path(argv[index + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return Path(os.environ.get(CONFIG_ENV, "config.toml"))
