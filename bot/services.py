"""What cogs get from the bot: its settings, storage, GPU queue, job runner and model, typed.

The bot builds one :class:`Services` and hands it to each cog it loads; cogs never reach into
the bot for these by attribute name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.config import Settings
from bot.guild_rules import ServerRules
from bot.job_runner import JobRunner
from bot.jobs import ModelInfo
from generation.queue import JobQueue
from storage import Storage


@runtime_checkable
class ConfigurableEngine(Protocol):
    """A loaded engine that takes the configured safety checker and upscaler."""

    def configure(self, *, safety_checker: str = "auto", upscaler: str = "") -> None: ...


@dataclass(frozen=True)
class Services:
    """The bot's services, as cogs see them."""

    settings: Settings
    storage: Storage
    queue: JobQueue
    runner: JobRunner
    #: The (first) loaded model: its name, native size and tokenizer.
    model: ModelInfo
    #: Every engine the queue runs on that can be configured (one per device).
    engines: Sequence[ConfigurableEngine]
    #: Each server's own settings (``/settings``) over the config, and the checks they make.
    servers: ServerRules
    #: The names of the models a request or a server's default may name.
    known_models: Callable[[], Sequence[str]]


@runtime_checkable
class ProvidesServices(Protocol):
    """A bot that hands its cogs their services (:class:`bot.bot.ArtBot`)."""

    @property
    def services(self) -> Services: ...


def services_of(bot: object) -> Services:
    """The services of the bot loading a cog; TypeError for a bot that has none."""
    if not isinstance(bot, ProvidesServices):
        raise TypeError(f"{type(bot).__name__} does not provide the bot's services")
    return bot.services
