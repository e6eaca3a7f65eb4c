"""The emulated gateway: HELLO, heartbeats, IDENTIFY -> READY + GUILD_CREATE, RESUME, dispatches.

Frames go out as plain JSON text; discord.py asks for ``compress=zlib-stream`` but decompresses only
binary frames, so text frames are fine. One session at a time (one bot); events are sequenced and
kept so a client that RESUMEs gets what it missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .state import World

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_MS = 41250
HEARTBEAT, IDENTIFY, PRESENCE, VOICE, RESUME, REQUEST_MEMBERS = 1, 2, 3, 4, 6, 8
DISPATCH, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 9, 10, 11

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT


@dataclass
class Session:
    """One identified gateway session, which may outlive a socket (RESUME)."""

    id: str
    intents: int
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    ready: bool = False
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Gateway:
    """Serves the websocket at ``/gateway`` for one bot, against one :class:`World`."""

    def __init__(
        self,
        world: World,
        token: Callable[[], str],
        problem: Callable[[str], None],
        changed: Callable[[], None],
        resume_url: Callable[[], str],
        allowed_intents: int,
    ) -> None:
        self.world = world
        self._token = token
        self._problem = problem
        self._changed = changed
        self._resume_url = resume_url
        self.allowed_intents = allowed_intents
        self.session: Session | None = None
        self.identify_count = 0
        self.resume_count = 0
        self.replayed = 0  # events re-sent on the last RESUME
        self._sockets: set[web.WebSocketResponse] = set()
        self._closed_by_us: set[web.WebSocketResponse] = set()

    @property
    def ready(self) -> bool:
        """A client is connected on a session that got READY (or RESUMED)."""
        return self.session is not None and self.session.ready and self.session.ws is not None

    def has_intent(self, intent: int) -> bool:
        return self.session is not None and bool(self.session.intents & intent)

    # -- socket ----------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        if request.query.get("v") not in (None, "10"):
            self._problem(f"gateway: client asked for API version {request.query.get('v')}, expected 10")
        if request.query.get("encoding", "json") != "json":
            self._problem(f"gateway: encoding {request.query.get('encoding')} is not supported")
        try:
            await ws.send_str(json.dumps({"op": HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}}))
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    if msg.type is WSMsgType.BINARY:
                        self._problem("gateway: client sent a binary frame (etf?)")
                    continue
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    self._problem(f"gateway: malformed JSON frame {msg.data[:100]!r}")
                    continue
                try:
                    await self._on_payload(ws, payload)
                except Exception as exc:  # an emulator bug: record it rather than drop the socket silently
                    log.exception("gateway: error handling %r", payload.get("op"))
                    self._problem(f"gateway: emulator error on op {payload.get('op')!r}: {exc!r}")
        finally:
            self._sockets.discard(ws)
            closed_by_client = ws not in self._closed_by_us
            self._closed_by_us.discard(ws)
            session = self.session
            if session is not None and session.ws is ws:
                session.ws = None
                session.ready = False
                if closed_by_client and ws.close_code == 1000:
                    self.session = None  # the bot logged out cleanly: its session ends, like Discord
            self._changed()
        return ws

    async def _on_payload(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == HEARTBEAT:
            await ws.send_str(json.dumps({"op": HEARTBEAT_ACK}))
        elif op == IDENTIFY:
            await self._identify(ws, data or {})
        elif op == RESUME:
            await self._resume(ws, data or {})
        elif op == REQUEST_MEMBERS:
            await self._member_chunk(ws, data or {})
        elif op in (PRESENCE, VOICE):
            pass
        else:
            self._problem(f"gateway: unexpected opcode {op!r}")

    def _token_ok(self, token: Any) -> bool:
        # discord.py sends the bare token on the gateway (no "Bot " prefix).
        return token == self._token()

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if not self._token_ok(data.get("token")):
            self._problem("gateway: IDENTIFY with a wrong token")
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.allowed_intents:
            self._problem(f"gateway: IDENTIFY asked for privileged intents not enabled ({intents})")
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        old = self.session
        if old is not None and old.ws is not None and old.ws is not ws:
            self._closed_by_us.add(old.ws)
            await old.ws.close(code=4000)
        self.session = session = Session(id=secrets.token_hex(16), intents=intents, ws=ws)
        self.identify_count += 1
        world = self.world
        bot = world.users[world.bot_user_id]
        await self._send_dispatch(
            session,
            "READY",
            {
                "v": 10,
                "user": {**bot.to_json(), "verified": True, "mfa_enabled": False, "email": None},
                "guilds": [{"id": str(gid), "unavailable": True} for gid in world.guild_ids],
                "session_id": session.id,
                "session_type": "normal",
                "resume_gateway_url": self._resume_url(),
                "shard": [0, 1],
                "application": {"id": str(world.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "user_settings": {},
                "guild_join_requests": [],
                "geo_ordered_rtc_regions": [],
            },
        )
        for gid in world.guild_ids:
            guild = world.guild_json(include_all_members=bool(intents & INTENT_GUILD_MEMBERS), guild_id=gid)
            await self._send_dispatch(session, "GUILD_CREATE", guild)
        session.ready = True
        self._changed()

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = self.session
        if not self._token_ok(data.get("token")):
            self._problem("gateway: RESUME with a wrong token")
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if session is None or data.get("session_id") != session.id:
            await ws.send_str(json.dumps({"op": INVALID_SESSION, "d": False}))
            return
        if session.ws is not None and session.ws is not ws:
            self._closed_by_us.add(session.ws)
            await session.ws.close(code=4000)
        session.ws = ws
        last = int(data.get("seq") or 0)
        async with session.send_lock:
            missed = [event for event in session.events if event["s"] > last]
            for event in missed:
                await ws.send_str(json.dumps(event))
        self.replayed = len(missed)
        self.resume_count += 1
        await self._send_dispatch(session, "RESUMED", {})
        session.ready = True
        self._changed()

    async def _member_chunk(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = self.session
        if session is None:
            return
        world = self.world
        members = [world.member_json(uid) for uid in world.users]
        user_ids = data.get("user_ids")
        if user_ids:
            wanted = {int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if int(m["user"]["id"]) in wanted]
        chunk: dict[str, Any] = {
            "guild_id": str(world.guild_id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    # -- dispatch --------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any], *, intent: int | None = None) -> bool:
        """Send one event to the bot's session (kept for RESUME if the socket is down).

        Returns False when the bot did not subscribe to ``intent`` and Discord would not send it.
        """
        session = self.session
        if session is None:
            raise RuntimeError("no bot session on the emulated gateway: await emu.wait_until_ready() first")
        if intent is not None and not session.intents & intent:
            return False
        await self._send_dispatch(session, event, data)
        return True

    async def _send_dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        async with session.send_lock:
            session.seq += 1
            frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
            session.events.append(frame)
            del session.events[:-2000]
            ws = session.ws
            if ws is not None and not ws.closed:
                try:
                    await ws.send_str(json.dumps(frame))
                except (ConnectionError, RuntimeError):
                    log.debug("gateway: %s not delivered now; kept for RESUME", event)

    async def disconnect(self, *, resume: bool) -> None:
        """Close the bot's socket with 4000 so it reconnects; ``resume=False`` also ends the session,
        so its RESUME is answered with INVALID_SESSION and it must IDENTIFY again."""
        session = self.session
        if session is None or session.ws is None:
            raise RuntimeError("no connected bot to disconnect")
        ws = session.ws
        session.ready = False
        if not resume:
            self.session = None
        self._closed_by_us.add(ws)
        await ws.close(code=4000, message=b"Emulated disconnect")
        self._changed()

    async def close(self) -> None:
        for ws in list(self._sockets):
            self._closed_by_us.add(ws)
            await ws.close(code=1001, message=b"Emulator shutting down")
