"""What the REST routes and their handlers need of the local Discord, as a protocol.

:class:`~playground.server.DiscordEmulator` is the one implementation; ``rest.py`` and
``handlers.py`` depend on this protocol instead of on the server module, so the package has no
import cycle (the server builds the routes and hands itself to them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from .faults import Faults
from .gateway import Gateway
from .ratelimit import RateLimits
from .records import EmuInteraction, EmuMessage, RestRequest
from .spec import ApiSpec
from .state import World


class EmulatorCore(Protocol):
    """The emulator's state and actions that routes and handlers use."""

    world: World
    spec: ApiSpec
    gateway: Gateway
    faults: Faults
    token: str
    token_lifetime: float
    ack_deadline: float
    upload_limit: int
    rate_limits: RateLimits | None
    problems: list[str]
    requests: list[RestRequest]
    interactions_by_id: dict[int, EmuInteraction]
    interactions_by_token: dict[str, EmuInteraction]
    registered_commands: dict[int | None, list[dict[str, Any]]]
    #: Routes by (method, path template); a handler takes the parsed call (``rest.ApiCall``).
    handlers: dict[tuple[str, str], Callable[[Any], Awaitable[web.Response]]]

    @property
    def gateway_url(self) -> str: ...

    def problem(self, text: str) -> None: ...

    def changed(self) -> None: ...

    async def dispatch(self, event: str, data: dict[str, Any], *, intent: int | None = None) -> bool: ...

    def interaction(self, interaction_id: int) -> EmuInteraction: ...

    async def apply_reaction(self, message: EmuMessage, emoji: str, user_id: int, *, add: bool) -> None: ...
