"""Each server's settings (``/settings``) as the bot applies them, and the checks every job passes.

:class:`ServerRules` keeps every server's stored values in memory (loaded once at start, updated
on each write, so reading them never waits) and merges them over the config with
:func:`rules.server_settings.effective`. :meth:`ServerRules.refusal` is what
``JobRunner.start_job``, the comic commands and the studio's API ask before a job starts: the
channel and role rules, the kid-friendly words, then the member's cooldown and daily quota,
counted from the job rows in SQLite (so a restart forgets nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import discord

from bot.config import Settings
from bot.jobs import JobOrigin
from rules.server_settings import (
    DAY_S,
    ConfigDefaults,
    ServerSettings,
    Usage,
    access_refusal,
    effective,
    kid_friendly_refusal,
    parse_value,
    quota_refusal,
)
from storage import Storage

log = logging.getLogger(__name__)


class ServerRules:
    """Every server's settings over the config, and the checks they make on each job."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        client: discord.Client,
        *,
        native_size: int,
        known_models: Callable[[], Sequence[str]],
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.client = client
        #: The names of the models requests may name (the models' own list once there are several).
        self.known_models = known_models
        self.config = ConfigDefaults(
            limits=settings.generation,
            safety=settings.safety,
            max_pending_per_member=settings.queue.max_pending_per_user,
            native_size=native_size,
            model=next(iter(known_models()), settings.model.id),
            styles=frozenset(name.lower() for name in settings.styles),
        )
        self._stored: dict[int, dict[str, Any]] = {}
        self._cache: dict[int, ServerSettings] = {}
        self._default = effective(self.config, {})
        self._locks: weakref.WeakValueDictionary[tuple[int | None, int], asyncio.Lock] = weakref.WeakValueDictionary()

    async def load(self) -> None:
        """Read every server's stored values (at start)."""
        self._stored = await self.storage.guild_settings.all()
        self._cache.clear()
        if self._stored:
            log.info("%d server(s) have their own settings", len(self._stored))

    # -- reading and writing ---------------------------------------------------------------------------

    def stored(self, guild_id: int | None) -> dict[str, Any]:
        """The values a server set itself (a copy)."""
        return dict(self._stored.get(guild_id, {})) if guild_id is not None else {}

    def effective(self, guild_id: int | None) -> ServerSettings:
        """A server's settings: the config's, with its own over them (DMs: the config's)."""
        if guild_id is None or guild_id not in self._stored:
            return self._default
        cached = self._cache.get(guild_id)
        if cached is None:
            cached = self._cache[guild_id] = effective(self.config, self._stored[guild_id])
        return cached

    def check(self, guild_id: int, key: str, raw: Any) -> Any:
        """The value ``raw`` would be stored as (:class:`rules.server_settings.SettingError` if it can't)."""
        return parse_value(
            key, raw, self.config, self.stored(guild_id), styles=self.settings.styles.keys(), models=self.known_models
        )

    async def set(self, guild_id: int, key: str, raw: Any, *, updated_by: int | None = None) -> Any:
        """Check and store one value; return it as stored."""
        value = self.check(guild_id, key, raw)
        await self.storage.guild_settings.set(guild_id, key, value, updated_by=updated_by)
        self._stored.setdefault(guild_id, {})[key] = value
        self._cache.pop(guild_id, None)
        log.info("server %s: %s set to %r by %s", guild_id, key, value, updated_by)
        return value

    async def reset(self, guild_id: int, key: str | None = None) -> int:
        """Forget one of a server's values (None: all of them); how many were forgotten."""
        forgotten = await self.storage.guild_settings.reset(guild_id, key)
        if key is None:
            self._stored.pop(guild_id, None)
        else:
            self._stored.get(guild_id, {}).pop(key, None)
        self._cache.pop(guild_id, None)
        log.info("server %s: %s reset (%d value(s))", guild_id, key or "every setting", forgotten)
        return forgotten

    # -- the checks --------------------------------------------------------------------------------------

    def _channels(self, channel_id: int) -> tuple[int, ...]:
        """The channel and, for a thread, its parent (from the cache)."""
        channel = self.client.get_channel(channel_id)
        parent = getattr(channel, "parent_id", None) if isinstance(channel, discord.Thread) else None
        return (channel_id,) if parent is None else (channel_id, parent)

    def access_refusal(self, origin: JobOrigin, prompt: str | None = None) -> str | None:
        """Why this member may not draw here now, by the server's channel, role or kid-friendly rule; or None."""
        server = self.effective(origin.guild_id)
        text = access_refusal(server, channel_ids=self._channels(origin.channel_id), role_ids=origin.role_ids)
        if text is None and prompt:
            text = kid_friendly_refusal(server, prompt)
        return text

    @contextlib.asynccontextmanager
    async def member_turn(self, origin: JobOrigin) -> AsyncIterator[None]:
        """Hold while a member's quota is counted and their job row written, so a burst can't pass the quota."""
        key = (origin.guild_id, origin.user_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield

    async def quota_refusal(self, origin: JobOrigin, images: int, now: float | None = None) -> str | None:
        """Why the member's cooldown or daily quota refuses a job of ``images`` images now; or None."""
        limits = self.effective(origin.guild_id).member_limits(origin.role_ids)
        if not limits.cooldown_s and not limits.daily_images:
            return None
        now = time.time() if now is None else now
        counted, last = await self.storage.jobs.usage(origin.user_id, origin.guild_id, now - DAY_S)
        return quota_refusal(limits, Usage(counted, last), images, now)

    async def refusal(self, origin: JobOrigin, prompt: str | None, images: int) -> str | None:
        """Every rule at once (for callers that write their own job rows: comic panels, the studio)."""
        text = self.access_refusal(origin, prompt)
        if text is None:
            async with self.member_turn(origin):
                text = await self.quota_refusal(origin, images)
        return text
