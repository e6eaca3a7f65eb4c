"""/imagine, /rerun, /loras, /history, /queue, /cancel and the reactions on results.

The cog only translates: options, flags and attachments become a request (:mod:`._build`,
:mod:`._uploads`); reactions and buttons become calls on :class:`._actions.ResultActions`.

Reactions on a result: 🔄 re-roll, 🔍 upscale, 🎨 subtle variation, 1️⃣-4️⃣ upscale that image of
a grid, ❌ delete (its requester or a moderator; anyone else's ❌ is removed). ❌ on a *status*
message cancels its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import embeds, emojis
from bot.character_looks import apply_cref
from bot.cogs.imagine import _buttons
from bot.cogs.imagine._actions import ResultActions
from bot.cogs.imagine._build import ImagineOptions, build_request, model_family_of, rerun_options
from bot.cogs.imagine._uploads import SourceImages, discard, read_png_parameters, read_sources, store_sources
from bot.discord_limits import CONTENT_MAX
from bot.errors import UserFacingError, reply_ephemeral
from bot.jobs import JobOrigin, role_ids_of
from bot.outlets import NO_PINGS
from bot.services import Services
from generation.errors import QueueFull
from rules.models import ModelSpec, match_models
from rules.request import SCHEDULERS, SEED_MAX, GenerationRequest, RequestError
from rules.styles import match_styles
from storage.errors import NotFound
from storage.messages import PostedMessage

log = logging.getLogger(__name__)

#: Waits before looking again for a just-posted message's record (see ``_posted_message``).
RECORD_RETRY_DELAYS_S = (0.1, 0.3, 0.6, 1.0)
#: What a member is told when they use a command in a DM while ``[discord] allow_dms`` is off.
DM_REFUSED_TEXT = "I work in servers only: use my commands in a server channel, where its moderators can see them."
#: Stands for an upload's path while its request is validated, before the upload is stored.
PENDING_UPLOAD = "(upload)"
#: What /rerun answers for a PNG that carries no parameters.
NO_PARAMETERS_TEXT = (
    "That image carries no generation parameters (a `parameters` text chunk, as this bot, AUTOMATIC1111 and "
    "ComfyUI write into PNGs). Upload the original PNG: Discord keeps it as it is, but screenshots, "
    "JPEG/WebP copies and many editors drop them."
)
#: Reactions this cog acts on.
HANDLED_REACTIONS = frozenset({emojis.CANCEL, emojis.REROLL, emojis.UPSCALE, emojis.VARY, *emojis.NUMBERS})


class Imagine(commands.Cog):
    """Image generation: /imagine with flags, styles and attachments; /history, /queue, /cancel; result reactions."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.actions = ResultActions(services)
        if not services.settings.discord.allow_dms:
            # Discord then hides the commands in DMs; interaction_check refuses any that still come.
            for command in self.__cog_app_commands__:
                command.guild_only = True

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """The DM policy: outside a server, commands work only when ``[discord] allow_dms`` is on."""
        if interaction.guild_id is None and not self.services.settings.discord.allow_dms:
            raise UserFacingError(DM_REFUSED_TEXT)
        return True

    async def cog_load(self) -> None:
        """Give every engine the configured safety checker and upscaler; put the buttons on results."""
        settings = self.services.settings
        for engine in self.services.engines:
            await asyncio.to_thread(
                engine.configure, safety_checker=settings.safety.checker, upscaler=settings.model.upscaler
            )
        _buttons.register(self.bot, self.actions)
        self.services.runner.result_view = _buttons.result_view
        # Read each model's family and native size from its files once, off the loop; later asks are
        # answered from memory.
        await asyncio.to_thread(self.services.model_states)

    async def cog_unload(self) -> None:
        """Take the buttons off new results and stop answering clicks on old ones."""
        if self.services.runner.result_view is _buttons.result_view:
            self.services.runner.result_view = None
        _buttons.unregister(self.bot)

    # -- /imagine ------------------------------------------------------------------------------------

    @app_commands.command(name="imagine")
    @app_commands.describe(
        prompt="What to draw; flags may follow: --ar 16:9 --seed 42 --no text --steps 30 --cfg 6 --n 2 --style comic",
        negative="What to keep out of the image (wins over --no)",
        seed="Seed for a reproducible image (random if left out)",
        steps="Denoising steps: more is slower and often finer",
        guidance="How closely to follow the prompt (classifier-free guidance)",
        width="Width in pixels, a multiple of 8 (default: the model's native size)",
        height="Height in pixels, a multiple of 8 (default: the model's native size)",
        count="How many images (1-4); two or more come as one grid",
        style="A style preset: wraps the prompt, adds a negative prompt and defaults",
        model="Which model draws it (/models lists them)",
        sampler="The sampler (scheduler); default: the model's own",
        image="A PNG, JPEG or WebP to start from (img2img)",
        mask="With image: white where the image is redrawn, black where it is kept (inpainting)",
        strength="With image: how much of it is redrawn (0.05 keeps it, 1 ignores it)",
    )
    @app_commands.choices(sampler=[app_commands.Choice(name=name, value=name) for name in SCHEDULERS])
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
        style: app_commands.Range[str, 1, 32] | None = None,
        image: discord.Attachment | None = None,
        mask: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.05, 1.0] | None = None,
        model: app_commands.Range[str, 1, 32] | None = None,
        sampler: str | None = None,
    ) -> None:
        """Generate images from a text prompt, or from an image you upload."""
        options = ImagineOptions(
            prompt=prompt, negative=negative, seed=seed, steps=steps, guidance=guidance,
            width=width, height=height, count=count, style=style, model=model, sampler=sampler,
        )
        async with self.services.runner.answering():
            await self._imagine(interaction, options, image, mask, strength)

    async def _imagine(
        self,
        interaction: discord.Interaction,
        options: ImagineOptions,
        image: discord.Attachment | None,
        mask: discord.Attachment | None,
        strength: float | None,
    ) -> None:
        settings = self.services.settings
        server = self.services.servers.effective(interaction.guild_id)
        limits = server.limits
        defaults: dict[str, Any] = {
            "default_size": server.default_size, "default_style": server.default_style,
            "default_model": server.default_model,
        }
        stored: SourceImages | None = None
        try:
            if image is None and (mask is not None or strength is not None):
                raise RequestError(
                    "image", "`mask` and `strength` work on an uploaded `image`; add one, or leave them out."
                )
            # Check the prompt (flags, style, model, blocked words) before downloading anything.
            models = self.services.known_models()
            states = self.services.model_states()  # from memory (read in cog_load)

            def native_for(spec: ModelSpec) -> int:
                return self.services.native_size_of(spec, states)

            def family_for(spec: ModelSpec) -> str | None:
                return self.services.family_of(spec, states)

            request = build_request(
                options, limits=limits, native=self.services.model.native_size, styles=settings.styles,
                safety=settings.safety, models=models, native_for=native_for, loras=settings.loras,
                family_for=family_for, **defaults,
            )
            # The server's channel, role and kid-friendly rules, before any upload is downloaded.
            refused = self.services.servers.access_refusal(JobOrigin.of(interaction), request.prompt)
            if refused is not None:
                raise RequestError("server", refused)
            request = await self._characters(interaction, request)
            if image is not None:
                # Downloading and checking uploads can take a while: answer Discord within its 3 s first.
                await interaction.response.defer(thinking=True)
                decoded = await read_sources(image, mask, limits=limits)
                request = build_request(
                    options, limits=limits, native=self.services.model.native_size, styles=settings.styles,
                    safety=settings.safety, source_size=decoded.size, models=models, native_for=native_for,
                    loras=settings.loras, family_for=family_for, **defaults,
                ).replace(
                    seed=request.seed,
                    kind="inpaint" if decoded.mask is not None else "img2img",
                    init_image=PENDING_UPLOAD,
                    mask_image=PENDING_UPLOAD if decoded.mask is not None else None,
                    strength=limits.default_strength if strength is None else strength,
                )
                request = await self._characters(interaction, request)
                # Refuse before storing anything: a refused request leaves no file behind.
                self.services.runner.validate(request, interaction.guild_id)
                self.services.queue.check_capacity(
                    interaction.user.id, interaction.guild_id, user_limit=server.max_pending_per_member
                )
                stored = await store_sources(decoded, self.services.storage.files)
                request = request.replace(init_image=stored.image_path, mask_image=stored.mask_path)
        except (RequestError, QueueFull) as error:
            await reply_ephemeral(interaction, str(error))
            return
        job_id = await self.services.runner.start_job(JobOrigin.of(interaction), request)
        if job_id is None and stored is not None:
            await discard(stored, self.services.storage.files)

    async def _characters(self, interaction: discord.Interaction, request: GenerationRequest) -> GenerationRequest:
        """The request with ``--cref``'s characters (of the member's active comic) drawn in."""
        return await apply_cref(
            self.services.storage, request, user_id=interaction.user.id, guild_id=interaction.guild_id
        )

    # -- /rerun, /loras ------------------------------------------------------------------------------

    @app_commands.command(name="rerun")
    @app_commands.describe(png="A PNG with its generation parameters (from this bot, AUTOMATIC1111, ComfyUI...)")
    async def rerun(self, interaction: discord.Interaction, png: discord.Attachment) -> None:
        """Make an image again from the parameters stored inside a PNG (prompt, seed, steps, sampler, LoRAs)."""
        async with self.services.runner.answering():
            await self._rerun(interaction, png)

    async def _rerun(self, interaction: discord.Interaction, png: discord.Attachment) -> None:
        settings = self.services.settings
        try:
            # Downloading can take a while: answer Discord within its 3 s first.
            await interaction.response.defer(thinking=True)
            params, size = await read_png_parameters(png, limits=settings.generation)
            if params is None:
                raise RequestError("png", NO_PARAMETERS_TEXT)
            models = self.services.known_models()
            states = self.services.model_states()  # from memory (read in cog_load)
            request = build_request(
                rerun_options(params, size, models), limits=settings.generation,
                native=self.services.model.native_size, styles=settings.styles, safety=settings.safety,
                models=models, native_for=lambda spec: self.services.native_size_of(spec, states),
                loras=settings.loras, family_for=lambda spec: self.services.family_of(spec, states),
            )
        except RequestError as error:
            await reply_ephemeral(interaction, str(error))
            return
        await self.services.runner.start_job(JobOrigin.of(interaction), request)

    @app_commands.command(name="loras")
    async def loras_command(self, interaction: discord.Interaction) -> None:
        """List the LoRAs and embeddings you can use: names, trigger words, default weights, model family."""
        settings = self.services.settings
        await interaction.response.send_message(
            embed=embeds.loras_embed(settings.loras, settings.embeddings, model_family_of(self.services.model)),
            ephemeral=True,
        )

    @imagine.autocomplete("style")
    async def _style_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        styles = self.services.settings.styles
        choices = []
        for name in match_styles(current, styles):
            description = styles[name].description
            label = f"{name}: {description}" if description else name
            choices.append(app_commands.Choice(name=embeds.shorten(label, 100), value=name))
        return choices

    @imagine.autocomplete("model")
    async def _model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        choices = []
        for spec in match_models(current, self.services.known_models()):
            label = f"{spec.name}: {spec.display_name}" if spec.display_name else spec.name
            choices.append(app_commands.Choice(name=embeds.shorten(label, 100), value=spec.name))
        return choices

    # -- /history, /queue, /cancel ---------------------------------------------------------------------

    @app_commands.command(name="history")
    @app_commands.describe(user="Whose images to show (default: yours)")
    async def history(self, interaction: discord.Interaction, user: discord.User | None = None) -> None:
        """Page through a member's images made in this server, newest first (only you see the pages)."""
        target = user or interaction.user
        content, view, file = await self.actions.history_page(target.id, 0, guild_id=interaction.guild_id)
        extra: dict[str, Any] = {"file": file} if file is not None else {}
        await interaction.response.send_message(
            content, view=view, ephemeral=True, allowed_mentions=NO_PINGS, **extra
        )

    @app_commands.command(name="queue")
    async def queue_command(self, interaction: discord.Interaction) -> None:
        """Show your jobs and how long the queue is."""
        queue = self.services.queue
        waiting, running = queue.pending_count(), len(queue.running())
        lines = [f"The queue has {waiting} job(s) waiting and {running} running."]
        no_workers = self.services.runner.waiting_for_workers
        if no_workers:
            lines.append("No GPU worker is up right now: jobs keep their places and start when one comes back.")
        mine = sorted(self.services.runner.jobs_of(interaction.user.id), key=lambda job: (job[2] is None, job[2] or 0))
        if not mine:
            lines.append("You have no jobs in it.")
        for job_id, request, position in mine:
            if position == 0:
                where = "running now"
            elif position is None:
                where = "finishing"
            elif no_workers:
                where = f"position {position}, {embeds.WAITING_FOR_WORKERS_TEXT}"
            else:
                eta = queue.estimate_wait_s(job_id)
                where = f"position {position}" + (f", starts in about {round(eta)} s" if eta is not None else "")
            lines.append(f"• Job {job_id}: **{discord.utils.escape_markdown(embeds.shorten(request.prompt, 80))}**"
                         f" ({where})")
        if mine:
            lines.append("`/cancel` cancels your waiting jobs; a running one has its own Cancel button.")
        await interaction.response.send_message(
            embeds.shorten_lines(lines, CONTENT_MAX), ephemeral=True, allowed_mentions=NO_PINGS
        )

    @app_commands.command(name="cancel")
    async def cancel_command(self, interaction: discord.Interaction) -> None:
        """Cancel every job of yours that is still waiting in the queue."""
        cancelled = 0
        for job_id, _request, position in self.services.runner.jobs_of(interaction.user.id):
            if not position:  # running (0) or unknown: only waiting jobs
                continue
            outcome = await self.services.runner.request_cancel(job_id, user_id=interaction.user.id, moderator=False)
            cancelled += outcome.accepted
        text = f"Cancelled {cancelled} waiting job(s)." if cancelled else "You have no waiting jobs to cancel."
        await interaction.response.send_message(text, ephemeral=True)

    # -- reactions -------------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """🔄 🔍 🎨 1️⃣-4️⃣ ❌ on the bot's results; ❌ on a status message cancels its job."""
        if self.bot.user is None or payload.user_id == self.bot.user.id:
            return
        emoji = str(payload.emoji)
        if emoji not in HANDLED_REACTIONS:
            return
        posted = await self._posted_message(payload)
        if posted is None:
            return
        if emoji == emojis.CANCEL:
            if posted.kind == "status":
                await self._cancel_by_reaction(payload, posted)
            elif posted.kind == "result":
                await self._delete_by_reaction(payload, posted)
            return
        if posted.kind != "result" or not posted.image_ids:
            return
        origin = JobOrigin(
            user_id=payload.user_id, guild_id=payload.guild_id, channel_id=payload.channel_id,
            reply_to_message_id=payload.message_id, role_ids=role_ids_of(payload.member),
        )
        if emoji == emojis.REROLL:
            await self.actions.reroll(origin, posted.job_id)
        elif emoji == emojis.UPSCALE:
            await self.actions.upscale(origin, posted.image_ids[0])
        elif emoji == emojis.VARY:
            await self.actions.vary(origin, posted.image_ids[0], "subtle")
        else:
            index = emojis.NUMBERS.index(emoji)
            if len(posted.image_ids) > 1 and index < len(posted.image_ids):
                await self.actions.upscale(origin, posted.image_ids[index])

    async def _cancel_by_reaction(self, payload: discord.RawReactionActionEvent, posted: PostedMessage) -> None:
        """❌ on a status message cancels its job, for the requester or a moderator; others' ❌ are removed."""
        outcome = await self.services.runner.request_cancel(
            posted.job_id, user_id=payload.user_id, moderator=self._can_moderate(payload)
        )
        if not outcome.accepted:
            await self._remove_reaction(payload, emojis.CANCEL)

    async def _delete_by_reaction(self, payload: discord.RawReactionActionEvent, posted: PostedMessage) -> None:
        """❌ on a result deletes it, for the requester or a moderator; others' ❌ are removed."""
        allowed = await self.actions.may_delete(
            posted.job_id, payload.user_id, moderator=self._can_moderate(payload)
        )
        if not allowed:
            await self._remove_reaction(payload, emojis.CANCEL)
            return
        message = self.bot.get_partial_messageable(payload.channel_id).get_partial_message(payload.message_id)
        try:
            await message.delete()
        except discord.HTTPException as error:
            log.warning("could not delete result %s: %s", payload.message_id, error)
            return
        await self.actions.forget_result(posted.job_id)
        log.info("result of job %s deleted by %s (❌)", posted.job_id, payload.user_id)

    async def _remove_reaction(self, payload: discord.RawReactionActionEvent, emoji: str) -> None:
        message = self.bot.get_partial_messageable(payload.channel_id).get_partial_message(payload.message_id)
        try:
            await message.remove_reaction(emoji, discord.Object(payload.user_id))
        except discord.HTTPException as error:
            log.info("could not remove a refused %s: %s", emoji, error)

    def _can_moderate(self, payload: discord.RawReactionActionEvent) -> bool:
        """Whether the reacting member may manage messages in that channel (in a thread: in its parent)."""
        member = payload.member
        guild = self.bot.get_guild(payload.guild_id) if payload.guild_id else None
        channel = guild.get_channel_or_thread(payload.channel_id) if guild else None
        if isinstance(channel, discord.Thread):
            channel = channel.parent
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
            with contextlib.suppress(NotFound):
                return await self.services.storage.messages.get(payload.message_id)
            await asyncio.sleep(delay)
        try:
            return await self.services.storage.messages.get(payload.message_id)
        except NotFound:
            return None
