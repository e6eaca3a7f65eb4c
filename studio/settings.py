"""The studio's settings: the sections of the bot's config file it reads, validated by the bot's config.

The studio reads the same TOML file as the bot and takes from it only what it needs: ``[storage]``
(the database and image folder), ``[comic]`` (panels per page) and ``[studio]`` (see
``config.example.toml``). Each is validated by :func:`bot.config.parse_section`, the one
definition of every section, so a bad value is the same one-line :class:`~bot.config.ConfigError`
naming the key as the bot gives; the studio needs no Discord token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import ComicSettings, ConfigError, StorageSettings, StudioSettings, parse_section, read_config_file

#: Where the studio looks for the config file when no ``--config`` is given.
CONFIG_ENV = "PANELBOT_CONFIG"
LOOPBACK = "127.0.0.1"

__all__ = ["CONFIG_ENV", "LOOPBACK", "ConfigError", "StudioConfig", "StudioSettings", "config_path", "load_config",
           "parse_config", "studio_settings"]


@dataclass(frozen=True)
class StudioConfig:
    """Everything the studio reads from the config file."""

    database: Path
    images_dir: Path
    panels_per_page: int
    studio: StudioSettings


def studio_settings(raw: Mapping[str, Any]) -> StudioSettings:
    """``[studio]`` from parsed TOML (the whole file's mapping); missing keys take their defaults."""
    settings: StudioSettings = parse_section(raw, "studio")
    return settings


def parse_config(raw: Mapping[str, Any]) -> StudioConfig:
    """What the studio needs from the parsed config file."""
    storage: StorageSettings = parse_section(raw, "storage")
    comic: ComicSettings = parse_section(raw, "comic")
    return StudioConfig(
        database=Path(storage.database),
        images_dir=Path(storage.images_dir),
        panels_per_page=comic.panels_per_page,
        studio=studio_settings(raw),
    )


def load_config(path: Path | str) -> StudioConfig:
    """Read the config file at ``path`` (relative paths inside it are kept as given)."""
    return parse_config(read_config_file(Path(path)))


def config_path(argv: list[str]) -> Path:
    """The config file: ``--config PATH`` after ``--`` on the streamlit command line, else the environment."""
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return Path(argv[index + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return Path(os.environ.get(CONFIG_ENV, "config.toml"))
