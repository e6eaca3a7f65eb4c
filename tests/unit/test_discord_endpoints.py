"""Gateway URLs: rewritten to a configured proxy only, never when the bot talks to Discord itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import discord
import pytest

from bot.config import DISCORD_API_BASE, DISCORD_GATEWAY_URL
from bot.discord_endpoints import use_endpoints
from tests.reliability import record_reliability

RESUME_URL = "wss://gateway-us-east1-b.discord.gg?v=10&encoding=json"


@pytest.fixture
def client() -> Iterator[discord.Client]:
    """A client whose websocket connect only records the URL it was asked for."""
    made = discord.Client(intents=discord.Intents.none())
    base = discord.http.Route.BASE
    yield made
    discord.http.Route.BASE = base


def record_connects(client: discord.Client) -> list[str]:
    urls: list[str] = []

    async def ws_connect(url: str, *, compress: int = 0) -> Any:
        urls.append(url)
        return None

    setattr(client.http, "ws_connect", ws_connect)  # noqa: B010 - the transport below discord.py
    return urls


async def test_resume_url_kept_without_a_proxy(client: discord.Client) -> None:
    """Defect 8: with Discord's own gateway configured, a resume URL goes where Discord said."""
    urls = record_connects(client)
    use_endpoints(client, DISCORD_API_BASE, DISCORD_GATEWAY_URL)
    await client.http.ws_connect(RESUME_URL)
    assert urls == [RESUME_URL]
    record_reliability("defect", "8. resume URL rewritten without a proxy", 1, "resume URL left as Discord sent it")


async def test_resume_url_rewritten_with_a_proxy(client: discord.Client) -> None:
    """With a gateway proxy configured, connections to Discord's hosts (resumes too) go to the proxy."""
    urls = record_connects(client)
    use_endpoints(client, DISCORD_API_BASE, "wss://proxy.example/gateway")
    await client.http.ws_connect(RESUME_URL)
    assert urls == ["wss://proxy.example/gateway?v=10&encoding=json"]
