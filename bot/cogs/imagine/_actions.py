"""What the buttons and reactions on a result do: re-roll, upscale, vary, delete, info, add to comic, history.

Buttons (:mod:`bot.views`) and reactions (:class:`~bot.cogs.imagine._cog.Imagine`) both call
:class:`ResultActions`, so 🔄 the button and 🔄 the reaction are the same code. Everything is
looked up in the database from ids (the job, the image), so it all works on messages posted
before a restart.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import discord
from discord.utils import escape_markdown
from PIL import Image

from bot import embeds
from bot.errors import reply_ephemeral
from bot.outlets import NO_PINGS, ChannelOutlet, InteractionOutlet, JobOutlet
from bot.views import cancel_view, history_view
from composition.grid import make_grid
from generation.errors import QueueFull
from rules.request import (
    GenerationRequest,
    RequestError,
    reroll_of,
    upscale_of,
    validate,
    variation_of,
)
from storage.comics import ComicStorageError, NewPanel, PanelPlan, PanelRecord
from storage.images import ImageRecord
from storage.jobs import NewJob

if TYPE_CHECKING:
    from bot.bot import ArtBot

log = logging.getLogger(__name__)

#: Images on one /history page (shown as one grid of thumbnails).
HISTORY_PAGE_SIZE = 4
#: The deepest /history page (keeps each page's lookup small).
HISTORY_MAX_PAGES = 250
HISTORY_THUMBNAIL_SIDE = 256
#: How long the bot's short notices on reactions stay in the channel.
NOTICE_SECONDS = 20.0

Strength = Literal["subtle", "strong"]


@dataclass(frozen=True)
class Origin:
    """Who asked for a job and where: from an interaction (slash command, button) or a reaction."""

    user_id: int
    guild_id: int | None
    channel_id: int
    interaction: discord.Interaction | None = None
    reply_to_message_id: int | None = None


class ResultActions:
    """Turns a click or a reaction on a result into a new job, a deletion or a private answer."""

    def __init__(self, bot: ArtBot) -> None:
        self.bot = bot

    # -- submitting ----------------------------------------------------------------------------------

    def validate(self, request: GenerationRequest) -> GenerationRequest:
        """Check a request against the configured limits and the model's token limit."""
        model = self.bot.model
        return validate(
            request, self.bot.settings.generation, count_tokens=model.count_tokens, max_tokens=model.max_tokens
        )

    async def refuse(self, origin: Origin, text: str) -> None:
        """Tell the member why nothing was queued: ephemerally, or a short notice for a reaction."""
        if origin.interaction is not None:
            await reply_ephemeral(origin.interaction, text)
        else:
            await self.notice(origin.channel_id, origin.user_id, text)

    async def submit(
        self, origin: Origin, request: GenerationRequest, *, parent_image_id: int | None = None
    ) -> int | None:
        """Validate, record and queue a request, and answer with its status message; the job id, or None.

        From an interaction the status message is the interaction's response (the result comes as
        its followup); from a reaction both are channel messages.
        """
        try:
            request = self.validate(request)
            self.bot.queue.check_capacity(origin.user_id)
        except (RequestError, QueueFull) as error:
            await self.refuse(origin, str(error))
            return None
        interaction = origin.interaction
        record = await self.bot.storage.jobs.create(
            NewJob(
                kind=request.kind,
                requester_id=origin.user_id,
                guild_id=origin.guild_id,
                channel_id=origin.channel_id,
                request_json=request.to_json(),
                parent_image_id=parent_image_id,
                application_id=interaction.application_id if interaction else None,
                interaction_token=interaction.token if interaction else None,
                reply_to_message_id=origin.reply_to_message_id,
            )
        )
        runner = self.bot.runner
        if interaction is None:
            outlet: JobOutlet = ChannelOutlet(self.bot, channel_id=origin.channel_id, requester_id=origin.user_id)
            outlet.set_status_message(None)
            await runner.enqueue(record, request, outlet, check_caps=False)
            return record.id
        outlet = runner.outlet_for(record)
        position = await runner.enqueue(
            record, request, outlet, check_caps=False, upload_limit=interaction.filesize_limit
        )
        text = embeds.queued_text(request, position)
        try:
            if interaction.response.is_done():  # deferred while uploads were checked
                message = await interaction.edit_original_response(
                    content=text, allowed_mentions=NO_PINGS, view=cancel_view(record.id)
                )
                message_id: int | None = message.id
            else:
                response = await interaction.response.send_message(
                    text, allowed_mentions=NO_PINGS, view=cancel_view(record.id)
                )
                message_id = getattr(response, "message_id", None)
        except discord.HTTPException:
            outlet.set_status_message(None)
            self.bot.queue.cancel(record.id)
            raise
        outlet.set_status_message(message_id, via_webhook=isinstance(outlet, InteractionOutlet))
        if message_id is not None:
            await runner.remember_status(record.id, message_id, record.channel_id, record.guild_id)
        return record.id

    # -- re-roll, upscale, vary ------------------------------------------------------------------------

    async def _image(self, origin: Origin, image_id: int) -> ImageRecord | None:
        try:
            return await self.bot.storage.images.get(image_id)
        except KeyError:
            await self.refuse(origin, "That image is no longer in the database.")
            return None

    async def reroll(self, origin: Origin, job_id: int) -> int | None:
        """🔄: the job's request again with a new seed (all its images)."""
        try:
            job = await self.bot.storage.jobs.get(job_id)
        except KeyError:
            await self.refuse(origin, "That job is no longer in the database.")
            return None
        images = await self.bot.storage.images.for_job(job_id)
        parent = images[0].id if images else job.parent_image_id
        request = reroll_of(GenerationRequest.from_json(job.request_json))
        return await self.submit(origin, request, parent_image_id=parent)

    async def upscale(self, origin: Origin, image_id: int) -> int | None:
        """🔍 / U1-U4 / 1️⃣-4️⃣: a hires-fix (or the configured upscaler's) upscale of one image."""
        image = await self._image(origin, image_id)
        if image is None:
            return None
        source = GenerationRequest.from_json(image.params_json)
        try:
            request = upscale_of(
                source, source_path=image.path, source_seed=image.seed, width=image.width, height=image.height,
                limits=self.bot.settings.generation,
            )
        except RequestError as error:
            await self.refuse(origin, str(error))
            return None
        return await self.submit(origin, request, parent_image_id=image.id)

    async def vary(self, origin: Origin, image_id: int, strength: Strength) -> int | None:
        """🎨 / V1-V4: img2img from one image with its prompt, a new seed, subtle or strong."""
        image = await self._image(origin, image_id)
        if image is None:
            return None
        limits = self.bot.settings.generation
        amount = limits.variation_subtle_strength if strength == "subtle" else limits.variation_strong_strength
        source = GenerationRequest.from_json(image.params_json)
        request = variation_of(
            source, source_path=image.path, width=image.width, height=image.height, strength=amount
        )
        return await self.submit(origin, request, parent_image_id=image.id)

    async def upscale_from_interaction(self, interaction: discord.Interaction, image_id: int) -> None:
        """A U/🔍 button click."""
        await self.upscale(_origin(interaction), image_id)

    async def vary_from_interaction(self, interaction: discord.Interaction, image_id: int, strength: Strength) -> None:
        """A V/🎨 button click."""
        await self.vary(_origin(interaction), image_id, strength)

    async def reroll_from_interaction(self, interaction: discord.Interaction, job_id: int) -> None:
        """A 🔄 button click."""
        await self.reroll(_origin(interaction), job_id)

    # -- delete ---------------------------------------------------------------------------------------

    async def may_delete(self, job_id: int, user_id: int, *, moderator: bool) -> bool:
        """The job's requester and members who can manage messages may delete its result."""
        if moderator:
            return True
        try:
            job = await self.bot.storage.jobs.get(job_id)
        except KeyError:
            return False
        return job.requester_id == user_id

    async def delete_from_interaction(
        self, interaction: discord.Interaction, job_id: int, message: discord.Message
    ) -> None:
        """A 🗑️ click: delete the result, or tell a stranger privately that they can't."""
        moderator = bool(interaction.permissions.manage_messages)
        if not await self.may_delete(job_id, interaction.user.id, moderator=moderator):
            await interaction.response.send_message(
                "Only the member who asked for this image, or a moderator, can delete it.", ephemeral=True
            )
            return
        await interaction.response.defer()
        try:
            await message.delete()
        except discord.HTTPException as error:
            log.warning("could not delete result %s: %s", message.id, error)
            await interaction.followup.send("I couldn't delete that message.", ephemeral=True)
            return
        await self.bot.storage.images.mark_job_deleted(job_id)
        log.info("result of job %s deleted by %s", job_id, interaction.user.id)

    # -- info, comic, history ---------------------------------------------------------------------------

    async def info(self, image_id: int) -> str:
        """ℹ️: every parameter of one image and the /imagine line that makes it again."""
        try:
            image = await self.bot.storage.images.get(image_id)
        except KeyError:
            return "That image is no longer in the database."
        request = GenerationRequest.from_json(image.params_json)
        return embeds.info_text(
            request, image_id=image.id, job_id=image.job_id, model_name=self.bot.model.model_name,
            native=self.bot.model.native_size, parent_image_id=image.parent_image_id,
        )

    async def add_to_comic(self, image_id: int, *, user_id: int, guild_id: int | None) -> str:
        """📖: add the image as the next panel of the member's active comic; what to tell them."""
        storage = self.bot.storage
        comic = await storage.comics.active(user_id, guild_id)
        if comic is None:
            return "You have no active comic here; start one with `/comic new` first."
        if await storage.comics.role(comic, user_id) == "viewer":
            return "Only the owner and collaborators of your active comic can add panels to it."
        try:
            image = await storage.images.get(image_id)
        except KeyError:
            return "That image is no longer in the database."
        prompt = GenerationRequest.from_json(image.params_json).prompt

        def plan(stored: PanelRecord) -> PanelPlan:
            return PanelPlan(seed=image.seed, params_json=image.params_json, job=None)

        try:
            change = await storage.comics.add_panel(
                comic.id, NewPanel(prompt, image_id=image.id), plan, max_panels=self.bot.settings.comic.max_panels
            )
        except ComicStorageError as error:
            return str(error)
        title = escape_markdown(embeds.shorten(comic.title, 100))
        return f"{embeds.ADD_TO_COMIC} Added as panel {change.after.position} of **{title}**."

    async def history_page(
        self, user_id: int, page: int
    ) -> tuple[str, discord.ui.View, discord.File | None]:
        """One page of a member's images, newest first: a text list, ◀/▶ buttons and a grid of thumbnails."""
        page = max(0, min(page, HISTORY_MAX_PAGES - 1))
        start = page * HISTORY_PAGE_SIZE
        rows = await self.bot.storage.images.history(user_id, limit=start + HISTORY_PAGE_SIZE + 1)
        shown = rows[start : start + HISTORY_PAGE_SIZE]
        has_next = len(rows) > start + HISTORY_PAGE_SIZE and page + 1 < HISTORY_MAX_PAGES
        view = history_view(user_id, page, has_next=has_next)
        if not shown:
            text = f"<@{user_id}> has no images yet." if page == 0 else "No more images."
            return text, view, None
        lines = [f"🖼️ Images by <@{user_id}>, page {page + 1} (newest first):"]
        for number, image in enumerate(shown, start=1):
            prompt = GenerationRequest.from_json(image.params_json).prompt
            lines.append(
                f"**{number}.** #{image.id} · seed {image.seed} · {image.width}x{image.height} · "
                f"{escape_markdown(embeds.shorten(prompt, 120))}"
            )
        paths = [self.bot.storage.files.path_of(image.path) for image in shown]
        data = await asyncio.to_thread(_thumbnail_grid, paths)
        file = discord.File(io.BytesIO(data), filename=f"history_{user_id}_{page + 1}.png")
        return embeds.shorten_lines(lines, embeds.CONTENT_MAX), view, file

    # -- notices ------------------------------------------------------------------------------------------

    async def notice(self, channel_id: int, user_id: int, text: str) -> None:
        """A short note to a reacting member, removed after a while (reactions can't be answered privately)."""
        channel = self.bot.get_partial_messageable(channel_id)
        try:
            await channel.send(
                embeds.shorten(f"<@{user_id}> {text}", embeds.CONTENT_MAX), delete_after=NOTICE_SECONDS,
                allowed_mentions=NO_PINGS,
            )
        except discord.HTTPException as error:
            log.warning("could not post a notice: %s", error)


def _origin(interaction: discord.Interaction) -> Origin:
    return Origin(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id or 0,
        interaction=interaction,
    )


def _thumbnail_grid(paths: Sequence[Path]) -> bytes:
    """A grid of small copies of these image files, as PNG (blocking: run it in a thread)."""
    thumbnails = []
    for path in paths:
        with Image.open(path) as image:
            thumbnail = image.convert("RGB")
        thumbnail.thumbnail((HISTORY_THUMBNAIL_SIDE, HISTORY_THUMBNAIL_SIDE))
        thumbnails.append(thumbnail)
    buffer = io.BytesIO()
    make_grid(thumbnails, gap=4).save(buffer, format="PNG")
    return buffer.getvalue()
