"""Deliberate faults the emulator can inject, to test how the bot copes with a misbehaving Discord.

Each fault is an explicit rule a test arms on :attr:`DiscordEmulator.faults`; nothing here happens
on its own. REST faults match a request by method and route template (``None`` matches any), and
optionally by channel and by whether the request uploads files; they answer with Discord's error
shape for the next ``times`` matching requests (``None``: until :meth:`Faults.clear`). Attachment
faults make one attachment's download answer 404 or stall. An injected error is not a problem of
the bot (``emu.problems`` stays clean); what the bot does next is what the test checks.

Gateway faults (a resumable drop, a dropped session) are :meth:`DiscordEmulator.disconnect_gateway`.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

#: Discord's JSON error codes used by the faults below.
MISSING_PERMISSIONS = 50013
INVALID_WEBHOOK_TOKEN = 50027

ROUTE_MESSAGES = "/channels/{channel_id}/messages"
ROUTE_OWN_REACTION = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me"


@dataclass
class RestFault:
    """One armed REST fault: what it matches, what it answers, and how often it may still fire."""

    method: str | None
    route: str | None
    status: int
    code: int
    message: str
    times: int | None = 1
    channel_id: int | None = None
    with_files: bool | None = None
    retry_after: float | None = None
    is_global: bool = False
    #: Seconds to hold the request before answering (a slow Discord).
    delay: float = 0.0
    #: How many requests this fault answered.
    fired: int = 0
    id: int = 0

    def matches(self, method: str, template: str, params: dict[str, str], has_files: bool) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.route is not None and self.route != template:
            return False
        if self.channel_id is not None and params.get("channel_id") != str(self.channel_id):
            return False
        return self.with_files is None or self.with_files == has_files

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.status == 429:
            body["retry_after"] = self.retry_after if self.retry_after is not None else 0.1
            body["global"] = self.is_global
        return body

    def headers(self) -> dict[str, str]:
        if self.status != 429:
            return {}
        retry = self.retry_after if self.retry_after is not None else 0.1
        # Discord's 429s come through its proxy (``Via``); clients treat a 429 without it as a Cloudflare ban.
        headers = {"Retry-After": str(retry), "X-RateLimit-Scope": "global" if self.is_global else "user",
                   "Via": "1.1 google"}
        if self.is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": f"{retry:.3f}",
                            "X-RateLimit-Limit": "1", "X-RateLimit-Bucket": "fault"})
        return headers


@dataclass
class Faults:
    """The armed faults of one emulator, and a log of every one that fired."""

    rest: list[RestFault] = field(default_factory=list)
    #: Attachment file name -> "404" or "stall".
    attachments: dict[str, str] = field(default_factory=dict)
    #: (fault id, method, route template, status) for every request a fault answered, in order.
    fired: list[tuple[int, str, str, int]] = field(default_factory=list)
    #: How long a stalled attachment download is held.
    stall_s: float = 15.0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- arming ----------------------------------------------------------------------------------

    def add(self, fault: RestFault) -> RestFault:
        """Arm a REST fault; returns it (its ``fired`` counts the requests it answered)."""
        fault.id = next(self._ids)
        self.rest.append(fault)
        return fault

    def rate_limit(
        self, method: str | None, route: str | None, *, retry_after: float = 0.2, times: int = 1,
        is_global: bool = False,
    ) -> RestFault:
        """429 with ``retry_after`` for the next ``times`` matching requests (per route, or global)."""
        return self.add(RestFault(method, route, 429, 0, "You are being rate limited.", times=times,
                                  retry_after=retry_after, is_global=is_global))

    def server_error(
        self, status: int = 502, *, times: int = 1, method: str | None = None, route: str | None = None,
        uploads_only: bool = True,
    ) -> RestFault:
        """500/502 for the next ``times`` matching requests (by default: requests that upload files)."""
        text = "500: Internal Server Error" if status == 500 else "502: Bad Gateway"
        return self.add(RestFault(method, route, status, 0, text, times=times,
                                  with_files=True if uploads_only else None))

    def deny_bot_permission(self, channel_id: int, permission: str) -> RestFault:
        """The bot lacks ``attach_files`` or ``add_reactions`` in a channel: 403 / 50013 from then on.

        Attach Files: every message create or edit in the channel that uploads a file. Add Reactions:
        every reaction the bot adds there.
        """
        if permission == "attach_files":
            return self.add(RestFault(None, None, 403, MISSING_PERMISSIONS, "Missing Permissions", times=None,
                                      channel_id=channel_id, with_files=True))
        if permission == "add_reactions":
            return self.add(RestFault("PUT", ROUTE_OWN_REACTION, 403, MISSING_PERMISSIONS, "Missing Permissions",
                                      times=None, channel_id=channel_id))
        raise ValueError(f"unknown permission {permission!r}: attach_files or add_reactions")

    def break_attachment(self, filename: str, mode: str = "404") -> None:
        """Downloading any attachment named ``filename`` answers 404 (``"404"``) or never answers
        (``"stall"``); by name, so a test can arm it before the member uploads the file."""
        if mode not in ("404", "stall"):
            raise ValueError(f"unknown attachment fault {mode!r}: 404 or stall")
        self.attachments[filename] = mode

    def clear(self) -> None:
        """Disarm every fault (the log of fired ones stays)."""
        self.rest.clear()
        self.attachments.clear()

    # -- firing (the REST front door and the attachment route call these) ------------------------

    def take(self, method: str, template: str, params: dict[str, str], has_files: bool) -> RestFault | None:
        """The first armed fault matching this request, counted as fired; None if none matches."""
        for fault in self.rest:
            if fault.matches(method, template, params, has_files):
                fault.fired += 1
                self.fired.append((fault.id, method, template, fault.status))
                return fault
        return None

    async def stall(self) -> None:
        """Hold a stalled download for ``stall_s`` (or until the client gives up), then answer 504."""
        await asyncio.sleep(self.stall_s)
