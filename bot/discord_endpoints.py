"""Point discord.py at another REST base and gateway.

Real deployments use this to put a proxy (rate-limit sharing, auditing, egress control) in front
of Discord; the tests use it to run the real client against the project's Discord emulator.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket

log = logging.getLogger(__name__)

_DISCORD_GATEWAY_HOST_SUFFIX = "discord.gg"


def _rewrite_gateway(url: str, gateway: yarl.URL) -> str:
    """Send a connection meant for one of Discord's gateway hosts to ``gateway`` instead.

    discord.py 2.x connects a plain ``Client`` to ``DiscordWebSocket.DEFAULT_GATEWAY`` (it asks
    ``GET /gateway/bot`` only when sharding), falls back to it after INVALID_SESSION, and resumes
    at READY's ``resume_gateway_url``. Every URL on a ``*.discord.gg`` host goes to ``gateway``,
    keeping the query (``v``, ``encoding``, ``compress``); a ``resume_gateway_url`` that the proxy
    or emulator handed out itself is left alone.
    """
    target = yarl.URL(url)
    if not _is_discord_gateway(target):
        return url
    merged = gateway.with_query({**gateway.query, **target.query})
    return str(merged)


def _is_discord_gateway(url: yarl.URL) -> bool:
    """Whether ``url`` is one of Discord's own gateway hosts (no proxy configured)."""
    host = url.host or ""
    return host == _DISCORD_GATEWAY_HOST_SUFFIX or host.endswith("." + _DISCORD_GATEWAY_HOST_SUFFIX)


def use_endpoints(client: discord.Client, api_base: str, gateway_url: str | None) -> None:
    """Make ``client`` use ``api_base`` for REST and, if given, ``gateway_url`` for the gateway.

    Call it before ``client.login()`` / ``client.start()``.

    ``api_base`` replaces ``https://discord.com/api/v10``. discord.py keeps it in one class
    attribute, ``discord.http.Route.BASE``, that serves all REST calls (interaction callbacks and
    webhooks included), so it applies to every client in the process.

    ``gateway_url`` (e.g. ``wss://proxy.example/gateway``) applies to this client only: its
    websocket connections to Discord's gateway hosts are redirected there, and ``GET /gateway/bot``
    (used when sharding) reports it while keeping the real shard count and session limits. When it
    is one of Discord's own hosts (the default), nothing is redirected: a resume then goes to the
    ``resume_gateway_url`` Discord handed out, as it must.
    The bot token is never logged.
    """
    base = api_base.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"api_base must be an http(s) URL, not {api_base!r}")
    discord.http.Route.BASE = base
    log.info("Discord REST base: %s", base)
    if gateway_url is None:
        return

    gateway = yarl.URL(gateway_url)
    if gateway.scheme not in ("ws", "wss"):
        raise ValueError(f"gateway_url must be a ws(s) URL, not {gateway_url!r}")
    if _is_discord_gateway(gateway):
        # No proxy: discord.py connects where Discord says (resumes at READY's resume_gateway_url).
        return
    http = client.http
    original_connect = getattr(http, "_panelbot_original_ws_connect", http.ws_connect)
    original_get_bot_gateway = getattr(http, "_panelbot_original_get_bot_gateway", http.get_bot_gateway)

    async def ws_connect(url: str, *, compress: int = 0) -> Any:
        return await original_connect(_rewrite_gateway(url, gateway), compress=compress)

    async def get_bot_gateway() -> tuple[int, str, Any]:
        shards, _real_url, limits = await original_get_bot_gateway()
        return shards, str(gateway), limits

    http._panelbot_original_ws_connect = original_connect  # type: ignore[attr-defined]
    http._panelbot_original_get_bot_gateway = original_get_bot_gateway  # type: ignore[attr-defined]
    setattr(http, "ws_connect", ws_connect)  # noqa: B010 - patching one instance, not the class
    setattr(http, "get_bot_gateway", get_bot_gateway)  # noqa: B010
    log.info("Discord gateway: %s (default was %s)", gateway, DiscordWebSocket.DEFAULT_GATEWAY)
