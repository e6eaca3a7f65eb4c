"""/imagine and the reactions on its results (🔄 re-roll, 🔍 upscale)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import embeds
from bot.errors import reply_ephemeral
from bot.outlets import ChannelOutlet, InteractionOutlet, JobOutlet
from bot.views import CANCEL_EMOJI, cancel_view
from generation.errors import QueueFull
from generation.request import (
    SEED_MAX,
    GenerationLimits,
    GenerationRequest,
    RequestError,
    random_seed,
    reroll_of,
    upscale_of,
    validate,
)
from storage.jobs import NewJob
from storage.messages import PostedMessage

if TYPE_CHECKING:
    from bot.bot import ArtBot

log = logging.getLogger(__name__)

#: Waits before looking again for a just-posted message's record (see ``_posted_message``).
RECORD_RETRY_DELAYS_S = (0.1, 0.3, 0.6, 1.0)
#: How long the bot's short notices on reactions stay in the channel.
NOTICE_SECONDS = 20.0


class Imagine(commands.Cog):
    """Text-to-image generation: the /imagine command and the result reactions."""

    def __init__(self, bot: ArtBot) -> None:
        self.bot = bot

    @property
    def limits(self) -> GenerationLimits:
        """The configured defaults and limits for requests."""
        return self.bot.settings.generation

    def _validate(self, request: GenerationRequest) -> GenerationRequest:
        model = self.bot.model
        return validate(request, self.limits, count_tokens=model.count_tokens, max_tokens=model.max_tokens)

    @app_commands.command(name="imagine")
    @app_commands.describe(
        prompt="What to draw",
        negative="What to keep out of the image",
        seed="Seed for a reproducible image (random if left out)",
        steps="Denoising steps: more is slower and often finer",
        guidance="How closely to follow the prompt (classifier-free guidance)",
        width="Width in pixels, a multiple of 8 (default: the model's native size)",
        height="Height in pixels, a multiple of 8 (default: the model's native size)",
        count="How many images (1-4)",
    )
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 1000],
        negative: app_commands.Range[str, 0, 1000] | None = None,
        seed: app_commands.Range[int, 0, SEED_MAX] | None = None,
        steps: app_commands.Range[int, 1, 150] | None = None,
        guidance: app_commands.Range[float, 0.0, 30.0] | None = None,
        width: app_commands.Range[int, 64, 2048] | None = None,
        height: app_commands.Range[int, 64, 2048] | None = None,
        count: app_commands.Range[int, 1, 4] | None = None,
    ) -> None:
        """Generate images from a text prompt."""
        native = self.bot.model.native_size
        limits = self.limits
        request = GenerationRequest(
            prompt=prompt,
            negative_prompt=negative or "",
            seed=random_seed() if seed is None else seed,
            steps=limits.default_steps if steps is None else steps,
            guidance=limits.default_guidance if guidance is None else guidance,
            width=native if width is None else width,
            height=native if height is None else height,
            count=limits.default_count if count is None else count,
        )
        try:
            request = self._validate(request)
            self.bot.queue.check_capacity(interaction.user.id)
        except (RequestError, QueueFull) as error:
            await reply_ephemeral(interaction, str(error))
            return
        record = await self.bot.storage.jobs.create(
            NewJob(
                kind=request.kind,
                requester_id=interaction.user.id,
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id or 0,
                request_json=request.to_json(),
                application_id=interaction.application_id,
                interaction_token=interaction.token,
            )
        )
        outlet = self.bot.runner.outlet_for(record)
        position = await self.bot.runner.enqueue(record, request, outlet, check_caps=False)
        try:
            response = await interaction.response.send_message(
                embeds.queued_text(request, position),
                allowed_mentions=discord.AllowedMentions.none(),
                view=cancel_view(record.id),
            )
        except discord.HTTPException:
            outlet.set_status_message(None)
            self.bot.queue.cancel(record.id)
            raise
        message_id = getattr(response, "message_id", None)
        outlet.set_status_message(message_id, via_webhook=isinstance(outlet, InteractionOutlet))
        if message_id is not None:
            await self.bot.runner.remember_status(record.id, message_id, record.channel_id, record.guild_id)

    # -- reactions ---------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """🔄 and 🔍 on one of the bot's results start a re-roll or an upscale."""
        if self.bot.user is None or payload.user_id == self.bot.user.id:
            return
        emoji = str(payload.emoji)
        if emoji == CANCEL_EMOJI:
            await self._cancel_by_reaction(payload)
            return
        if emoji not in embeds.RESULT_REACTIONS:
            return
        posted = await self._posted_message(payload)
        if posted is None or posted.kind != "result" or not posted.image_ids:
            return
        parent_job = await self.bot.storage.jobs.get(posted.job_id)
        parent_request = GenerationRequest.from_json(parent_job.request_json)
        first_image = await self.bot.storage.images.get(posted.image_ids[0])
        try:
            if emoji == embeds.REROLL:
                request = self._validate(reroll_of(parent_request))
                parent_image_id = first_image.id
            else:
                source = GenerationRequest.from_json(first_image.params_json)
                request = self._validate(
                    upscale_of(
                        source,
                        source_path=first_image.path,
                        source_seed=first_image.seed,
                        width=first_image.width,
                        height=first_image.height,
                        limits=self.limits,
                    )
                )
                parent_image_id = first_image.id
            self.bot.queue.check_capacity(payload.user_id)
        except (RequestError, QueueFull) as error:
            await self._notice(payload, str(error))
            return
        record = await self.bot.storage.jobs.create(
            NewJob(
                kind=request.kind,
                requester_id=payload.user_id,
                guild_id=payload.guild_id,
                channel_id=payload.channel_id,
                request_json=request.to_json(),
                parent_image_id=parent_image_id,
                reply_to_message_id=payload.message_id,
            )
        )
        outlet: JobOutlet = ChannelOutlet(self.bot, channel_id=payload.channel_id, requester_id=payload.user_id)
        outlet.set_status_message(None)
        await self.bot.runner.enqueue(record, request, outlet, check_caps=False)

    async def _cancel_by_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """❌ on a status message cancels its job, for the requester or a moderator; others' ❌ are removed."""
        posted = await self._posted_message(payload)
        if posted is None or posted.kind != "status":
            return
        outcome = await self.bot.runner.request_cancel(
            posted.job_id, user_id=payload.user_id, moderator=self._can_moderate(payload)
        )
        if not outcome.accepted:
            message = self.bot.get_partial_messageable(payload.channel_id).get_partial_message(payload.message_id)
            try:
                await message.remove_reaction(CANCEL_EMOJI, discord.Object(payload.user_id))
            except discord.HTTPException as error:
                log.info("could not remove a refused ❌: %s", error)

    def _can_moderate(self, payload: discord.RawReactionActionEvent) -> bool:
        """Whether the reacting member may manage messages in that channel."""
        member = payload.member
        guild = self.bot.get_guild(payload.guild_id) if payload.guild_id else None
        channel = guild.get_channel(payload.channel_id) if guild else None
        if member is None or channel is None:
            return False
        return bool(channel.permissions_for(member).manage_messages)

    async def _posted_message(self, payload: discord.RawReactionActionEvent) -> PostedMessage | None:
        """The bot's record of the reacted message.

        A message is recorded just after Discord accepts it, so a reaction in the first instant
        may arrive first: for the bot's own messages, look again a few times before giving up.
        """
        ours = self.bot.user is not None and payload.message_author_id == self.bot.user.id
        for delay in RECORD_RETRY_DELAYS_S if ours else ():
            posted = await self.bot.storage.messages.get(payload.message_id)
            if posted is not None:
                return posted
            await asyncio.sleep(delay)
        return await self.bot.storage.messages.get(payload.message_id)

    async def _notice(self, payload: discord.RawReactionActionEvent, text: str) -> None:
        """A short note to a reacting user, removed after a while (reactions can't be answered privately)."""
        channel = self.bot.get_partial_messageable(payload.channel_id)
        try:
            await channel.send(f"<@{payload.user_id}> {text}", delete_after=NOTICE_SECONDS,
                               allowed_mentions=discord.AllowedMentions(users=True, everyone=False, roles=False))
        except discord.HTTPException as error:
            log.warning("could not post a notice: %s", error)




async def setup(bot: ArtBot) -> None:
    """Load the cog."""
    await bot.add_cog(Imagine(bot))
