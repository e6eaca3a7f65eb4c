"""The playground's page: a Discord-like channel view in the browser, fed live over a WebSocket.

:class:`PlaygroundPage` adds its routes to the emulator's own aiohttp app (one port serves the bot's
gateway and REST API, the attachments and the page). Each open tab gets the guild, the members,
the commands the bot registered, every message and every problem the emulator recorded, then each
change as it happens. What a tab sends (a slash command, an autocomplete request, a button click, a
reaction, a plain message) goes through the same emulator calls the tests use, so the bot sees
exactly what Discord would send it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from .handlers import APPLICATION_COMMAND
from .interactions import CommandUsageError
from .records import EmuInteraction, EmuMessage
from .server import DiscordEmulator

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
WS_PATH = "/playground/ws"
MAX_UPLOAD = 25 * 1024 * 1024

Fingerprint = tuple[Any, ...]


def _fingerprint(message: EmuMessage) -> Fingerprint:
    reactions = tuple(sorted((emoji, tuple(sorted(users))) for emoji, users in message.reactions.items()))
    return (message.edit_count, message.deleted, message.flags, reactions)


class PlaygroundPage:
    """Serves the page and its WebSocket for one emulator; ``install`` is the emulator's ``routes``."""

    def __init__(self, emu: DiscordEmulator) -> None:
        self.emu = emu
        self.sockets: set[web.WebSocketResponse] = set()
        self._sent: dict[int, Fingerprint] = {}
        self._problems_sent = 0
        self._commands_sent = ""
        self._flush_handle: asyncio.Handle | None = None
        self._flushing = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        emu.listeners.append(self._on_change)

    def install(self, app: web.Application) -> None:
        """Add the page's routes (before the emulator's catch-all)."""
        app.router.add_get("/", self._index)
        app.router.add_get("/favicon.ico", self._favicon)
        app.router.add_get(WS_PATH, self._socket)
        app.router.add_static("/static/", STATIC_DIR)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for ws in list(self.sockets):
            await ws.close()

    # -- HTTP ------------------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def _favicon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_UPLOAD * 2)
        await ws.prepare(request)
        async with self._flushing:
            await self._flush_locked()  # open tabs catch up: the snapshot is then the baseline for all
            await ws.send_json(self.snapshot())
            self.sockets.add(ws)
        self._on_change()  # anything that changed while the snapshot was on its way
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    action = json.loads(msg.data)
                except ValueError:
                    continue
                self._spawn(self._act(ws, action))
        finally:
            self.sockets.discard(ws)
        return ws

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what the page sees ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything a new tab needs, and the baseline for later changes."""
        emu = self.emu
        world = emu.world
        members = []
        for user in world.users.values():
            if user.bot:
                continue
            if user.id == world.owner_id:
                role = "owner"
            elif world.moderator_role_id in user.role_ids:
                role = "moderator"
            else:
                role = "member"
            members.append({"id": str(user.id), "name": user.username, "role": role})
        messages = sorted(world.messages.values(), key=lambda m: m.id)
        return {
            "type": "hello",
            "guild": {"id": str(world.guild_id), "name": "Playground"},
            "bot": {"id": str(world.bot_user_id), "name": world.users[world.bot_user_id].username},
            "channels": [
                {"id": str(c.id), "name": c.name, "nsfw": c.nsfw}
                for c in sorted(world.channels.values(), key=lambda c: c.position)
            ],
            "members": members,
            "ack_deadline": emu.ack_deadline,
            "commands": self._commands(),
            "problems": list(emu.problems),
            "ready": emu.gateway.ready,
            "messages": [self.message_json(m) for m in messages if not m.deleted],
        }

    def _commands(self) -> list[dict[str, Any]]:
        emu = self.emu
        return [*emu.commands(emu.guild_id), *emu.commands(None)]

    def message_json(self, message: EmuMessage) -> dict[str, Any]:
        """Discord's message JSON plus what the page needs: who may see it, who reacted, states."""
        if message.deleted:
            return {"id": str(message.id), "channel_id": str(message.channel_id), "deleted": True}
        data = self.emu.message_payload(message)
        visible_to = None
        if message.ephemeral and message.interaction_id is not None:
            visible_to = str(self.emu.interaction(message.interaction_id).user_id)
        data.update(
            deleted=False,
            ephemeral=message.ephemeral,
            loading=message.loading,
            visible_to=visible_to,
            edited=message.edit_count > 0 and not message.loading,
            reaction_users={emoji: [str(u) for u in sorted(users)] for emoji, users in message.reactions.items()},
        )
        return data

    def _on_change(self) -> None:
        if self._flush_handle is None and self.sockets:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_handle = None
        self._spawn(self._flush())

    async def _flush(self) -> None:
        async with self._flushing:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        """Send every change since the last flush to every open tab (with ``_flushing`` held)."""
        events: list[dict[str, Any]] = []
        for message in list(self.emu.world.messages.values()):
            mark = _fingerprint(message)
            if self._sent.get(message.id) != mark:
                self._sent[message.id] = mark
                events.append({"type": "message", "message": self.message_json(message)})
        problems = self.emu.problems
        for text in problems[self._problems_sent :]:
            events.append({"type": "problem", "text": text})
        self._problems_sent = len(problems)
        commands = json.dumps(self._commands(), sort_keys=True)
        if commands != self._commands_sent:
            self._commands_sent = commands
            events.append({"type": "commands", "commands": self._commands()})
        events.append({"type": "ready", "ready": self.emu.gateway.ready})
        await self.broadcast(events)

    async def broadcast(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        payload = json.dumps({"type": "batch", "events": events})
        for ws in list(self.sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(payload)

    # -- what the page does ----------------------------------------------------------------------

    async def _act(self, ws: web.WebSocketResponse, action: dict[str, Any]) -> None:
        request_id = action.get("request_id")
        reply: dict[str, Any] = {"type": "result", "request_id": request_id, "ok": True}
        try:
            reply.update(await self._perform(action))
        except (CommandUsageError, LookupError, ValueError, TimeoutError) as error:
            reply.update(ok=False, error=str(error))
        except RuntimeError as error:  # no bot connected yet
            reply.update(ok=False, error=str(error))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_json(reply)

    async def _perform(self, action: dict[str, Any]) -> dict[str, Any]:
        emu = self.emu
        kind = action.get("type")
        user_id = int(action["user_id"])
        if kind == "command":
            attachments = {
                name: (f["filename"], base64.b64decode(f["data"]), f.get("content_type") or "")
                for name, f in (action.get("attachments") or {}).items()
            }
            inter = await emu.send_slash_command(
                action["name"],
                action.get("options") or {},
                user_id=user_id,
                channel_id=int(action["channel_id"]),
                group=action.get("group"),
                subcommand=action.get("subcommand"),
                attachments=attachments or None,
                ack_timeout=None,
            )
            self._spawn(self._watch_ack(inter))
            return {"interaction_id": str(inter.id)}
        if kind == "autocomplete":
            choices = await emu.autocomplete(
                action["name"],
                action.get("options") or {},
                action["focused"],
                user_id=user_id,
                channel_id=int(action["channel_id"]),
                group=action.get("group"),
                subcommand=action.get("subcommand"),
                timeout=emu.ack_deadline,
            )
            return {"choices": choices}
        if kind == "click":
            message_id = int(action["message_id"])
            inter = await emu.click_button(message_id, action["custom_id"], user_id=user_id, ack_timeout=None)
            self._spawn(self._watch_ack(inter))
            return {"interaction_id": str(inter.id)}
        if kind == "react":
            message_id = int(action["message_id"])
            if action.get("add", True):
                await emu.add_reaction(message_id, action["emoji"], user_id=user_id)
            else:
                await emu.remove_reaction(message_id, action["emoji"], user_id=user_id)
            return {}
        if kind == "post":
            content = str(action.get("content") or "")
            if not content.strip():
                raise ValueError("empty message")
            await emu.post_message(content, user_id=user_id, channel_id=int(action["channel_id"]))
            return {}
        raise ValueError(f"unknown action {kind!r}")

    async def _watch_ack(self, inter: EmuInteraction) -> None:
        """Discord's client gives up on an interaction the bot does not answer within 3 s."""
        emu = self.emu
        try:
            await emu.wait_for(lambda: inter.responded_at is not None, emu.ack_deadline + 0.25)
        except TimeoutError:
            label = f"/{inter.name}" if inter.type == APPLICATION_COMMAND else f"button {inter.custom_id}"
            command = inter.type == APPLICATION_COMMAND
            shown = "The application did not respond" if command else "This interaction failed"
            emu.problem(f"{label}: not acknowledged within {emu.ack_deadline:g}s (Discord shows: {shown})")
            await self.broadcast(
                [
                    {
                        "type": "notice",
                        "user_id": str(inter.user_id),
                        "channel_id": str(inter.channel_id),
                        "text": shown,
                    }
                ]
            )
