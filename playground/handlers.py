"""Handlers for the REST routes the emulator implements, keyed by (method, spec path template).

Messages (channel messages, interaction responses, followups) all go through :class:`MessageStore`,
which enforces Discord's cheap limits, links uploaded files to ``attachments`` and dispatches
MESSAGE_CREATE / MESSAGE_UPDATE / MESSAGE_DELETE to the bot like Discord does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .core import EmulatorCore
from .gateway import INTENT_GUILD_MESSAGE_REACTIONS, INTENT_GUILD_MESSAGES, INTENT_MESSAGE_CONTENT
from .records import EPHEMERAL_FLAG, LOADING_FLAG, EmuAttachment, EmuInteraction, EmuMessage
from .rest import ApiCall, DiscordError, json_response
from .state import emoji_json, normalise_emoji

Handler = Callable[[ApiCall], Awaitable[web.Response]]

SUPPRESS_EMBEDS = 1 << 2
MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
APPLICATION_COMMAND, COMPONENT, AUTOCOMPLETE = 2, 3, 4
ALLOWED_CALLBACKS = {APPLICATION_COMMAND: {4, 5, 9}, COMPONENT: {4, 5, 6, 7, 9}, AUTOCOMPLETE: {8}}


def no_content() -> web.Response:
    return web.Response(status=204)


def _embed_chars(embed: dict[str, Any]) -> int:
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text") or "") + len((embed.get("author") or {}).get("name") or "")
    for f in embed.get("fields") or []:
        total += len(f.get("name") or "") + len(f.get("value") or "")
    return total


def _assign_component_ids(components: list[dict[str, Any]], counter: list[int]) -> list[dict[str, Any]]:
    """Discord numbers every component of a message (1, 2, ...) when the sender did not."""
    out = []
    for component in components:
        item = dict(component)
        if "id" not in item:
            counter[0] += 1
            item["id"] = counter[0]
        if isinstance(item.get("components"), list):
            item["components"] = _assign_component_ids(item["components"], counter)
        out.append(item)
    return out


class MessageStore:
    """Creates, edits and deletes messages, with Discord's checks and gateway events."""

    def __init__(self, emu: EmulatorCore) -> None:
        self.emu = emu

    def get(self, message_id: int, channel_id: int | None = None) -> EmuMessage:
        message = self.emu.world.messages.get(message_id)
        if message is None or message.deleted or (channel_id is not None and message.channel_id != channel_id):
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    def _check_limits(self, where: str, body: dict[str, Any]) -> None:
        content = body.get("content")
        if content is not None and len(content) > MAX_CONTENT:
            raise DiscordError(
                400,
                50035,
                "Invalid Form Body",
                problem=f"{where}: content is {len(content)} chars (> {MAX_CONTENT})",
            )
        embeds = body.get("embeds") or []
        if len(embeds) > MAX_EMBEDS:
            raise DiscordError(400, 50035, "Invalid Form Body", problem=f"{where}: {len(embeds)} embeds (> 10)")
        total = sum(_embed_chars(e) for e in embeds)
        if total > MAX_EMBED_TOTAL:
            raise DiscordError(
                400,
                50035,
                "Invalid Form Body",
                problem=f"{where}: embeds total {total} chars (> {MAX_EMBED_TOTAL})",
            )

    def _attachments(
        self,
        where: str,
        channel_id: int,
        body: dict[str, Any],
        files: dict[int, tuple[str, bytes]],
        existing: list[EmuAttachment],
    ) -> list[EmuAttachment] | None:
        """The message's attachments after this request, or None when it does not change them."""
        if "attachments" not in body and not files:
            return None
        world = self.emu.world
        result: list[EmuAttachment] = [] if "attachments" in body else list(existing)
        used: set[int] = set()
        kept = {a.id: a for a in existing}
        for entry in body.get("attachments") or []:
            ident = int(entry["id"])
            if ident in files and ident not in used:
                filename, data = files[ident]
                used.add(ident)
                att = world.new_attachment(
                    channel_id, entry.get("filename") or filename, data, entry.get("description")
                )
                result.append(att)
            elif ident in kept:
                kept_att = kept[ident]
                if entry.get("description") is not None:
                    kept_att.description = entry["description"]
                result.append(kept_att)
            else:
                raise DiscordError(
                    400,
                    50035,
                    "Invalid Form Body",
                    problem=f"{where}: attachments entry id {entry['id']} matches no file or existing attachment",
                )
        for index, (filename, data) in sorted(files.items()):
            if index not in used:
                result.append(world.new_attachment(channel_id, filename, data))
        if len(result) > 10:
            raise DiscordError(400, 50035, "Invalid Form Body", problem=f"{where}: {len(result)} attachments (> 10)")
        return result

    async def create(
        self,
        where: str,
        channel_id: int,
        author_id: int,
        body: dict[str, Any],
        files: dict[int, tuple[str, bytes]],
        *,
        interaction: EmuInteraction | None = None,
        extra_flags: int = 0,
        allow_empty: bool = False,
    ) -> EmuMessage:
        emu = self.emu
        world = emu.world
        if channel_id not in world.channels:
            raise DiscordError(404, 10003, "Unknown Channel", problem=f"{where}: unknown channel {channel_id}")
        self._check_limits(where, body)
        attachments = self._attachments(where, channel_id, body, files, []) or []
        flags = int(body.get("flags") or 0) | extra_flags
        if interaction is None and flags & EPHEMERAL_FLAG:
            raise DiscordError(
                400,
                50035,
                "Invalid Form Body",
                problem=f"{where}: only interaction responses can be ephemeral",
            )
        message = EmuMessage(
            id=world.snowflake(),
            channel_id=channel_id,
            author_id=author_id,
            content=body.get("content") or "",
            embeds=list(body.get("embeds") or []),
            attachments=attachments,
            components=_assign_component_ids(list(body.get("components") or []), [0]),
            flags=flags,
            allowed_mentions=body.get("allowed_mentions"),
            tts=bool(body.get("tts")),
        )
        if interaction is not None:
            message.interaction_id = interaction.id
            message.webhook_id = world.application_id
            message.type = 20 if interaction.type == APPLICATION_COMMAND else 0
        reference = body.get("message_reference")
        if reference and reference.get("message_id"):
            ref_id = int(reference["message_id"])
            if ref_id not in world.messages and reference.get("fail_if_not_exists", True):
                raise DiscordError(400, 50035, "Invalid Form Body")
            message.reference_id = ref_id
            message.type = 19
        empty = not (
            message.content
            or message.embeds
            or message.attachments
            or message.components
            or body.get("sticker_ids")
            or body.get("poll")
        )
        if empty and not allow_empty:
            raise DiscordError(400, 50006, "Cannot send an empty message", problem=f"{where}: empty message")
        world.messages[message.id] = message
        await self.dispatch_message("MESSAGE_CREATE", message)
        return message

    async def edit(
        self,
        where: str,
        message: EmuMessage,
        body: dict[str, Any],
        files: dict[int, tuple[str, bytes]],
    ) -> EmuMessage:
        self._check_limits(where, body)
        attachments = self._attachments(where, message.channel_id, body, files, message.attachments)
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "components" in body:
            message.components = _assign_component_ids(list(body["components"] or []), [0])
        if "allowed_mentions" in body:
            message.allowed_mentions = body["allowed_mentions"]
        if attachments is not None:
            message.attachments = attachments
        if body.get("flags") is not None:
            keep = message.flags & ~SUPPRESS_EMBEDS & ~LOADING_FLAG
            message.flags = keep | (int(body["flags"]) & SUPPRESS_EMBEDS)
        message.flags &= ~LOADING_FLAG
        message.edit_count += 1
        message.edited_at = time.monotonic()
        await self.dispatch_message("MESSAGE_UPDATE", message)
        return message

    async def delete(self, message: EmuMessage) -> None:
        message.deleted = True
        message.edited_at = time.monotonic()
        if not message.ephemeral:
            emu = self.emu
            await emu.dispatch(
                "MESSAGE_DELETE",
                {
                    "id": str(message.id),
                    "channel_id": str(message.channel_id),
                    "guild_id": str(emu.world.guild_of(message.channel_id)),
                },
                intent=INTENT_GUILD_MESSAGES,
            )

    async def dispatch_message(self, event: str, message: EmuMessage) -> None:
        """MESSAGE_CREATE/UPDATE as the bot would see it (no content without the intent)."""
        emu = self.emu
        if message.ephemeral or emu.gateway.session is None:
            return
        data = self.json(message, with_member=True)
        world = emu.world
        exempt = message.author_id == world.bot_user_id or world.bot_user_id in world.mention_ids(message)
        if not exempt and not emu.gateway.has_intent(INTENT_MESSAGE_CONTENT):
            data.update(content="", embeds=[], attachments=[], components=[])
        await emu.dispatch(event, data, intent=INTENT_GUILD_MESSAGES)

    def json(self, message: EmuMessage, *, with_member: bool = False) -> dict[str, Any]:
        emu = self.emu
        data = emu.world.message_json(message, with_member=with_member)
        if message.interaction_id is not None:
            inter = emu.interaction(message.interaction_id)
            user = emu.world.users[inter.user_id].to_json()
            data["interaction_metadata"] = {
                "id": str(inter.id),
                "type": inter.type,
                "user": user,
                "authorizing_integration_owners": {"0": str(emu.world.guild_id)},
            }
            if inter.type == APPLICATION_COMMAND:
                data["interaction_metadata"]["name"] = inter.name
                data["interaction"] = {
                    "id": str(inter.id),
                    "type": inter.type,
                    "name": inter.name,
                    "user": user,
                }
            elif inter.message_id is not None:
                data["interaction_metadata"]["interacted_message_id"] = str(inter.message_id)
        return data


