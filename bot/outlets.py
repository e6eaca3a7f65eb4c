"""Where a job's status and result go: the interaction's webhook, or the channel.

A slash command is answered through its interaction (the status message is the interaction's
response, the result a followup). Interaction tokens expire after 15 minutes and a restart may
come later than that, so an outlet falls back to plain channel messages that mention the
requester. Jobs started from a reaction have no interaction and use the channel from the start.
Both are built from ids alone, so a job restored from the database after a restart gets the
same outlet it had.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import discord

from bot.discord_limits import CONTENT_MAX
from bot.embeds import shorten

log = logging.getLogger(__name__)

#: Interaction tokens last 15 minutes; stop using one a little before.
INTERACTION_TOKEN_LIFETIME_S = 14 * 60
NO_PINGS = discord.AllowedMentions.none()


@dataclass(frozen=True)
class PostedRef:
    """The ids of a message the outlet posted."""

    message_id: int
    channel_id: int


@dataclass(frozen=True)
class StatusEdit:
    """One change to a status message."""

    text: str
    view: discord.ui.View | None
    preview: bytes | None
    final: bool

    def _files(self) -> list[discord.File]:
        if self.preview is None:
            return []
        return [discord.File(io.BytesIO(self.preview), filename="preview.png")]

    def send_kwargs(self) -> dict[str, Any]:
        """Arguments for a new message."""
        kwargs: dict[str, Any] = {"files": self._files()}
        if self.view is not None:
            kwargs["view"] = self.view
        return kwargs

    def edit_kwargs(self) -> dict[str, Any]:
        """Arguments for editing the message: the view stays unless final; a preview replaces the last."""
        kwargs: dict[str, Any] = {"content": self.text}
        if self.final:
            kwargs["view"] = None
            kwargs["attachments"] = []
        elif self.view is not None:
            kwargs["view"] = self.view
        if self.preview is not None:
            kwargs["attachments"] = self._files()
        return kwargs


class JobOutlet:
    """Posts and edits one job's messages. Subclasses say through which door."""

    def __init__(self, client: discord.Client, *, channel_id: int, requester_id: int) -> None:
        self.client = client
        self.channel_id = channel_id
        self.requester_id = requester_id
        self.status_message_id: int | None = None
        self._status_in_webhook = False
        self._ready = asyncio.Event()

    def set_status_message(self, message_id: int | None, *, via_webhook: bool = False) -> None:
        """The message that shows progress is known (or there is none yet); edits may start."""
        self.status_message_id = message_id
        self._status_in_webhook = via_webhook
        self._ready.set()

    async def wait_ready(self) -> None:
        """Wait until the first response exists, so no edit races ahead of it."""
        await self._ready.wait()

    async def show_status(
        self, text: str, *, view: discord.ui.View | None = None, preview: bytes | None = None, final: bool = False
    ) -> None:
        """Create or edit the status message.

        ``view`` (the Cancel button) is shown while the job is alive; ``final`` removes it (and
        any preview). ``preview`` replaces the message's attachment with a small PNG.
        """
        await self.wait_ready()
        edit = StatusEdit(text=text, view=None if final else view, preview=preview, final=final)
        if self.status_message_id is None:
            message = await self._channel().send(text, allowed_mentions=NO_PINGS, **edit.send_kwargs())
            self.status_message_id = message.id
            return
        if self._status_in_webhook:
            await self._edit_via_webhook(self.status_message_id, edit)
            return
        await self._channel().get_partial_message(self.status_message_id).edit(**edit.edit_kwargs())

    async def post_result(
        self,
        *,
        embed: discord.Embed,
        files: list[discord.File],
        view: discord.ui.View | None = None,
        mention: bool = True,
    ) -> PostedRef:
        """Post the finished images with their embed and buttons.

        The prompt is only ever in the embed, which never pings; the content holds nothing but
        the requester's mention, so letting user mentions ping pings exactly the requester.
        """
        content = f"<@{self.requester_id}>" if mention else None
        allowed = discord.AllowedMentions(users=True, everyone=False, roles=False, replied_user=False)
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        message = await self._channel().send(
            content=content, embed=embed, files=files, allowed_mentions=allowed if mention else NO_PINGS, **extra
        )
        return PostedRef(message.id, message.channel.id)

    async def _edit_via_webhook(self, message_id: int, edit: StatusEdit) -> None:
        raise NotImplementedError

    def _channel(self) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(self.channel_id)


class ChannelOutlet(JobOutlet):
    """Plain channel messages (reaction-started jobs, and interactions whose token expired)."""


class InteractionOutlet(JobOutlet):
    """The interaction's webhook while its token is valid, then the channel."""

    def __init__(
        self,
        client: discord.Client,
        *,
        channel_id: int,
        requester_id: int,
        application_id: int,
        token: str,
        issued_at: float,
    ) -> None:
        super().__init__(client, channel_id=channel_id, requester_id=requester_id)
        self._webhook = discord.Webhook.partial(application_id, token, client=client)
        self._issued_at = issued_at
        self._token_dead = False

    @property
    def token_valid(self) -> bool:
        """Whether the interaction token can still be used."""
        return not self._token_dead and time.time() - self._issued_at < INTERACTION_TOKEN_LIFETIME_S

    async def _edit_via_webhook(self, message_id: int, edit: StatusEdit) -> None:
        if self.token_valid:
            try:
                await self._webhook.edit_message(message_id, allowed_mentions=NO_PINGS, **edit.edit_kwargs())
                return
            except (discord.NotFound, discord.Forbidden, discord.HTTPException) as error:
                if not _token_expired(error):
                    raise
                self._token_dead = True
                log.info("interaction token expired; editing in the channel instead")
        # An expired token cannot edit the interaction's message; the bot can't either (it is
        # the interaction's). Post a new status message in the channel instead.
        self._status_in_webhook = False
        message = await self._channel().send(edit.text, allowed_mentions=NO_PINGS, **edit.send_kwargs())
        self.status_message_id = message.id

    async def post_result(
        self,
        *,
        embed: discord.Embed,
        files: list[discord.File],
        view: discord.ui.View | None = None,
        mention: bool = True,
    ) -> PostedRef:
        """A followup while the token is valid; after that a channel message mentioning the requester."""
        if self.token_valid:
            extra: dict[str, Any] = {"view": view} if view is not None else {}
            try:
                message = await self._webhook.send(
                    embed=embed, files=files, wait=True, allowed_mentions=NO_PINGS, **extra
                )
                return PostedRef(message.id, message.channel.id if message.channel else self.channel_id)
            except (discord.NotFound, discord.Forbidden, discord.HTTPException) as error:
                if not _token_expired(error):
                    raise
                self._token_dead = True
                for file in files:
                    file.reset()
        return await super().post_result(embed=embed, files=files, view=view, mention=True)


def _token_expired(error: discord.HTTPException) -> bool:
    """Discord answers an expired or unknown interaction token with 401 or 404 (codes 50027, 10015)."""
    return error.status in (401, 404) or error.code in (50027, 10015)


#: How long the bot's short notices to reacting members stay in the channel.
NOTICE_SECONDS = 20.0


async def post_notice(client: discord.Client, channel_id: int, user_id: int, text: str) -> None:
    """A short note to a reacting member, removed after a while (reactions can't be answered privately)."""
    channel = client.get_partial_messageable(channel_id)
    try:
        await channel.send(
            shorten(f"<@{user_id}> {text}", CONTENT_MAX), delete_after=NOTICE_SECONDS, allowed_mentions=NO_PINGS
        )
    except discord.HTTPException as error:
        log.warning("could not post a notice: %s", error)
