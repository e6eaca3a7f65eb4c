"""What the buttons and reactions on a result do: re-roll, upscale, vary, delete, info, add to comic, history.

Buttons (:mod:`._buttons`) and reactions (:class:`~bot.cogs.imagine._cog.Imagine`) both call
:class:`ResultActions`, so 🔄 the button and 🔄 the reaction are the same code. Everything is
looked up in the database from ids (the job, the image), so it all works on messages posted
before a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import discord
from discord.utils import escape_markdown
from PIL import Image

from bot import embeds
from bot.add_to_comic import add_image_to_comic
from bot.cogs.imagine._buttons import history_view
from bot.discord_limits import CONTENT_MAX
from bot.jobs import JobOrigin
from bot.services import Services
from composition.grid import make_grid
from rules.request import GenerationRequest, RequestError, fit_source, reroll_of, upscale_of, variation_of
from storage.errors import NotFound
from storage.images import ImageRecord

log = logging.getLogger(__name__)

#: Images on one /history page (shown as one grid of thumbnails).
HISTORY_PAGE_SIZE = 4
#: The deepest /history page (keeps each page's lookup small).
HISTORY_MAX_PAGES = 250
HISTORY_THUMBNAIL_SIDE = 256

#: What a member is told who reacts to (or clicks for) an image the safety checker withheld.
WITHHELD_TEXT = "That image was withheld by the safety checker; nothing can be made from it here."

Strength = Literal["subtle", "strong"]


class ResultActions:
    """Turns a click or a reaction on a result into a new job, a deletion or a private answer."""

    def __init__(self, services: Services) -> None:
        self.services = services

    # -- re-roll, upscale, vary ------------------------------------------------------------------------

    async def _image(self, origin: JobOrigin, image_id: int) -> ImageRecord | None:
        """The image to work from, or None (the member told why): gone, or withheld by the safety checker."""
        try:
            image = await self.services.storage.images.get(image_id)
        except NotFound:
            await self.services.runner.refuse(origin, "That image is no longer in the database.")
            return None
        if self.services.runner.withholds(image.flagged, origin.channel_id):
            await self.services.runner.refuse(origin, WITHHELD_TEXT)
            return None
        return image

    async def reroll(self, origin: JobOrigin, job_id: int) -> int | None:
        """🔄: the job's request again with a new seed (all its images)."""
        try:
            job = await self.services.storage.jobs.get(job_id)
        except NotFound:
            await self.services.runner.refuse(origin, "That job is no longer in the database.")
            return None
        images = await self.services.storage.images.for_job(job_id)
        parent = images[0].id if images else job.parent_image_id
        request = reroll_of(GenerationRequest.from_json(job.request_json))
        return await self.services.runner.start_job(origin, request, parent_image_id=parent)

    async def upscale(self, origin: JobOrigin, image_id: int) -> int | None:
        """🔍 / U1-U4 / 1️⃣-4️⃣: a hires-fix (or the configured upscaler's) upscale of one image."""
        image = await self._image(origin, image_id)
        if image is None:
            return None
        source = GenerationRequest.from_json(image.params_json)
        try:
            request = upscale_of(
                source, source_path=image.path, source_seed=image.seed, width=image.width, height=image.height,
                limits=self.services.settings.generation,
            )
        except RequestError as error:
            await self.services.runner.refuse(origin, str(error))
            return None
        return await self.services.runner.start_job(origin, request, parent_image_id=image.id)

    async def vary(self, origin: JobOrigin, image_id: int, strength: Strength) -> int | None:
        """🎨 / V1-V4: img2img from one image with its prompt, a new seed, subtle or strong."""
        image = await self._image(origin, image_id)
        if image is None:
            return None
        limits = self.services.settings.generation
        amount = limits.variation_subtle_strength if strength == "subtle" else limits.variation_strong_strength
        source = GenerationRequest.from_json(image.params_json)
        width, height = fit_source(image.width, image.height, limits)  # an upscale is larger than max_pixels
        request = variation_of(source, source_path=image.path, width=width, height=height, strength=amount)
        return await self.services.runner.start_job(origin, request, parent_image_id=image.id)

    async def upscale_from_interaction(self, interaction: discord.Interaction, image_id: int) -> None:
        """A U/🔍 button click."""
        await self.upscale(JobOrigin.of(interaction), image_id)

    async def vary_from_interaction(self, interaction: discord.Interaction, image_id: int, strength: Strength) -> None:
        """A V/🎨 button click."""
        await self.vary(JobOrigin.of(interaction), image_id, strength)

    async def reroll_from_interaction(self, interaction: discord.Interaction, job_id: int) -> None:
        """A 🔄 button click."""
        await self.reroll(JobOrigin.of(interaction), job_id)

    # -- delete ---------------------------------------------------------------------------------------

    async def may_delete(self, job_id: int, user_id: int, *, moderator: bool) -> bool:
        """The job's requester and members who can manage messages may delete its result."""
        if moderator:
            return True
        try:
            job = await self.services.storage.jobs.get(job_id)
        except NotFound:
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
        await self.forget_result(job_id)
        log.info("result of job %s deleted by %s", job_id, interaction.user.id)

    async def forget_result(self, job_id: int) -> None:
        """A result was deleted: its images leave /history and can no longer go into comics."""
        images = await self.services.storage.images.for_job(job_id)
        await self.services.storage.images.mark_deleted([image.id for image in images])

    # -- info, comic, history ---------------------------------------------------------------------------

    async def info(self, image_id: int) -> str:
        """ℹ️: every parameter of one image and the /imagine line that makes it again."""
        try:
            image = await self.services.storage.images.get(image_id)
        except NotFound:
            return "That image is no longer in the database."
        request = GenerationRequest.from_json(image.params_json)
        native = self.services.model.native_size
        with contextlib.suppress(RequestError):  # a model no longer configured: the default's size
            native = self.services.native_size_of(self.services.model_spec(request.model), self.services.model_states())
        return embeds.info_text(
            request, image_id=image.id, job_id=image.job_id, model_name=self.services.runner.model_title(request),
            native=native, parent_image_id=image.parent_image_id,
        )

    async def add_to_comic(self, image_id: int, *, user_id: int, guild_id: int | None) -> str:
        """📖: add the image as the next panel of the member's active comic; what to tell them."""
        return await add_image_to_comic(
            self.services.storage, image_id, user_id=user_id, guild_id=guild_id,
            max_panels=self.services.settings.comic.max_panels,
        )

    async def history_page(
        self, user_id: int, page: int, *, guild_id: int | None
    ) -> tuple[str, discord.ui.View, discord.File | None]:
        """One page of a member's images made in this server, newest first: a text list, ◀/▶ buttons and
        a grid of thumbnails. Images the safety checker flagged and deleted results are never shown."""
        page = max(0, min(page, HISTORY_MAX_PAGES - 1))
        start = page * HISTORY_PAGE_SIZE
        rows = await self.services.storage.images.history(
            user_id, guild_id=guild_id, limit=start + HISTORY_PAGE_SIZE + 1
        )
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
        paths = [self.services.storage.files.path_of(image.path) for image in shown]
        data = await asyncio.to_thread(_thumbnail_grid, paths)
        file = discord.File(io.BytesIO(data), filename=f"history_{user_id}_{page + 1}.png")
        return embeds.shorten_lines(lines, CONTENT_MAX), view, file


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
