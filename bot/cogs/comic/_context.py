"""What every /comic command group shares: the services, the ``[comic]`` settings, styles, and common checks.

Every command acts on the member's *active* comic in this server (``new`` and ``open`` pick
it). The owner and the collaborators they ``share`` with may change a comic; anyone may view
and export it, and is told so, briefly and only to them, when they try more. Refusals are
:class:`~bot.errors.UserFacingError`, answered ephemerally by the bot's error handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import discord
from discord.utils import escape_markdown

from bot import embeds
from bot.add_to_comic import comic_title
from bot.character_looks import trained_looks
from bot.cogs.comic import _pages
from bot.config import ComicSettings
from bot.errors import UserFacingError
from bot.jobs import JobOrigin
from bot.services import Services
from composition.comic_lettering import TextDoesNotFit
from generation.errors import QueueFull
from rules.character_routes import CharacterFacts
from rules.characters import TrainedLook
from rules.frame_size import size_for_aspect
from rules.request import GenerationRequest, RequestError
from rules.styles import StylePreset
from storage.comics import ComicRecord, ComicStorageError, PanelRecord
from storage.images import ImageRecord

log = logging.getLogger(__name__)

#: Give this instead of a text to clear a caption, dialogue or speaker in ``/comic edit``.
CLEAR = "-"
NO_PINGS = discord.AllowedMentions.none()
#: What a member is told when the previous panel's picture, drawn from, is gone from disk.
MISSING_PREVIOUS_PANEL = (
    "The previous panel's picture is missing from disk; redo that panel or leave `continue_from_previous` off."
)


def quote(text: str, limit: int = 80) -> str:
    """A member's text quoted in a message: shortened and markdown-escaped."""
    return escape_markdown(embeds.shorten(text, limit))


def clean(text: str | None) -> str | None:
    """Text with its whitespace trimmed; None for nothing."""
    if text is None:
        return None
    text = text.strip()
    return text or None


