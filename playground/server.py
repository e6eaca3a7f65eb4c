"""DiscordEmulator: the aiohttp server and the API tests drive it with.

Typical use::

    async with DiscordEmulator(spec_path=SPEC) as emu:
        bot = MyBot(...)
        use_endpoints(bot, emu.api_base, emu.gateway_url)
        task = asyncio.create_task(bot.start(emu.token))
        await emu.wait_until_ready()
        inter = await emu.send_slash_command("imagine", {"prompt": "a cat"}, user_id=alice)
        assert inter.original is not None
        assert emu.problems == []
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from .faults import Faults
from .gateway import (
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGE_REACTIONS,
    INTENT_GUILDS,
    PRIVILEGED_INTENTS,
    Gateway,
)
from .handlers import APPLICATION_COMMAND, AUTOCOMPLETE, COMPONENT, Handler, Handlers
from .interactions import CommandUsageError, build_command_data, interaction_payload
from .ratelimit import RateLimits
from .records import EmuInteraction, EmuMessage, RestRequest
from .rest import API_PREFIX, RestApi, json_response
from .spec import SPEC_ENV_VAR, load_spec
from .state import MANAGE_GUILD, World, emoji_json

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
DEFAULT_SPEC = Path(__file__).resolve().parent / "discord_api_spec" / "openapi.json"


class DiscordEmulator:
    """A fake Discord (one guild, one bot) on 127.0.0.1 that the real discord.py client talks to."""

    def __init__(
        self,
        spec_path: Path | str | None = None,
        *,
        token: str | None = None,
        ack_deadline: float = 3.0,
        allowed_intents: int = PRIVILEGED_INTENTS,
        rate_limits: RateLimits | None = None,
    ) -> None:
        if spec_path is None and not os.environ.get(SPEC_ENV_VAR) and DEFAULT_SPEC.is_file():
            spec_path = DEFAULT_SPEC
        self.spec = load_spec(spec_path)
        self.token = token or f"emu.{secrets.token_urlsafe(24)}"
        self.ack_deadline = ack_deadline
        #: Interaction tokens work this long (Discord: 15 minutes), for followups and edits.
        self.token_lifetime = 15 * 60.0
        self.upload_limit = DEFAULT_UPLOAD_LIMIT
        self.world = World()
        self.problems: list[str] = []
        self.requests: list[RestRequest] = []
        self.interactions: list[EmuInteraction] = []
        self.interactions_by_id: dict[int, EmuInteraction] = {}
        self.interactions_by_token: dict[str, EmuInteraction] = {}
        self.registered_commands: dict[int | None, list[dict[str, Any]]] = {}
        self.rate_limits = rate_limits
        #: Deliberate faults a test arms (see :mod:`playground.faults`); none by default.
        self.faults = Faults()
        #: Called (synchronously) on every state change, after the waiters are woken: the page's feed.
        self.listeners: list[Callable[[], None]] = []
        self._changed_event = asyncio.Event()
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self.gateway = Gateway(
            self.world,
            token=lambda: self.token,
            problem=self.problem,
            changed=self.changed,
            resume_url=lambda: self.gateway_url,
            allowed_intents=allowed_intents,
        )
        self._rest = RestApi(self)
        self._handlers = Handlers(self)
        self.handlers: dict[tuple[str, str], Handler] = self._handlers.routes()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, *, port: int = 0, routes: Callable[[web.Application], None] | None = None) -> None:
        """Listen on 127.0.0.1 (``port`` 0: any free one); ``routes`` may add more routes (the page's)."""
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._serve_attachment)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest.handle)
        if routes is not None:
            routes(app)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self.world.base_url = f"http://127.0.0.1:{self._port}"

    async def stop(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- addresses and ids -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started: await emu.start()")
        return self._port

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def application_id(self) -> int:
        return self.world.application_id

    @property
    def bot_user_id(self) -> int:
        return self.world.bot_user_id

    @property
    def guild_id(self) -> int:
        return self.world.guild_id

    @property
    def owner_id(self) -> int:
        return self.world.owner_id

    @property
    def channel_id(self) -> int:
        return self.world.channel_id

    @property
    def nsfw_channel_id(self) -> int:
        return self.world.nsfw_channel_id

    @property
    def moderator_role_id(self) -> int:
        return self.world.moderator_role_id

    # -- state changes and waiting ---------------------------------------------------------------

    def problem(self, text: str) -> None:
        log.warning("discord emulator problem: %s", text)
        self.problems.append(text)
        self.changed()

    def changed(self) -> None:
        """Wake everything waiting in :meth:`wait_for`."""
        self._changed_event.set()
        self._changed_event = asyncio.Event()
        for listener in self.listeners:
            listener()

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:  # noqa: ASYNC109
        """Re-evaluate ``predicate`` on every state change (and every 50 ms) until it is truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._timeout_message(predicate, timeout))
            event = self._changed_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.05))

    def _timeout_message(self, predicate: Callable[[], Any], timeout: float) -> str:
        name = getattr(predicate, "__qualname__", repr(predicate))
        recent = [f"{m.id}:{m.content[:40]!r}" for m in sorted(self.world.messages.values(), key=lambda m: m.id)][-5:]
        calls = [f"{r.method} {r.route_template or r.path} -> {r.status}" for r in self.requests[-5:]]
        return (
            f"emulator: {name} still false after {timeout}s; gateway ready={self.gateway.ready}; "
            f"last messages={recent}; last requests={calls}; problems={self.problems}"
        )

    async def wait_until_ready(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until a client IDENTIFYed (or RESUMEd) and got READY + GUILD_CREATE on a live socket."""
        await self.wait_for(lambda: self.gateway.ready, timeout)

    async def dispatch(self, event: str, data: dict[str, Any], *, intent: int | None = None) -> bool:
        """Send a gateway event to the bot; quietly dropped when no bot ever identified."""
        if self.gateway.session is None:
            return False
        sent = await self.gateway.dispatch(event, data, intent=intent)
        self.changed()
        return sent

    # -- people ----------------------------------------------------------------------------------

    def add_member(self, username: str, *, moderator: bool = False, role_ids: Sequence[int] = ()) -> int:
        """A new guild member (moderators get Manage Messages through a role); returns the user id.

        ``role_ids``: more roles of the main guild (see :meth:`add_role`). Members added before the
        bot connects are in GUILD_CREATE; later ones arrive as GUILD_MEMBER_ADD.
        """
        user = self.world.add_user(username, moderator=moderator, role_ids=list(role_ids))
        if self.gateway.session is not None:
            data = {**self.world.member_json(user.id), "guild_id": str(self.guild_id)}
            task = asyncio.get_running_loop().create_task(
                self.dispatch("GUILD_MEMBER_ADD", data, intent=INTENT_GUILD_MEMBERS)
            )
            task.add_done_callback(lambda t: t.exception())
        return user.id

    async def add_role(self, name: str, *, manage_server: bool = False, permissions: int = 0) -> int:
        """A new role of the main guild (``manage_server``: it grants Manage Server); returns its id.

        Once the bot is connected it learns of the role from GUILD_ROLE_CREATE, as from Discord.
        """
        role = self.world.add_role(name, permissions | (MANAGE_GUILD if manage_server else 0))
        if self.gateway.session is not None:
            await self.dispatch(
                "GUILD_ROLE_CREATE", {"guild_id": str(self.guild_id), "role": role.to_json()}, intent=INTENT_GUILDS
            )
        return role.id

    def add_guild(self, name: str) -> tuple[int, int]:
        """Another guild the bot is in (before it connects), with a #general: returns (guild id, channel id).

        Every member is in every guild; commands run in its channel are that guild's interactions.
        """
        if self.gateway.session is not None:
            raise RuntimeError("add guilds before the bot connects")
        return self.world.add_guild(name)

    def set_upload_limit(self, limit: int) -> None:
        """Largest total multipart upload accepted; larger ones get 413 / 40005 like Discord."""
        self.upload_limit = int(limit)

    # -- reading state ---------------------------------------------------------------------------

    def messages(self, channel_id: int | None = None) -> list[EmuMessage]:
        """Visible (non-ephemeral, not deleted) messages, oldest first: in one channel, or in all if None.

        Channel messages and interaction responses/followups alike; a deferred response shows as its
        "thinking..." placeholder (``loading``) until it is edited or filled by the first followup.
        """
        found = [
            m
            for m in self.world.messages.values()
            if (channel_id is None or m.channel_id == channel_id) and not m.deleted and not m.ephemeral
        ]
        return sorted(found, key=lambda m: m.id)

    def message(self, message_id: int) -> EmuMessage:
        return self.world.messages[message_id]

    def message_payload(self, message: EmuMessage) -> dict[str, Any]:
        """The message's JSON as Discord's API returns it (embeds resolved, interaction metadata)."""
        return self._handlers.store.json(message)

    def interaction(self, interaction_id: int) -> EmuInteraction:
        return self.interactions_by_id[interaction_id]

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The commands the bot registered: global when ``guild_id`` is None."""
        return list(self.registered_commands.get(guild_id, []))

    def expire_interaction_tokens(self) -> None:
        """Every interaction so far expires: webhook calls with their tokens get 401 / 50027."""
        for inter in self.interactions:
            inter.expired = True

    async def delete_message_as(self, message_id: int, *, user_id: int | None = None) -> None:
        """Someone (a moderator, or the author) deletes a message in Discord's client: MESSAGE_DELETE."""
        message = self.world.messages.get(message_id)
        if message is None or message.deleted:
            raise LookupError(f"no message {message_id} to delete")
        await self._handlers.store.delete(message)
        self.changed()

    async def disconnect_gateway(self, resume: bool = True) -> None:
        """Drop the bot's socket (4000) so it RESUMEs; ``resume=False`` forces a fresh IDENTIFY."""
        await self.gateway.disconnect(resume=resume)

    # -- acting as users -------------------------------------------------------------------------

    def _find_command(self, name: str, channel_id: int | None = None) -> dict[str, Any]:
        guild = self.guild_id if channel_id is None else self.world.guild_of(channel_id)
        for scope in (guild, None):
            for command in self.registered_commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        have = sorted(c["name"] for cs in self.registered_commands.values() for c in cs)
        raise CommandUsageError(f"the bot did not register a slash command /{name} (registered: {have})")

    def _require_bot(self) -> None:
        if self.gateway.session is None:
            raise RuntimeError("no bot is connected to the emulator: await emu.wait_until_ready() first")

    def _require_user(self, user_id: int) -> None:
        if user_id not in self.world.users:
            raise ValueError(f"unknown user {user_id}: create users with emu.add_member()")

    def _new_interaction(self, kind: int, user_id: int, channel_id: int, **fields: Any) -> EmuInteraction:
        inter = EmuInteraction(
            id=self.world.snowflake(),
            token=f"itoken.{secrets.token_urlsafe(32)}",
            type=kind,
            user_id=user_id,
            channel_id=channel_id,
            **fields,
        )
        self.interactions.append(inter)
        self.interactions_by_id[inter.id] = inter
        self.interactions_by_token[inter.token] = inter
        return inter

    async def _send_interaction(
        self,
        inter: EmuInteraction,
        data: dict[str, Any],
        ack_timeout: float | None,
        message: dict[str, Any] | None = None,
        *,
        dm: bool = False,
    ) -> EmuInteraction:
        payload = interaction_payload(
            self.world,
            interaction_id=inter.id,
            token=inter.token,
            type=inter.type,
            data=data,
            user_id=inter.user_id,
            channel_id=inter.channel_id,
            upload_limit=self.upload_limit,
            message=message,
            dm=dm,
        )
        inter.created_at = time.monotonic()
        await self.dispatch("INTERACTION_CREATE", payload)
        if ack_timeout is not None:
            label = inter.name or inter.custom_id
            try:
                await self.wait_for(lambda: inter.responded_at is not None, ack_timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"the bot did not acknowledge interaction {label!r} within {ack_timeout}s; problems={self.problems}"
                ) from None
        return inter

    async def send_slash_command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int,
        channel_id: int | None = None,
        subcommand: str | None = None,
        group: str | None = None,
        attachments: dict[str, tuple[str, bytes, str]] | None = None,
        ack_timeout: float | None = 5.0,
        check_values: bool = True,
        dm: bool = False,
        permitted_by_server: bool = False,
    ) -> EmuInteraction:
        """A user runs ``/name`` with ``options``; typed from the command the bot registered.

        ``dm``: from a direct message with the bot (no guild, no member; ``channel_id`` is the DM's).

        A command whose ``default_member_permissions`` the member lacks is hidden from them by
        Discord's client: sending it raises :class:`CommandUsageError`, unless
        ``permitted_by_server`` (the server's integration settings granted it to them anyway, so
        the bot's own check is what stands).

        Values must fit the registered types, choices and min/max like Discord's client enforces;
        ``check_values=False`` sends them anyway (to test the bot's own checks).

        Waits until the bot acknowledges (``ack_timeout``; None: do not wait) and returns the record.
        USER/CHANNEL/ROLE options take ids; ATTACHMENT options go in
        ``attachments={"option": (filename, data, content_type)}``.
        """
        self._require_bot()
        self._require_user(user_id)
        channel = self.channel_id if channel_id is None else channel_id
        command = self._find_command(name, channel)
        required = command.get("default_member_permissions")
        if required is not None and not dm and not permitted_by_server and self.world.lacks(user_id, int(required)):
            raise CommandUsageError(
                f"/{name} needs permissions {required} (default_member_permissions): Discord's client hides it "
                f"from {self.world.users[user_id].username}"
            )
        data, _ = build_command_data(
            self.world,
            command,
            options or {},
            group=group,
            subcommand=subcommand,
            attachments=attachments,
            channel_id=channel,
            check_values=check_values,
        )
        inter = self._new_interaction(APPLICATION_COMMAND, user_id, channel, name=name)
        return await self._send_interaction(inter, data, ack_timeout, dm=dm)

    async def autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        user_id: int,
        channel_id: int | None = None,
        subcommand: str | None = None,
        group: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - the emulator bounds its own wait
    ) -> list[dict[str, Any]]:
        """A user types into option ``focused`` of ``/name``; returns the choices the bot answered with."""
        self._require_bot()
        self._require_user(user_id)
        channel = self.channel_id if channel_id is None else channel_id
        command = self._find_command(name, channel)
        data, _ = build_command_data(
            self.world,
            command,
            options,
            group=group,
            subcommand=subcommand,
            channel_id=channel,
            focused=focused,
        )
        inter = self._new_interaction(AUTOCOMPLETE, user_id, channel, name=name)
        await self._send_interaction(inter, data, timeout)
        return inter.autocomplete_choices or []

    async def click_button(
        self, message_id: int, custom_id: str, *, user_id: int, ack_timeout: float | None = 5.0
    ) -> EmuInteraction:
        """A user clicks the button ``custom_id`` on a message; fails if there is no such button."""
        self._require_bot()
        self._require_user(user_id)
        message = self.world.messages.get(message_id)
        if message is None or message.deleted:
            raise LookupError(f"no message {message_id} to click on")
        buttons = [c for c, _, _ in message.buttons() if c is not None]
        if custom_id not in buttons:
            raise LookupError(f"message {message_id} has no button {custom_id!r} (buttons: {buttons})")
        inter = self._new_interaction(
            COMPONENT, user_id, message.channel_id, custom_id=custom_id, message_id=message_id
        )
        data = {"custom_id": custom_id, "component_type": 2}
        msg_json = self._handlers.store.json(message)
        return await self._send_interaction(inter, data, ack_timeout, message=msg_json)

    async def choose_option(
        self, message_id: int, custom_id: str, values: list[str], *, user_id: int, ack_timeout: float | None = 5.0
    ) -> EmuInteraction:
        """A user picks ``values`` in the select menu ``custom_id`` on a message; fails if there is no such menu."""
        self._require_bot()
        self._require_user(user_id)
        message = self.world.messages.get(message_id)
        if message is None or message.deleted:
            raise LookupError(f"no message {message_id} to choose on")
        if custom_id not in message.component_custom_ids():
            raise LookupError(f"message {message_id} has no menu {custom_id!r}")
        inter = self._new_interaction(
            COMPONENT, user_id, message.channel_id, custom_id=custom_id, message_id=message_id
        )
        data = {"custom_id": custom_id, "component_type": 3, "values": values}
        msg_json = self._handlers.store.json(message)
        return await self._send_interaction(inter, data, ack_timeout, message=msg_json)

    async def add_reaction(self, message_id: int, emoji: str, *, user_id: int) -> None:
        """A user reacts; recorded and dispatched as MESSAGE_REACTION_ADD."""
        self._require_user(user_id)
        await self.apply_reaction(self._reactable(message_id), emoji, user_id, add=True)

    async def remove_reaction(self, message_id: int, emoji: str, *, user_id: int) -> None:
        """A user takes a reaction back; dispatched as MESSAGE_REACTION_REMOVE."""
        self._require_user(user_id)
        await self.apply_reaction(self._reactable(message_id), emoji, user_id, add=False)

    def _reactable(self, message_id: int) -> EmuMessage:
        message = self.world.messages.get(message_id)
        if message is None or message.deleted or message.ephemeral:
            raise LookupError(f"no visible message {message_id} to react to")
        return message

    async def apply_reaction(self, message: EmuMessage, emoji: str, user_id: int, *, add: bool) -> None:
        """Record a reaction change and dispatch it, if it changed anything (like Discord)."""
        users = message.reactions.setdefault(emoji, set())
        if (user_id in users) == add:
            return
        if add:
            users.add(user_id)
        else:
            users.discard(user_id)
            if not users:
                del message.reactions[emoji]
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "guild_id": str(self.world.guild_of(message.channel_id)),
            "emoji": emoji_json(emoji),
            "burst": False,
            "type": 0,
        }
        if add:
            data["member"] = self.world.member_json(user_id)
            data["message_author_id"] = str(message.author_id)
            data["burst_colors"] = []
        event = "MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE"
        await self.dispatch(event, data, intent=INTENT_GUILD_MESSAGE_REACTIONS)
        self.changed()

    async def post_message(self, content: str, *, user_id: int, channel_id: int | None = None) -> EmuMessage:
        """A user writes a plain message (dispatched as MESSAGE_CREATE)."""
        self._require_user(user_id)
        channel = self.channel_id if channel_id is None else channel_id
        message = EmuMessage(id=self.world.snowflake(), channel_id=channel, author_id=user_id, content=content)
        self.world.messages[message.id] = message
        await self._handlers.store.dispatch_message("MESSAGE_CREATE", message)
        self.changed()
        return message

    # -- plain HTTP ------------------------------------------------------------------------------

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        attachment = self.world.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        fault = self.faults.attachments.get(attachment.filename)
        if fault == "404":
            return web.Response(status=404, text="Not Found")
        if fault == "stall":
            await self.faults.stall()
            return web.Response(status=504, text="Gateway Timeout")
        return web.Response(body=attachment.data, content_type=attachment.content_type)

    async def _unknown(self, request: web.Request) -> web.Response:
        self.problem(f"unknown URL {request.method} {request.path}")
        return json_response({"message": "404: Not Found", "code": 0}, status=404)
