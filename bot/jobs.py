"""What a job is, seen from the bot: where it was asked for, the model it runs on, how a cancel went.

Plain data shared by the job runner and the cogs (no queue, no storage calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import discord

from rules.request import GenerationRequest
from storage.jobs import NewJob


class ModelInfo(Protocol):
    """What the bot needs to know about the loaded model (no torch on the bot side)."""

    @property
    def model_name(self) -> str: ...

    @property
    def native_size(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def configure(self, *, safety_checker: str = "auto", upscaler: str = "") -> None: ...


@dataclass(frozen=True)
class CancelOutcome:
    """What happened to a cancel request, and what to tell the member if it was refused."""

    accepted: bool
    message: str = ""


@dataclass(frozen=True)
class JobOrigin:
    """Who asked for a job and where: from an interaction (slash command, button) or a reaction."""

    user_id: int
    guild_id: int | None
    channel_id: int
    interaction: discord.Interaction | None = None
    reply_to_message_id: int | None = None
    #: The member's roles in the server (None: not known, as for the studio's jobs; role rules don't apply).
    role_ids: tuple[int, ...] | None = None

    @classmethod
    def of(cls, interaction: discord.Interaction) -> JobOrigin:
        """The origin of a slash command or a button click."""
        return cls(
            user_id=interaction.user.id, guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or 0, interaction=interaction,
            role_ids=role_ids_of(interaction.user),
        )

    def new_job(self, request: GenerationRequest, *, parent_image_id: int | None = None) -> NewJob:
        """The job row for ``request`` asked for from here."""
        interaction = self.interaction
        return NewJob(
            kind=request.kind,
            requester_id=self.user_id,
            guild_id=self.guild_id,
            channel_id=self.channel_id,
            request_json=request.to_json(),
            parent_image_id=parent_image_id,
            application_id=interaction.application_id if interaction else None,
            interaction_token=interaction.token if interaction else None,
            reply_to_message_id=self.reply_to_message_id,
        )


def role_ids_of(user: object) -> tuple[int, ...] | None:
    """A server member's role ids, @everyone included; None for a user outside a server."""
    if not isinstance(user, discord.Member):
        return None
    return tuple(role.id for role in user.roles)
