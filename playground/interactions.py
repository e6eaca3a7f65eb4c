"""Build INTERACTION_CREATE payloads the way Discord does, from the commands the bot registered.

A test names a command and gives option values; the option types, choices and limits come from the
command JSON the bot synced, and anything the bot did not register fails loudly.
"""

from __future__ import annotations

from typing import Any

from .records import EmuAttachment
from .state import World

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)


class CommandUsageError(LookupError):
    """The test asked for a command, option or value that the bot's registered commands do not allow."""


def _descend(
    command: dict[str, Any], group: str | None, subcommand: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Follow group/subcommand; returns (option definitions, payload list to fill, root payload list)."""
    name = command["name"]
    defs: list[dict[str, Any]] = command.get("options") or []
    root: list[dict[str, Any]] = []
    target = root
    for kind, wanted in ((SUB_COMMAND_GROUP, group), (SUB_COMMAND, subcommand)):
        if wanted is None:
            continue
        found = next((o for o in defs if o["type"] == kind and o["name"] == wanted), None)
        if found is None:
            label = "group" if kind == SUB_COMMAND_GROUP else "subcommand"
            have = [o["name"] for o in defs if o["type"] == kind]
            raise CommandUsageError(f"/{name} has no {label} {wanted!r} (registered: {have})")
        entry: dict[str, Any] = {"name": wanted, "type": kind, "options": []}
        target.append(entry)
        target = entry["options"]
        defs = found.get("options") or []
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in defs):
        have = [o["name"] for o in defs]
        raise CommandUsageError(f"/{name} needs a group/subcommand (registered: {have})")
    return defs, target, root


def _check_value(command: str, spec: dict[str, Any], value: Any) -> None:
    name = spec["name"]
    kind = spec["type"]
    ok = {
        STRING: isinstance(value, str),
        INTEGER: isinstance(value, int) and not isinstance(value, bool),
        BOOLEAN: isinstance(value, bool),
        NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
    }.get(kind, True)
    if not ok:
        raise CommandUsageError(f"/{command} option {name!r} (type {kind}) cannot take {value!r}")
    choices = spec.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise CommandUsageError(
            f"/{command} option {name!r} must be one of {[c['value'] for c in choices]}, not {value!r}"
        )
    if kind in (INTEGER, NUMBER):
        low, high = spec.get("min_value"), spec.get("max_value")
        if (low is not None and value < low) or (high is not None and value > high):
            raise CommandUsageError(f"/{command} option {name!r}={value!r} is outside [{low}, {high}]")
    if kind == STRING:
        low, high = spec.get("min_length"), spec.get("max_length", 6000)
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            raise CommandUsageError(f"/{command} option {name!r} length {len(value)} outside [{low}, {high}]")


def build_command_data(
    world: World,
    command: dict[str, Any],
    options: dict[str, Any],
    *,
    group: str | None = None,
    subcommand: str | None = None,
    attachments: dict[str, tuple[str, bytes, str]] | None = None,
    channel_id: int,
    focused: str | None = None,
    check_values: bool = True,
) -> tuple[dict[str, Any], list[EmuAttachment]]:
    """The ``data`` of an APPLICATION_COMMAND (or, with ``focused``, AUTOCOMPLETE) interaction.

    With ``check_values`` (the default) values must fit the registered type, choices and limits,
    as Discord's client enforces; turn it off to send what a modified client could.
    """
    name = command["name"]
    defs, target, root = _descend(command, group, subcommand)
    by_name = {o["name"]: o for o in defs}
    given: dict[str, Any] = dict(options)
    for key in attachments or {}:
        if key in given:
            raise CommandUsageError(f"/{name} option {key!r} given both as a value and as an attachment")
    resolved: dict[str, dict[str, Any]] = {}
    uploaded: list[EmuAttachment] = []

    for key in [*given, *(attachments or {})]:
        if key not in by_name:
            raise CommandUsageError(f"/{name} has no option {key!r} (registered: {list(by_name)})")
    if focused is not None:
        if focused not in by_name or not by_name[focused].get("autocomplete"):
            raise CommandUsageError(f"/{name} option {focused!r} is not registered with autocomplete")
        if focused not in given:
            raise CommandUsageError(f"autocomplete: give the typed text for {focused!r} in options")
    else:
        missing = [o["name"] for o in defs if o.get("required") and o["name"] not in given]
        missing = [m for m in missing if m not in (attachments or {})]
        if missing:
            raise CommandUsageError(f"/{name} is missing required options {missing}")

    for spec in defs:  # Discord sends options in the registered order
        key = spec["name"]
        kind = spec["type"]
        if attachments and key in attachments:
            if kind != ATTACHMENT:
                raise CommandUsageError(f"/{name} option {key!r} is not an attachment option")
            filename, file_data, content_type = attachments[key]
            att = world.new_attachment(channel_id, filename, file_data)
            att.content_type = content_type or att.content_type
            uploaded.append(att)
            entry = {**world.attachment_json(att), "ephemeral": True}
            resolved.setdefault("attachments", {})[str(att.id)] = entry
            target.append({"name": key, "type": kind, "value": str(att.id)})
            continue
        if key not in given:
            continue
        value = given[key]
        item: dict[str, Any] = {"name": key, "type": kind}
        if key == focused:
            item["focused"] = True
            item["value"] = value if isinstance(value, str) else str(value)
            target.append(item)
            continue
        if kind == ATTACHMENT:
            raise CommandUsageError(f"/{name} option {key!r} is an attachment: pass it in attachments=")
        if kind in (USER, CHANNEL, ROLE, MENTIONABLE):
            value = _resolve_entity(world, name, key, kind, int(value), resolved)
        else:
            if check_values:
                _check_value(name, spec, value)
        item["value"] = value
        target.append(item)

    data: dict[str, Any] = {
        "id": command["id"],
        "name": name,
        "type": command.get("type", 1),
        "options": root,
    }
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    if resolved:
        data["resolved"] = resolved
    return data, uploaded


def _resolve_entity(
    world: World, command: str, key: str, kind: int, entity_id: int, resolved: dict[str, dict[str, Any]]
) -> str:
    if kind in (USER, MENTIONABLE) and entity_id in world.users:
        resolved.setdefault("users", {})[str(entity_id)] = world.users[entity_id].to_json()
        member = world.member_json(entity_id, with_permissions=True)
        member.pop("user")
        resolved.setdefault("members", {})[str(entity_id)] = member
    elif kind in (ROLE, MENTIONABLE) and entity_id in world.roles:
        resolved.setdefault("roles", {})[str(entity_id)] = world.roles[entity_id].to_json()
    elif kind == CHANNEL and entity_id in world.channels:
        channel = world.channel_json(entity_id)
        channel["permissions"] = str(world.permissions(world.bot_user_id))
        resolved.setdefault("channels", {})[str(entity_id)] = channel
    else:
        raise CommandUsageError(f"/{command} option {key!r}: no such user/role/channel {entity_id}")
    return str(entity_id)


def interaction_payload(
    world: World,
    *,
    interaction_id: int,
    token: str,
    type: int,
    data: dict[str, Any],
    user_id: int,
    channel_id: int,
    upload_limit: int,
    message: dict[str, Any] | None = None,
    dm: bool = False,
) -> dict[str, Any]:
    """A full INTERACTION_CREATE ``d`` for a guild interaction (``dm``: from a DM with the bot instead)."""
    channel = world.channel_json(channel_id)
    guild_id = world.guild_of(channel_id)
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(world.application_id),
        "type": type,
        "data": data,
        "guild_id": str(guild_id),
        "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
        "channel_id": str(channel_id),
        "channel": channel,
        "member": world.member_json(user_id, with_permissions=True, guild_id=guild_id),
        "token": token,
        "version": 1,
        "app_permissions": str(world.permissions(world.bot_user_id)),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(guild_id)},
        "context": 0,
        "attachment_size_limit": upload_limit,
    }
    if dm:
        for key in ("guild_id", "guild", "member", "guild_locale"):
            payload.pop(key)
        payload["user"] = world.users[user_id].to_json()
        payload["channel"] = {"id": str(channel_id), "type": 1, "recipients": [world.users[user_id].to_json()]}
        payload["context"] = 1
        payload["authorizing_integration_owners"] = {"1": str(user_id)}
    if message is not None:
        payload["message"] = message
    return payload
