"""``[cluster]``: where the GPU workers run (this machine, or a Ray cluster), as a frozen pydantic model.

Kept apart from :mod:`bot.config` until the settings move to pydantic; :func:`cluster_settings`
reads the ``cluster`` table of the parsed TOML and raises :class:`bot.config.ConfigError` (one
line naming the key) on a bad value, as every other section does.

.. code-block:: toml

    [cluster]
    backend = "ray"            # "local" (default): one worker per [model] device on this machine
    address = "auto"           # "auto", "ray://head:10001", "head:6379", or "" to start Ray here
    workers = "auto"           # a number, or "auto": one per GPU the cluster offers
    num_gpus = 1               # GPUs each worker asks Ray for (0: CPU workers)
    num_cpus = 1
    memory_gb = 0              # host memory each worker reserves (0: no reservation)
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.config import ConfigError, Settings, parse_settings

#: ``ray://host:port`` (Ray Client) or ``host:port`` (the GCS of a cluster this machine is part of).
_ADDRESS = re.compile(r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


class ClusterSettings(BaseModel):
    """``[cluster]``: the worker backend, where the cluster is, and what each worker asks for."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    #: ``local``: one worker thread per ``[model]`` device here. ``ray``: Ray actors, here or on other machines.
    backend: Literal["local", "ray"] = "local"
    #: ``auto`` (a cluster this machine joined with ``ray start``), ``ray://head:10001`` (Ray Client),
    #: ``host:port``, or empty: start a Ray instance inside the bot's process (one machine).
    address: str = ""
    #: How many workers: a number, or ``auto`` for one per GPU the cluster offers (``num_gpus`` each).
    workers: int | Literal["auto"] = "auto"
    #: Ray resources each worker asks for; ``num_gpus = 0`` runs the model on the worker's CPU.
    num_gpus: float = Field(default=1.0, ge=0, le=64)
    num_cpus: float = Field(default=1.0, ge=0, le=1024)
    #: Host memory each worker reserves with Ray's scheduler (0: none reserved).
    memory_gb: float = Field(default=0.0, ge=0, le=4096)
    #: A job whose worker dies this many times fails (a request that crashes workers must not loop).
    max_worker_losses: int = Field(default=3, ge=1, le=100)
    #: Seconds to reach the cluster and get the first worker ready before giving up at start.
    connect_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    #: Seconds between looks for workers that joined or were lost.
    watch_interval_s: float = Field(default=5.0, gt=0, le=600)
    #: Ray namespace of the workers (two bots on one cluster use two names).
    namespace: str = Field(default="panelbot", min_length=1, max_length=64)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value in ("", "auto") or _ADDRESS.match(value):
            return value
        raise ValueError('must be "auto", "ray://host:port", "host:port" or empty (start Ray here)')

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 1024:
            raise ValueError('must be between 1 and 1024, or "auto"')
        return value

    @model_validator(mode="after")
    def _auto_needs_gpus(self) -> ClusterSettings:
        if self.backend == "ray" and self.workers == "auto" and self.num_gpus == 0:
            raise ValueError('workers = "auto" counts GPUs: give num_gpus > 0 or a number of workers')
        return self

    @property
    def memory_bytes(self) -> int:
        """``memory_gb`` in bytes, as Ray's ``memory`` resource wants it."""
        return int(self.memory_gb * 1024**3)


def cluster_settings(raw: Mapping[str, Any]) -> ClusterSettings:
    """The ``[cluster]`` table of parsed TOML (defaults when absent); :class:`ConfigError` if wrong."""
    table = raw.get("cluster", {})
    if not isinstance(table, Mapping):
        raise ConfigError("cluster", "must be a table")
    try:
        return ClusterSettings.model_validate(dict(table))
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in ("cluster", *first["loc"]) if not str(part).startswith("function-"))
        key = key.replace(".int", "").replace(".literal['auto']", "")
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown setting (known: {', '.join(sorted(ClusterSettings.model_fields))})"
        raise ConfigError(key, message) from None


def load_settings_with_cluster(path: Path, env: Mapping[str, str] | None = None) -> tuple[Settings, ClusterSettings]:
    """Like :func:`bot.config.load_settings`, with ``[cluster]`` read into :class:`ClusterSettings`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found (copy config.example.toml to start)") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), f"not valid TOML: {error}") from None
    cluster = cluster_settings(raw)
    return parse_settings({name: value for name, value in raw.items() if name != "cluster"}, env), cluster