class Handlers:
    """All implemented routes. ``routes()`` maps (METHOD, spec template) to a handler."""

    def __init__(self, emu: EmulatorCore) -> None:
        self.emu = emu
        self.store = MessageStore(emu)

    def routes(self) -> dict[tuple[str, str], Handler]:
        msg = "/channels/{channel_id}/messages/{message_id}"
        react = msg + "/reactions/{emoji_name}"
        hook = "/webhooks/{webhook_id}/{webhook_token}"
        app = "/applications/{application_id}"
        return {
            ("GET", "/users/@me"): self.get_me,
            ("GET", "/users/{user_id}"): self.get_user,
            ("GET", "/gateway"): self.get_gateway,
            ("GET", "/gateway/bot"): self.get_gateway,
            ("GET", "/oauth2/applications/@me"): self.get_application,
            ("GET", "/applications/@me"): self.get_application,
            ("GET", app + "/commands"): self.list_commands,
            ("PUT", app + "/commands"): self.put_commands,
            ("POST", app + "/commands"): self.create_command,
            ("DELETE", app + "/commands/{command_id}"): self.delete_command,
            ("GET", app + "/guilds/{guild_id}/commands"): self.list_commands,
            ("PUT", app + "/guilds/{guild_id}/commands"): self.put_commands,
            ("POST", app + "/guilds/{guild_id}/commands"): self.create_command,
            ("DELETE", app + "/guilds/{guild_id}/commands/{command_id}"): self.delete_command,
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback"): self.callback,
            ("POST", hook): self.followup,
            ("GET", hook + "/messages/@original"): self.get_webhook_message,
            ("PATCH", hook + "/messages/@original"): self.edit_webhook_message,
            ("DELETE", hook + "/messages/@original"): self.delete_webhook_message,
            ("GET", hook + "/messages/{message_id}"): self.get_webhook_message,
            ("PATCH", hook + "/messages/{message_id}"): self.edit_webhook_message,
            ("DELETE", hook + "/messages/{message_id}"): self.delete_webhook_message,
            ("GET", "/channels/{channel_id}"): self.get_channel,
            ("POST", "/channels/{channel_id}/typing"): self.typing,
            ("GET", "/channels/{channel_id}/messages"): self.list_messages,
            ("POST", "/channels/{channel_id}/messages"): self.create_message,
            ("GET", msg): self.get_message,
            ("PATCH", msg): self.edit_message,
            ("DELETE", msg): self.delete_message,
            ("PUT", react + "/@me"): self.add_own_reaction,
            ("DELETE", react + "/@me"): self.remove_reaction,
            ("DELETE", react + "/{user_id}"): self.remove_reaction,
            ("GET", react): self.list_reactions,
            ("DELETE", react): self.clear_reactions,
            ("DELETE", msg + "/reactions"): self.clear_reactions,
            ("GET", "/guilds/{guild_id}/members/{user_id}"): self.get_member,
        }

    # -- identity --------------------------------------------------------------------------------

    async def get_me(self, call: ApiCall) -> web.Response:
        world = self.emu.world
        me = world.users[world.bot_user_id].to_json()
        return json_response({**me, "verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})

    async def get_user(self, call: ApiCall) -> web.Response:
        user = self.emu.world.users.get(call.snowflake("user_id"))
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return json_response(user.to_json())

    async def get_member(self, call: ApiCall) -> web.Response:
        world = self.emu.world
        user_id = call.snowflake("user_id")
        if call.snowflake("guild_id") not in world.guild_ids or user_id not in world.users:
            raise DiscordError(404, 10007, "Unknown Member")
        return json_response(world.member_json(user_id))

    async def get_gateway(self, call: ApiCall) -> web.Response:
        limits = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.emu.gateway_url, "shards": 1, "session_start_limit": limits})

    async def get_application(self, call: ApiCall) -> web.Response:
        world = self.emu.world
        bot = world.users[world.bot_user_id].to_json()
        return json_response(
            {
                "id": str(world.application_id),
                "name": bot["username"],
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot": bot,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": world.users[world.owner_id].to_json(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "rpc_origins": [],
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
            }
        )

    # -- application commands --------------------------------------------------------------------

    def _command_scope(self, call: ApiCall) -> int | None:
        world = self.emu.world
        if call.snowflake("application_id") != world.application_id:
            raise DiscordError(403, 50001, "Missing Access", problem=f"{call.template}: wrong application id")
        if "guild_id" in call.params:
            guild_id = call.snowflake("guild_id")
            if guild_id not in world.guild_ids:
                raise DiscordError(403, 50001, "Missing Access", problem=f"{call.template}: unknown guild")
            return guild_id
        return None

    def _command_json(self, body: dict[str, Any], guild_id: int | None, old: dict[str, Any] | None) -> dict[str, Any]:
        world = self.emu.world
        command = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **{k: v for k, v in body.items() if v is not None},
            "id": old["id"] if old else str(world.snowflake()),
            "application_id": str(world.application_id),
            "version": str(world.snowflake()),
        }
        if command["default_member_permissions"] is not None:  # Discord answers with a string of bits
            command["default_member_permissions"] = str(int(command["default_member_permissions"]))
        if guild_id is not None:
            command["guild_id"] = str(guild_id)
        else:
            command.setdefault("integration_types", [0])
            command.setdefault("contexts", None)
        return command

    async def list_commands(self, call: ApiCall) -> web.Response:
        scope = self._command_scope(call)
        return json_response(self.emu.registered_commands.get(scope, []))

    async def put_commands(self, call: ApiCall) -> web.Response:
        scope = self._command_scope(call)
        body = call.body or []
        old = {(c["name"], c.get("type", 1)): c for c in self.emu.registered_commands.get(scope, [])}
        names = [(c["name"], c.get("type", 1)) for c in body]
        if len(set(names)) != len(names):
            raise DiscordError(400, 50035, "Invalid Form Body", problem=f"{call.template}: duplicate command names")
        commands = [self._command_json(c, scope, old.get((c["name"], c.get("type", 1)))) for c in body]
        self.emu.registered_commands[scope] = commands
        return json_response(commands)

    async def create_command(self, call: ApiCall) -> web.Response:
        scope = self._command_scope(call)
        existing = self.emu.registered_commands.setdefault(scope, [])
        key = (call.body["name"], call.body.get("type", 1))
        old = next((c for c in existing if (c["name"], c.get("type", 1)) == key), None)
        command = self._command_json(call.body, scope, old)
        if old is not None:
            existing[existing.index(old)] = command
            return json_response(command)
        existing.append(command)
        return json_response(command, status=201)

    async def delete_command(self, call: ApiCall) -> web.Response:
        scope = self._command_scope(call)
        existing = self.emu.registered_commands.get(scope, [])
        command_id = call.params["command_id"]
        if not any(c["id"] == command_id for c in existing):
            raise DiscordError(404, 10063, "Unknown application command")
        self.emu.registered_commands[scope] = [c for c in existing if c["id"] != command_id]
        return no_content()

    # -- interactions ----------------------------------------------------------------------------

    def _interaction_by_id(self, call: ApiCall) -> EmuInteraction:
        emu = self.emu
        inter = emu.interactions_by_id.get(call.snowflake("interaction_id"))
        if inter is None or inter.token != call.params["interaction_token"]:
            raise DiscordError(
                404,
                10062,
                "Unknown interaction",
                problem=f"callback for an unknown interaction {call.params['interaction_id']}",
            )
        if inter.expired:
            raise DiscordError(404, 10062, "Unknown interaction")
        return inter

    async def callback(self, call: ApiCall) -> web.Response:
        emu = self.emu
        inter = self._interaction_by_id(call)
        where = f"interaction callback for {inter.name or inter.custom_id}"
        if inter.responded_at is not None:
            raise DiscordError(
                400,
                40060,
                "Interaction has already been acknowledged.",
                problem=f"{where}: acknowledged twice",
            )
        late = time.monotonic() - inter.created_at
        if late > emu.ack_deadline:
            raise DiscordError(
                404,
                10062,
                "Unknown interaction",
                problem=f"{where}: first response after {late:.2f}s (> {emu.ack_deadline}s)",
            )
        kind = int(call.body["type"])
        if kind not in ALLOWED_CALLBACKS.get(inter.type, set()):
            raise DiscordError(
                400,
                50035,
                "Invalid Form Body",
                problem=f"{where}: callback type {kind} is not valid for interaction type {inter.type}",
            )
        data: dict[str, Any] = call.body.get("data") or {}
        message: EmuMessage | None = None
        if kind == 4:
            message = await self.store.create(
                where, inter.channel_id, emu.world.bot_user_id, data, call.files, interaction=inter
            )
            inter.original = message
        elif kind == 5:
            flags = LOADING_FLAG | (int(data.get("flags") or 0) & EPHEMERAL_FLAG)
            message = await self.store.create(
                where,
                inter.channel_id,
                emu.world.bot_user_id,
                {},
                {},
                interaction=inter,
                extra_flags=flags,
                allow_empty=True,
            )
            inter.original = message
        elif kind in (6, 7):
            message = self.store.get(inter.message_id or 0)
            inter.original = message
            if kind == 7:
                await self.store.edit(where, message, data, call.files)
        elif kind == 8:
            inter.autocomplete_choices = list(data.get("choices") or [])
        elif kind == 9:
            inter.modal = data
        inter.response_type = kind
        inter.responded_at = call.received_at  # when Discord got the answer: its 3 s deadline is measured so
        inter.ephemeral = bool(message is not None and message.ephemeral)
        if call.query.get("with_response") not in ("1", "true", "True"):
            return no_content()
        summary: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        if message is not None and kind in (4, 5, 7):
            summary.update(
                response_message_id=str(message.id),
                response_message_loading=kind == 5,
                response_message_ephemeral=message.ephemeral,
            )
        result: dict[str, Any] = {"interaction": summary}
        if message is not None and kind in (4, 7):
            result["resource"] = {"type": kind, "message": self.store.json(message)}
        return json_response(result)

    def _interaction_by_token(self, call: ApiCall) -> EmuInteraction:
        emu = self.emu
        if call.params["webhook_id"] != str(emu.world.application_id):
            raise DiscordError(404, 10015, "Unknown Webhook", problem=f"{call.template}: not the application id")
        inter = emu.interactions_by_token.get(call.params["webhook_token"])
        if inter is None:
            raise DiscordError(404, 10015, "Unknown Webhook", problem=f"{call.template}: unknown interaction token")
        if inter.expired or time.monotonic() - inter.created_at > emu.token_lifetime:
            raise DiscordError(401, 50027, "Invalid Webhook Token")  # Discord's answer; handling it is the bot's job
        if inter.responded_at is None:
            raise DiscordError(
                404,
                10015,
                "Unknown Webhook",
                problem=f"{call.method} {call.template} before the interaction was acknowledged",
            )
        return inter

    def _webhook_target(self, call: ApiCall, inter: EmuInteraction) -> EmuMessage:
        if call.template.endswith("@original"):
            if inter.original is None:
                raise DiscordError(
                    404,
                    10008,
                    "Unknown Message",
                    problem=f"{call.method} @original: interaction has no response message",
                )
            if inter.original.deleted:
                raise DiscordError(404, 10008, "Unknown Message")
            return inter.original
        message_id = call.snowflake("message_id")
        mine = [m for m in [inter.original, *inter.followups] if m is not None and m.id == message_id]
        if not mine or mine[0].deleted:
            raise DiscordError(404, 10008, "Unknown Message")
        return mine[0]

    async def followup(self, call: ApiCall) -> web.Response:
        emu = self.emu
        inter = self._interaction_by_token(call)
        where = f"followup for {inter.name or inter.custom_id}"
        original = inter.original
        if inter.response_type == 5 and original is not None and original.loading and not original.deleted:
            # Discord fills the "thinking..." message with the first followup after a defer.
            message = await self.store.edit(where, original, call.body, call.files)
            if not (message.content or message.embeds or message.attachments or message.components):
                raise DiscordError(400, 50006, "Cannot send an empty message", problem=f"{where}: empty message")
        else:
            message = await self.store.create(
                where, inter.channel_id, emu.world.bot_user_id, call.body, call.files, interaction=inter
            )
        inter.followups.append(message)
        if call.query.get("wait") in ("1", "true", "True"):
            return json_response(self.store.json(message))
        return no_content()

    async def get_webhook_message(self, call: ApiCall) -> web.Response:
        inter = self._interaction_by_token(call)
        return json_response(self.store.json(self._webhook_target(call, inter)))

    async def edit_webhook_message(self, call: ApiCall) -> web.Response:
        inter = self._interaction_by_token(call)
        message = self._webhook_target(call, inter)
        await self.store.edit(f"edit of {inter.name or inter.custom_id} response", message, call.body, call.files)
        return json_response(self.store.json(message))

    async def delete_webhook_message(self, call: ApiCall) -> web.Response:
        inter = self._interaction_by_token(call)
        await self.store.delete(self._webhook_target(call, inter))
        return no_content()

    # -- channels and messages -------------------------------------------------------------------

    def _channel(self, call: ApiCall) -> int:
        channel_id = call.snowflake("channel_id")
        if channel_id not in self.emu.world.channels:
            raise DiscordError(404, 10003, "Unknown Channel", problem=f"{call.template}: unknown channel {channel_id}")
        return channel_id

    async def get_channel(self, call: ApiCall) -> web.Response:
        return json_response(self.emu.world.channel_json(self._channel(call)))

    async def typing(self, call: ApiCall) -> web.Response:
        self._channel(call)
        return no_content()

    async def list_messages(self, call: ApiCall) -> web.Response:
        channel_id = self._channel(call)
        limit = max(1, min(100, int(call.query.get("limit", 50))))
        found = [
            m
            for m in self.emu.world.messages.values()
            if m.channel_id == channel_id and not m.deleted and not m.ephemeral
        ]
        if "before" in call.query:
            found = [m for m in found if m.id < int(call.query["before"])]
        if "after" in call.query:
            found = [m for m in found if m.id > int(call.query["after"])][:limit]
        newest_first = sorted(found, key=lambda m: m.id, reverse=True)[:limit]
        return json_response([self.store.json(m) for m in newest_first])

    async def create_message(self, call: ApiCall) -> web.Response:
        channel_id = self._channel(call)
        message = await self.store.create(
            f"POST {call.template}", channel_id, self.emu.world.bot_user_id, call.body, call.files
        )
        return json_response(self.store.json(message))

    async def get_message(self, call: ApiCall) -> web.Response:
        message = self.store.get(call.snowflake("message_id"), self._channel(call))
        if message.ephemeral:
            raise DiscordError(404, 10008, "Unknown Message")
        return json_response(self.store.json(message))

    async def edit_message(self, call: ApiCall) -> web.Response:
        message = self.store.get(call.snowflake("message_id"), self._channel(call))
        if message.author_id != self.emu.world.bot_user_id or message.webhook_id is not None:
            raise DiscordError(
                403,
                50005,
                "Cannot edit a message authored by another user",
                problem=f"PATCH message {message.id}: not a message the bot sent itself",
            )
        await self.store.edit(f"PATCH {call.template}", message, call.body, call.files)
        return json_response(self.store.json(message))

    async def delete_message(self, call: ApiCall) -> web.Response:
        message = self.store.get(call.snowflake("message_id"), self._channel(call))
        await self.store.delete(message)
        return no_content()

    # -- reactions -------------------------------------------------------------------------------

    def _reaction_target(self, call: ApiCall) -> tuple[EmuMessage, str]:
        message = self.store.get(call.snowflake("message_id"), self._channel(call))
        if message.ephemeral:
            raise DiscordError(404, 10008, "Unknown Message")
        return message, normalise_emoji(call.params["emoji_name"])

    async def add_own_reaction(self, call: ApiCall) -> web.Response:
        message, emoji = self._reaction_target(call)
        if not emoji:
            raise DiscordError(400, 10014, "Unknown Emoji", problem=f"{call.template}: empty emoji")
        await self.emu.apply_reaction(message, emoji, self.emu.world.bot_user_id, add=True)
        return no_content()

    async def remove_reaction(self, call: ApiCall) -> web.Response:
        message, emoji = self._reaction_target(call)
        user_id = self.emu.world.bot_user_id if call.template.endswith("@me") else call.snowflake("user_id")
        await self.emu.apply_reaction(message, emoji, user_id, add=False)
        return no_content()

    async def list_reactions(self, call: ApiCall) -> web.Response:
        message, emoji = self._reaction_target(call)
        users = sorted(message.reactions.get(emoji, set()))
        after = int(call.query.get("after", 0))
        limit = max(1, min(100, int(call.query.get("limit", 25))))
        world = self.emu.world
        return json_response([world.users[u].to_json() for u in users if u > after][:limit])

    async def clear_reactions(self, call: ApiCall) -> web.Response:
        message = self.store.get(call.snowflake("message_id"), self._channel(call))
        emu = self.emu
        emojis = [normalise_emoji(call.params["emoji_name"])] if "emoji_name" in call.params else []
        base = {
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "guild_id": str(emu.world.guild_of(message.channel_id)),
        }
        if emojis:
            message.reactions.pop(emojis[0], None)
            await emu.dispatch(
                "MESSAGE_REACTION_REMOVE_EMOJI",
                {**base, "emoji": emoji_json(emojis[0])},
                intent=INTENT_GUILD_MESSAGE_REACTIONS,
            )
        else:
            message.reactions.clear()
            await emu.dispatch("MESSAGE_REACTION_REMOVE_ALL", base, intent=INTENT_GUILD_MESSAGE_REACTIONS)
        return no_content()
