"""Discord's REST rate limits: a global limit per bot and per-route buckets, announced in headers.

Each bucket is a fixed window (``count`` requests per ``per`` seconds) keyed by the route and its
major parameters (channel, guild, webhook), like Discord's. Every answer carries Discord's
``X-RateLimit-*`` headers, so a well-behaved client (discord.py is one) waits before a bucket
runs dry; a request over the limit gets 429 with ``retry_after`` and is a problem of the bot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

_MAJOR = ("channel_id", "guild_id", "webhook_id", "webhook_token")
# Interaction callbacks are answered once per interaction and are not rate limited.
_EXEMPT = ("/interactions/",)
# Webhook (interaction token) routes do not count against the bot's global limit.
_NOT_GLOBAL = ("/webhooks/",)


@dataclass(frozen=True)
class Limit:
    """``count`` requests per ``per`` seconds."""

    count: int
    per: float


#: Per-route limits as Discord announces them in practice; any other route gets ``DEFAULT_LIMIT``.
ROUTE_LIMITS: dict[tuple[str, str], Limit] = {
    ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me"): Limit(1, 0.25),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me"): Limit(1, 0.25),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/{user_id}"): Limit(1, 0.25),
}
DEFAULT_LIMIT = Limit(5, 5.0)
GLOBAL_LIMIT = Limit(50, 1.0)


@dataclass
class _Window:
    limit: Limit
    started: float
    used: int = 0


@dataclass
class Verdict:
    """What one request got: the headers to send, and ``retry_after`` when it was over a limit."""

    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    is_global: bool = False
    limit: Limit | None = None


class RateLimits:
    """Counts requests per bucket; :meth:`hit` says whether one more is allowed."""

    def __init__(
        self,
        *,
        default: Limit = DEFAULT_LIMIT,
        routes: Mapping[tuple[str, str], Limit] | None = None,
        global_limit: Limit = GLOBAL_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self.routes = dict(ROUTE_LIMITS if routes is None else routes)
        self.global_limit = global_limit
        self.clock = clock
        self._windows: dict[tuple[str, ...], _Window] = {}
        self._global: _Window | None = None

    def _window(self, current: _Window | None, limit: Limit, now: float) -> _Window:
        if current is None or now - current.started >= limit.per:
            return _Window(limit, now)
        return current

    def hit(self, method: str, template: str, params: Mapping[str, str]) -> Verdict:
        """Count one request to ``template``; over a limit, nothing is counted and 429 is due."""
        if template.startswith(_EXEMPT):
            return Verdict()
        now = self.clock()
        if not template.startswith(_NOT_GLOBAL):
            self._global = self._window(self._global, self.global_limit, now)
            glob = self._global
            if glob.used >= glob.limit.count:
                retry = glob.limit.per - (now - glob.started)
                return Verdict({"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}, retry, True, glob.limit)
        limit = self.routes.get((method, template), self.default)
        key = (method, template, *(params.get(name, "") for name in _MAJOR))
        window = self._windows[key] = self._window(self._windows.get(key), limit, now)
        reset_after = max(0.0, limit.per - (now - window.started))
        bucket = f"{abs(hash((method, template))):x}"
        headers = {
            "X-RateLimit-Limit": str(limit.count),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }
        if window.used >= limit.count:
            headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Scope": "user"})
            return Verdict(headers, reset_after, False, limit)
        if self._global is not None and not template.startswith(_NOT_GLOBAL):
            self._global.used += 1
        window.used += 1
        headers["X-RateLimit-Remaining"] = str(limit.count - window.used)
        return Verdict(headers)