class ComicContext:
    """The state and checks the /comic groups share (one per cog; the cog's ``settings`` live here)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.storage = services.storage
        #: The ``[comic]`` settings (tests and the owner may replace them while running).
        self.settings: ComicSettings = services.settings.comic
        #: The style presets comics may use (``[styles]``).
        self.styles: Mapping[str, StylePreset] = services.settings.styles

    def style(self, comic: ComicRecord) -> StylePreset | None:
        """The comic's style preset, or None (no style, or one no longer configured)."""
        if not comic.style:
            return None
        preset = self.styles.get(comic.style)
        if preset is None:
            log.warning("comic %s uses style %r, which is no longer configured; drawing unstyled",
                        comic.id, comic.style)
        return preset

    async def active(self, interaction: discord.Interaction) -> ComicRecord:
        """The member's active comic in this server."""
        comic = await self.storage.comics.active(interaction.user.id, interaction.guild_id)
        if comic is None:
            raise UserFacingError(
                "You have no active comic in this server. Start one with `/comic new` or pick one with "
                "`/comic list` and `/comic open`."
            )
        return comic

    async def editable(self, interaction: discord.Interaction, action: str) -> ComicRecord:
        """The active comic, if the member may change it; else a short note of what they may do."""
        comic = await self.active(interaction)
        if await self.storage.comics.role(comic, interaction.user.id) == "viewer":
            raise UserFacingError(
                f"Only the owner and collaborators can {action} {comic_title(comic)}. "
                "You can view it with `/comic show` and export it with `/comic export`."
            )
        return comic

    async def owned(self, interaction: discord.Interaction, action: str) -> ComicRecord:
        """The active comic, if the member owns it."""
        comic = await self.active(interaction)
        if comic.owner_id != interaction.user.id:
            raise UserFacingError(f"Only the owner of {comic_title(comic)} can {action} it.")
        return comic

    async def panel(self, comic: ComicRecord, position: int) -> PanelRecord:
        """The comic's panel at ``position``."""
        try:
            return await self.storage.comics.panel_at(comic.id, position)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None

    def check_words(self, *texts: str | None) -> None:
        """Refuse text with a word the server blocks (``[safety] blocked_words``), as /imagine does."""
        for text in texts:
            blocked = self.services.settings.safety.blocked_word_in(text) if text else None
            if blocked is not None:
                raise UserFacingError(f"That contains a word this server doesn't allow (`{blocked}`).")

    def validate(self, request: GenerationRequest, guild_id: int | None = None) -> GenerationRequest:
        """A panel's request checked against the blocked words and the limits (a long prompt is explained:
        style and characters count). The prompt checked is the one drawn: characters' descriptions woven in."""
        self.check_words(request.prompt)
        try:
            return self.services.runner.validate(request, guild_id)
        except RequestError as error:
            if error.field == "prompt":
                raise UserFacingError(
                    f"{error} The prompt includes the comic's style and the descriptions of the characters it names."
                ) from None
            raise UserFacingError(str(error)) from None

    async def check_text(self, comic: ComicRecord, caption: str | None, dialogue: str | None) -> None:
        """Refuse a caption or dialogue that would not fit the smallest panel of this comic."""
        try:
            await asyncio.to_thread(
                _pages.check_text, caption, dialogue, layout=comic.layout,
                panels_per_page=self.settings.panels_per_page,
            )
        except TextDoesNotFit as error:
            raise UserFacingError(error.user_message) from None

    def frame(self, comic: ComicRecord, n_panels: int, position: int) -> tuple[int, int]:
        """The (width, height) of the frame panel ``position`` (1-based) fills when the comic has ``n_panels``."""
        return _pages.frame_shape(comic.title, n_panels, position - 1, layout=comic.layout,
                                  panels_per_page=self.settings.panels_per_page)

    def draw_size(self, comic: ComicRecord, n_panels: int, position: int) -> tuple[int, int]:
        """The size panel ``position`` is drawn at: its frame's shape, about the model's native pixel count."""
        width, height = self.frame(comic, n_panels, position)
        return size_for_aspect(width / height, native=self.services.model.native_size,
                               limits=self.services.settings.generation)

    async def check_capacity(self, interaction: discord.Interaction, prompt: str | None = None) -> None:
        """Refuse a panel job the queue would not take from this member (or their server) now, or that
        the server's own rules refuse (``/settings``: channels, roles, kid-friendly, cooldown, daily quota)."""
        servers = self.services.servers
        try:
            self.services.queue.check_capacity(
                interaction.user.id, interaction.guild_id,
                user_limit=servers.effective(interaction.guild_id).max_pending_per_member,
            )
        except QueueFull as error:
            raise UserFacingError(str(error)) from None
        refused = await servers.refusal(JobOrigin.of(interaction), prompt, images=1)
        if refused is not None:
            raise UserFacingError(refused)

    async def characters(self, comic: ComicRecord) -> dict[str, str]:
        """The comic's characters: name to description."""
        return {c.name: c.description for c in await self.storage.comics.characters(comic.id)}

    async def character_records(self, comic: ComicRecord) -> dict[str, CharacterFacts]:
        """The comic's characters by name: description, reference pictures, trained LoRA and likeness scale."""
        records = await self.storage.comics.characters(comic.id)
        references = await self.storage.characters.references_of([c.id for c in records])
        trained = {t.character_id: t.lora.path for t in await self.storage.characters.trained(comic.id)}
        return {
            c.name: CharacterFacts(
                c.name, c.description, references=[r.file for r in references.get(c.id, [])],
                lora_path=trained.get(c.id), ip_adapter_scale=c.ip_adapter_scale,
            )
            for c in records
        }

    @property
    def ip_adapter_configured(self) -> bool:
        """Whether ``[model] ip_adapter`` names IP-Adapter weights."""
        return bool(self.services.settings.model.ip_adapter)

    async def trained(self, comic: ComicRecord) -> dict[str, TrainedLook]:
        """The comic's characters with a trained LoRA: name to how a panel naming them applies it."""
        return await trained_looks(self.storage, comic.id)

    def stop_drawing(self, panel: PanelRecord) -> None:
        """Cancel the panel's job if it is still queued or running (its result would be unused)."""
        if panel.job_id is not None and panel.drawing:
            self.services.queue.cancel(panel.job_id)

    async def current_image(self, panel: PanelRecord) -> ImageRecord | None:
        """The panel's newest picture: its latest job's image once stored (the result hook may not
        have linked it yet), else the image it shows."""
        if panel.job_id is not None:
            images = await self.storage.images.for_job(panel.job_id)
            if images:
                return images[0]
        return await self.storage.images.get(panel.image_id) if panel.image_id is not None else None

    async def start_panel_job(self, interaction: discord.Interaction, job_id: int, headline: str) -> None:
        """Queue a recorded panel job and answer with its status message (as /imagine does)."""
        record = await self.storage.jobs.get(job_id)
        await self.services.runner.start_job(
            JobOrigin.of(interaction), record, headline=headline, missing_source=MISSING_PREVIOUS_PANEL
        )
