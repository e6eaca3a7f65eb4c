"""The emulated world: one guild with channels, roles and members, and Discord-shaped JSON for them.

Everything here is synchronous and in memory; the gateway and REST modules read and change it.
"""

from __future__ import annotations

import io
import itertools
import mimetypes
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .records import EmuAttachment, EmuMessage

DISCORD_EPOCH_MS = 1420070400000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
#: The channel type of a public thread.
PUBLIC_THREAD = 11
SEND_MESSAGES_IN_THREADS = 1 << 38
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 53) - 1

EVERYONE_PERMISSIONS = (
    ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_MESSAGES
MODERATOR_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_MESSAGES


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


class SnowflakeFactory:
    """Discord-style snowflakes from the current time that strictly increase."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        now_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = max(now_ms << 22, self._last + 1)
        self._last = value
        return value


@dataclass
class User:
    id: int
    username: str
    bot: bool = False
    role_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=iso_now)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": None if self.bot else self.username,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class Role:
    id: int
    name: str
    permissions: int
    position: int
    managed: bool = False
    bot_id: int | None = None
    #: The guild the role belongs to (None: the main guild).
    guild_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class Channel:
    id: int
    name: str
    position: int
    nsfw: bool = False
    type: int = 0
    #: The guild the channel belongs to (None: the main guild).
    guild_id: int | None = None
    #: A thread's channel (type 11, a public thread); None for channels.
    parent_id: int | None = None

    def to_json(self, guild_id: int) -> dict[str, Any]:
        if self.type == PUBLIC_THREAD:
            return {
                "id": str(self.id),
                "type": self.type,
                "guild_id": str(guild_id),
                "parent_id": str(self.parent_id),
                "owner_id": str(self.parent_id),
                "name": self.name,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "message_count": 0,
                "member_count": 1,
                "flags": 0,
                "thread_metadata": {
                    "archived": False, "auto_archive_duration": 1440,
                    "archive_timestamp": "2024-01-01T00:00:00+00:00", "locked": False,
                },
            }
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": self.nsfw,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


def sniff_content_type(filename: str, data: bytes) -> str:
    """What Discord would report: detected from the bytes for common images, else from the name."""
    signatures = {
        b"\x89PNG\r\n\x1a\n": "image/png",
        b"\xff\xd8\xff": "image/jpeg",
        b"GIF87a": "image/gif",
        b"GIF89a": "image/gif",
    }
    for magic, kind in signatures.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def image_size(content_type: str, data: bytes) -> tuple[int | None, int | None]:
    """Width and height of an image attachment (header only), or (None, None)."""
    if not content_type.startswith("image/"):
        return None, None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return img.width, img.height
    except Exception:
        return None, None


_USER_MENTION = re.compile(r"<@!?(\d+)>")


class World:
    """The guild, its people and channels, and every message and attachment ever sent."""

    def __init__(self, base_url: str = "") -> None:
        self.snowflake = SnowflakeFactory()
        self.base_url = base_url
        self.guild_id = self.snowflake()
        self.application_id = self.snowflake()
        self.bot_user_id = self.application_id  # Discord bots share the application's id
        self.owner_id = self.snowflake()
        self.users: dict[int, User] = {}
        self.roles: dict[int, Role] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, EmuMessage] = {}
        self.attachments: dict[int, EmuAttachment] = {}
        self._channel_positions = itertools.count()
        #: More guilds the bot is in (id -> name), each with its own channel; see :meth:`add_guild`.
        self.extra_guilds: dict[int, str] = {}

        self.roles[self.guild_id] = Role(self.guild_id, "@everyone", EVERYONE_PERMISSIONS, 0)
        self.moderator_role_id = self.snowflake()
        self.roles[self.moderator_role_id] = Role(self.moderator_role_id, "Moderator", MODERATOR_PERMISSIONS, 1)
        self.bot_role_id = self.snowflake()
        self.roles[self.bot_role_id] = Role(
            self.bot_role_id, "Bot", BOT_PERMISSIONS, 2, managed=True, bot_id=self.bot_user_id
        )
        self.users[self.bot_user_id] = User(self.bot_user_id, "panelbot", bot=True, role_ids=[self.bot_role_id])
        self.users[self.owner_id] = User(self.owner_id, "owner")
        self.channel_id = self.add_channel("general")
        self.nsfw_channel_id = self.add_channel("nsfw-art", nsfw=True)

    # -- model changes ---------------------------------------------------------------------------

    def add_channel(self, name: str, *, nsfw: bool = False, guild_id: int | None = None) -> int:
        channel_id = self.snowflake()
        guild = None if guild_id == self.guild_id else guild_id
        self.channels[channel_id] = Channel(channel_id, name, next(self._channel_positions), nsfw=nsfw, guild_id=guild)
        return channel_id

    def add_guild(self, name: str) -> tuple[int, int]:
        """Another guild the bot is in, with an @everyone role and a #general; returns (guild id, channel id).

        Every member is in every guild; the moderator role exists in the main guild only.
        """
        guild_id = self.snowflake()
        self.extra_guilds[guild_id] = name
        self.roles[guild_id] = Role(guild_id, "@everyone", EVERYONE_PERMISSIONS, 0, guild_id=guild_id)
        return guild_id, self.add_channel("general", guild_id=guild_id)

    @property
    def guild_ids(self) -> list[int]:
        """Every guild the bot is in, the main one first."""
        return [self.guild_id, *self.extra_guilds]

    def guild_of(self, channel_id: int) -> int:
        """The guild a channel belongs to (the main guild for unknown channels)."""
        channel = self.channels.get(channel_id)
        return channel.guild_id if channel is not None and channel.guild_id is not None else self.guild_id

    def add_thread(self, parent_id: int, name: str) -> int:
        """A public thread in channel ``parent_id`` (add it before the bot connects: it comes with the guild)."""
        thread_id = self.snowflake()
        self.channels[thread_id] = Channel(thread_id, name, 0, type=PUBLIC_THREAD, parent_id=parent_id)
        return thread_id

    def add_user(self, username: str, *, moderator: bool = False, role_ids: list[int] | None = None) -> User:
        roles = ([self.moderator_role_id] if moderator else []) + list(role_ids or [])
        user = User(self.snowflake(), username, role_ids=roles)
        self.users[user.id] = user
        return user

    def add_role(self, name: str, permissions: int = 0) -> Role:
        """A role of the main guild, above the others (it adds ``permissions`` to @everyone's)."""
        position = max(role.position for role in self.roles.values() if role.guild_id is None) + 1
        role = Role(self.snowflake(), name, permissions, position)
        self.roles[role.id] = role
        return role

    def lacks(self, user_id: int, permissions: int) -> bool:
        """Whether a member lacks any of these permission bits in the main guild."""
        return self.permissions(user_id) & permissions != permissions

    def new_attachment(
        self, channel_id: int, filename: str, data: bytes, description: str | None = None
    ) -> EmuAttachment:
        attachment_id = self.snowflake()
        content_type = sniff_content_type(filename, data)
        width, height = image_size(content_type, data)
        attachment = EmuAttachment(
            id=attachment_id,
            filename=filename,
            content_type=content_type,
            data=data,
            url=f"{self.base_url}/attachments/{channel_id}/{attachment_id}/{filename}",
            description=description,
            width=width,
            height=height,
        )
        self.attachments[attachment_id] = attachment
        return attachment

    # -- permissions -----------------------------------------------------------------------------

    def permissions(self, user_id: int) -> int:
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        perms = self.roles[self.guild_id].permissions
        for role_id in self.users[user_id].role_ids:
            perms |= self.roles[role_id].permissions
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    # -- JSON ------------------------------------------------------------------------------------

    def member_json(
        self, user_id: int, *, with_permissions: bool = False, guild_id: int | None = None
    ) -> dict[str, Any]:
        user = self.users[user_id]
        main = guild_id is None or guild_id == self.guild_id
        data: dict[str, Any] = {
            "user": user.to_json(),
            "roles": [str(r) for r in user.role_ids] if main else [],
            "joined_at": user.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "communication_disabled_until": None,
        }
        if with_permissions:
            data["permissions"] = str(self.permissions(user_id))
        return data

    def channel_json(self, channel_id: int) -> dict[str, Any]:
        return self.channels[channel_id].to_json(self.guild_of(channel_id))

    def guild_json(self, *, include_all_members: bool, guild_id: int | None = None) -> dict[str, Any]:
        gid = self.guild_id if guild_id is None else guild_id
        own = None if gid == self.guild_id else gid
        own_channels = [c for c in self.channels.values() if c.guild_id == own]
        member_ids = list(self.users) if include_all_members else [self.bot_user_id]
        return {
            "id": str(gid),
            "name": self.extra_guilds.get(gid, "Emulated Art Guild"),
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "application_id": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "features": [],
            "roles": [r.to_json() for r in self.roles.values() if r.guild_id == own],
            "emojis": [],
            "stickers": [],
            "soundboard_sounds": [],
            "joined_at": self.users[self.bot_user_id].joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(self.users),
            "members": [self.member_json(uid, guild_id=gid) for uid in member_ids],
            "channels": [c.to_json(gid) for c in own_channels if c.type != PUBLIC_THREAD],
            "threads": [c.to_json(gid) for c in own_channels if c.type == PUBLIC_THREAD],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "incidents_data": None,
        }

    def attachment_json(self, attachment: EmuAttachment) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(attachment.id),
            "filename": attachment.filename,
            "size": attachment.size,
            "url": attachment.url,
            "proxy_url": attachment.url,
            "content_type": attachment.content_type,
        }
        if attachment.description is not None:
            data["description"] = attachment.description
        if attachment.width is not None:
            data["width"] = attachment.width
            data["height"] = attachment.height
        return data

    def mention_ids(self, message: EmuMessage) -> list[int]:
        """Users mentioned in the content that allowed_mentions lets through (default: all)."""
        ids = [int(m) for m in _USER_MENTION.findall(message.content)]
        allowed = message.allowed_mentions
        if allowed is None:
            return [i for i in ids if i in self.users]
        parse = allowed.get("parse") or []
        explicit = {int(u) for u in allowed.get("users") or []}
        return [i for i in ids if i in self.users and ("users" in parse or i in explicit)]

    def message_json(self, message: EmuMessage, *, with_member: bool = False) -> dict[str, Any]:
        author = self.users[message.author_id]
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "type": message.type,
            "content": message.content,
            "author": author.to_json(),
            "timestamp": datetime.fromtimestamp((message.id >> 22) / 1000 + DISCORD_EPOCH_MS / 1000, UTC).isoformat(),
            "edited_timestamp": iso_now() if message.edit_count else None,
            "tts": message.tts,
            "mention_everyone": False,
            "mentions": [self.users[i].to_json() for i in self.mention_ids(message)],
            "mention_roles": [],
            "attachments": [self.attachment_json(a) for a in message.attachments],
            "embeds": [self._embed_json(e, message) for e in message.embeds],
            "components": message.components,
            "pinned": False,
            "flags": message.flags,
        }
        if not message.ephemeral:
            data["guild_id"] = str(self.guild_of(message.channel_id))
        if with_member and not message.ephemeral:
            member = self.member_json(message.author_id)
            member.pop("user")
            data["member"] = member
        if message.reactions:
            data["reactions"] = [
                {
                    "emoji": emoji_json(emoji),
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "burst_colors": [],
                    "me_burst": False,
                    "burst_me": False,
                    "burst_count": 0,
                    "me": self.bot_user_id in users,
                }
                for emoji, users in message.reactions.items()
                if users
            ]
        if message.webhook_id is not None:
            data["webhook_id"] = str(message.webhook_id)
            data["application_id"] = str(self.application_id)
        if message.reference_id is not None:
            ref = self.messages.get(message.reference_id)
            data["message_reference"] = {
                "type": 0,
                "message_id": str(message.reference_id),
                "channel_id": str(message.channel_id),
                "guild_id": str(self.guild_of(message.channel_id)),
            }
            data["referenced_message"] = self.message_json(ref) if ref and not ref.deleted else None
        return data

    def _embed_json(self, embed: dict[str, Any], message: EmuMessage) -> dict[str, Any]:
        """The embed as Discord returns it: a type, and ``attachment://`` URLs resolved."""
        out = {"type": "rich", **embed}
        for key in ("image", "thumbnail"):
            media = out.get(key)
            if isinstance(media, dict) and str(media.get("url", "")).startswith("attachment://"):
                name = media["url"].removeprefix("attachment://")
                found = next((a for a in message.attachments if a.filename == name), None)
                if found is not None:
                    out[key] = {
                        "url": found.url,
                        "proxy_url": found.url,
                        "width": found.width or 0,
                        "height": found.height or 0,
                    }
        return out


def emoji_json(emoji: str) -> dict[str, Any]:
    """``name:id`` (custom) or a unicode emoji, as Discord's partial emoji object."""
    name, sep, emoji_id = emoji.partition(":")
    if sep and emoji_id.isdigit():
        return {"id": emoji_id, "name": name, "animated": False}
    return {"id": None, "name": emoji}


def normalise_emoji(emoji: str) -> str:
    """Reaction route segments may be ``name:id``, ``a:name:id`` or ``<:name:id>``; keep ``name:id``."""
    emoji = emoji.strip("<>")
    if emoji.startswith("a:"):
        emoji = emoji[2:]
    if emoji.startswith(":"):
        emoji = emoji[1:]
    return emoji
