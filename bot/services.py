"""What cogs get from the bot: its settings, storage, GPU queue, job runner and models, typed.

The bot builds one :class:`Services` and hands it to each cog it loads; cogs never reach into
the bot for these by attribute name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.config import Settings
from bot.guild_rules import ServerRules
from bot.job_runner import JobRunner
from bot.jobs import ModelInfo
from generation.queue import JobQueue
from rules.models import NATIVE_SIZES, ModelSpec, ModelState, find_model
from storage import Storage


@runtime_checkable
class ConfigurableEngine(Protocol):
    """A loaded engine that takes the configured safety checker and upscaler."""

    def configure(self, *, safety_checker: str = "auto", upscaler: str = "") -> None: ...


@runtime_checkable
class ModelCatalog(Protocol):
    """An engine that says which of the configured models it has loaded (:class:`generation.engine.DiffusionEngine`)."""

    @property
    def device(self) -> str: ...

    def model_states(self) -> list[ModelState]: ...


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

    def known_models(self) -> tuple[ModelSpec, ...]:
        """Every configured model, the default one (``[model]``) first."""
        return self.settings.model_specs()

    def model_spec(self, name: str | None) -> ModelSpec:
        """The configured model called ``name`` (None: the default); :class:`RequestError` listing them if unknown."""
        specs = self.known_models()
        return specs[0] if name is None else find_model(name, specs)

    def model_states(self) -> list[ModelState]:
        """What each worker knows of each model (family, native size, loaded); reads small files: call off the loop.

        Workers that can't say (a cluster's) are left out.
        """
        states: list[ModelState] = []
        for engine in self.engines:
            if isinstance(engine, ModelCatalog):
                states.extend(engine.model_states())
        return states

    def native_size_of(self, spec: ModelSpec, states: Sequence[ModelState] = ()) -> int:
        """A model's native image side: the default model's own, else as a worker read it from the model's
        files (``states``, from :meth:`model_states`), else the default model's."""
        if spec.name == self.known_models()[0].name:
            return self.model.native_size
        for state in states:
            if state.name == spec.name and state.native_size:
                return state.native_size
            if state.name == spec.name and state.family:
                return NATIVE_SIZES[state.family]
        return self.model.native_size


    def family_of(self, spec: ModelSpec, states: Sequence[ModelState] = ()) -> str | None:
        """A model's family as LoRAs name it (``sd1``, ``sd2``, ``sdxl``): the default model's own, else as a
        worker read it from the model's files (``states``); None when not known (not checked then)."""
        if spec.name == self.known_models()[0].name:
            family = getattr(self.model, "family", None)
            return family.lower() if isinstance(family, str) else None
        for state in states:
            if state.name == spec.name and state.family:
                return state.family.lower()
        return None


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
