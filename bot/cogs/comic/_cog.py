"""The /comic command group and the 📖 reaction: Discord in, comic storage and page rendering out.

Every command acts on the member's *active* comic in this server (``new`` and ``open`` pick
it). The owner and the collaborators they ``share`` with may change a comic; anyone may view
and export it, and is told so, briefly and only to them, when they try more. A panel is drawn
like any generation job: its row and its job row are written in one transaction, the job is
handed to the runner, and a result hook links the finished image to the panel (so a panel job
re-queued after a restart still lands in its panel).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown

from bot import embeds
from bot.cogs.comic import _pages
from bot.cogs.comic._panels import (
    ComicSettings,
    panel_request,
    speaker_sides,
    take_of,
    with_take,
)
from bot.errors import UserFacingError
from bot.outlets import InteractionOutlet
from bot.views import cancel_view
from composition.comic_export import ComicInfo, ExportFile
from composition.comic_lettering import TextDoesNotFit
from composition.comic_render import RenderedPage
from generation.errors import QueueFull
from rules.request import GenerationRequest, RequestError, random_seed, validate
from rules.styles import DEFAULT_STYLES, StylePreset, match_styles
from storage.comics import (
    CharacterNotFound,
    CharacterRecord,
    ComicFull,
    ComicRecord,
    ComicStorageError,
    NewPanel,
    PanelPlan,
    PanelRecord,
)
from storage.errors import NotFound
from storage.images import ImageRecord
from storage.jobs import JobRecord, NewJob

if TYPE_CHECKING:
    from bot.bot import ArtBot

log = logging.getLogger(__name__)

ADD_TO_COMIC = "📖"
#: How long the bot's notes on a 📖 reaction stay in the channel.
NOTICE_SECONDS = 20.0
#: Give this instead of a text to clear a caption, dialogue or speaker in ``/comic edit``.
CLEAR = "-"
NO_PINGS = discord.AllowedMentions.none()

#: The layouts of :mod:`composition.comic_layout`, spelled out so Discord shows them as choices.
LayoutChoice = Literal["auto", "grid", "strip", "wide-top", "manga"]


def _title(comic: ComicRecord) -> str:
    return f"**{escape_markdown(embeds.shorten(comic.title, 100))}**"


def _quote(text: str, limit: int = 80) -> str:
    return escape_markdown(embeds.shorten(text, limit))


class Comic(commands.Cog):
    """Comics: panels drawn like /imagine jobs, lettered and laid out on pages, shared and exported."""

    comic = app_commands.Group(name="comic", description="Make comics from generated panels", guild_only=True)
    character = app_commands.Group(name="character", description="The comic's recurring characters", parent=comic)

    def __init__(self, bot: ArtBot, settings: ComicSettings | None = None) -> None:
        self.bot = bot
        self.settings = settings or ComicSettings.from_object(getattr(bot.settings, "comic", None))
        configured = getattr(bot.settings, "styles", None)
        #: The style presets comics may use: the config's ``[styles]`` once it has them, else the shipped ones.
        self.styles: Mapping[str, StylePreset] = configured if isinstance(configured, Mapping) else DEFAULT_STYLES

    async def cog_load(self) -> None:
        """Hook into finished jobs, and link any panel job that finished just before a crash."""
        self.bot.runner.on_result.append(self._link_panel)
        relinked = await self.bot.storage.comics.relink_finished()
        if relinked:
            log.info("linked %d finished panel image(s) left unlinked by the last run", relinked)

    async def cog_unload(self) -> None:
        """Unhook from finished jobs."""
        if self._link_panel in self.bot.runner.on_result:
            self.bot.runner.on_result.remove(self._link_panel)

    # -- helpers -----------------------------------------------------------------------------------

    def _style(self, comic: ComicRecord) -> StylePreset | None:
        if not comic.style:
            return None
        preset = self.styles.get(comic.style)
        if preset is None:
            log.warning("comic %s uses style %r, which is no longer configured; drawing unstyled",
                        comic.id, comic.style)
        return preset

    async def _active(self, interaction: discord.Interaction) -> ComicRecord:
        comic = await self.bot.storage.comics.active(interaction.user.id, interaction.guild_id)
        if comic is None:
            raise UserFacingError(
                "You have no active comic in this server. Start one with `/comic new` or pick one with "
                "`/comic list` and `/comic open`."
            )
        return comic

    async def _editable(self, interaction: discord.Interaction, action: str) -> ComicRecord:
        """The active comic, if the member may change it; else a short note of what they may do."""
        comic = await self._active(interaction)
        if await self.bot.storage.comics.role(comic, interaction.user.id) == "viewer":
            raise UserFacingError(
                f"Only the owner and collaborators can {action} {_title(comic)}. "
                "You can view it with `/comic show` and export it with `/comic export`."
            )
        return comic

    async def _owned(self, interaction: discord.Interaction, action: str) -> ComicRecord:
        comic = await self._active(interaction)
        if comic.owner_id != interaction.user.id:
            raise UserFacingError(f"Only the owner of {_title(comic)} can {action} it.")
        return comic

    def _validate(self, request: GenerationRequest) -> GenerationRequest:
        model = self.bot.model
        try:
            return validate(
                request, self.bot.settings.generation, count_tokens=model.count_tokens, max_tokens=model.max_tokens
            )
        except RequestError as error:
            if error.field == "prompt":
                raise UserFacingError(
                    f"{error} The prompt includes the comic's style and the descriptions of the characters it names."
                ) from None
            raise UserFacingError(str(error)) from None

    async def _check_text(self, comic: ComicRecord, caption: str | None, dialogue: str | None) -> None:
        try:
            await asyncio.to_thread(
                _pages.check_text, caption, dialogue, layout=comic.layout,
                panels_per_page=self.settings.panels_per_page,
            )
        except TextDoesNotFit as error:
            raise UserFacingError(error.user_message) from None

    def _check_capacity(self, user_id: int) -> None:
        try:
            self.bot.queue.check_capacity(user_id)
        except QueueFull as error:
            raise UserFacingError(str(error)) from None

    async def _characters(self, comic: ComicRecord) -> dict[str, str]:
        return {c.name: c.description for c in await self.bot.storage.comics.characters(comic.id)}

    def _new_job(self, interaction: discord.Interaction, request: GenerationRequest) -> NewJob:
        return NewJob(
            kind=request.kind,
            requester_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or 0,
            request_json=request.to_json(),
            application_id=interaction.application_id,
            interaction_token=interaction.token,
        )

    async def _start_job(self, interaction: discord.Interaction, job_id: int, headline: str) -> None:
        """Queue a recorded panel job and answer with its status message (as /imagine does)."""
        runner = self.bot.runner
        record = await self.bot.storage.jobs.get(job_id)
        request = GenerationRequest.from_json(record.request_json)
        outlet = runner.outlet_for(record)
        try:
            position = await runner.enqueue(record, request, outlet, check_caps=False)
        except FileNotFoundError:
            await self.bot.storage.jobs.finish(record.id, "failed", "source image missing")
            raise UserFacingError(
                "The previous panel's picture is missing from disk; redo that panel or leave "
                "`continue_from_previous` off."
            ) from None
        place = "next up" if position <= 1 else f"position {position} in the queue"
        try:
            response = await interaction.response.send_message(
                embeds.shorten(f"{headline} ({place})", embeds.CONTENT_MAX),
                allowed_mentions=NO_PINGS,
                view=cancel_view(record.id),
            )
        except discord.HTTPException:
            outlet.set_status_message(None)
            self.bot.queue.cancel(record.id)
            raise
        message_id = getattr(response, "message_id", None)
        outlet.set_status_message(message_id, via_webhook=isinstance(outlet, InteractionOutlet))
        if message_id is not None:
            await runner.remember_status(record.id, message_id, record.channel_id, record.guild_id)

    def _stop_drawing(self, panel: PanelRecord) -> None:
        """Cancel the panel's job if it is still queued or running (its result would be unused)."""
        if panel.job_id is not None and panel.drawing:
            self.bot.queue.cancel(panel.job_id)

    async def _link_panel(self, record: JobRecord, message_id: int) -> None:
        """Result hook: a finished panel job's first image becomes its panel's picture."""
        images = await self.bot.storage.images.for_job(record.id)
        if not images:
            return
        panel = await self.bot.storage.comics.link_image(record.id, images[0].id)
        if panel is not None:
            log.info("panel %s (comic %s) now shows image %s", panel.id, panel.comic_id, images[0].id)

    async def _current_image(self, panel: PanelRecord) -> ImageRecord | None:
        """The panel's newest picture: its latest job's image once stored (the result hook may not
        have linked it yet), else the image it shows."""
        if panel.job_id is not None:
            images = await self.bot.storage.images.for_job(panel.job_id)
            if images:
                return images[0]
        return await self.bot.storage.images.get(panel.image_id) if panel.image_id is not None else None

    async def _member_name(self, interaction: discord.Interaction, user_id: int) -> str:
        if interaction.user.id == user_id:
            return interaction.user.display_name
        member = interaction.guild.get_member(user_id) if interaction.guild else None
        if member is not None:
            return member.display_name
        try:
            user = self.bot.get_user(user_id) or await self.bot.fetch_user(user_id)
        except discord.HTTPException:
            return f"member {user_id}"
        return user.display_name

    async def _render(self, comic: ComicRecord, panels: Sequence[PanelRecord]) -> tuple[list[RenderedPage], str]:
        """Render every page (in a worker thread); also a note on panels shown blank or being redrawn."""
        sources = []
        blank: list[str] = []
        redrawing: list[str] = []
        sides = speaker_sides([(p.speaker, p.dialogue) for p in panels])
        for panel, side in zip(panels, sides, strict=True):
            image = await self._current_image(panel)
            path = self.bot.storage.files.path_of(image.path) if image is not None else None
            if image is None:
                blank.append(str(panel.position))
            elif panel.drawing:
                redrawing.append(str(panel.position))
            sources.append(_pages.PanelSource(path, panel.caption, panel.dialogue, side))
        pages = await asyncio.to_thread(
            _pages.render_pages, comic.title, sources, layout=comic.layout,
            panels_per_page=self.settings.panels_per_page,
        )
        notes = []
        if blank:
            notes.append(f"panel {', '.join(blank)} not drawn yet (shown blank)")
        if redrawing:
            notes.append(f"panel {', '.join(redrawing)} being redrawn")
        return pages, (f"\n-# {'; '.join(notes)}" if notes else "")

    # -- comics ------------------------------------------------------------------------------------

    async def _style_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=name, value=name) for name in match_styles(current, self.styles)]

    @comic.command(name="new")
    @app_commands.describe(
        title="The comic's title (shown above the first page)",
        style="A style preset for every panel (default: none)",
        layout="How panels are arranged on a page (default: auto)",
    )
    @app_commands.autocomplete(style=_style_autocomplete)
    async def new(
        self,
        interaction: discord.Interaction,
        title: app_commands.Range[str, 1, 100],
        style: app_commands.Range[str, 1, 32] | None = None,
        layout: LayoutChoice | None = None,
    ) -> None:
        """Start a comic in this channel and make it your active comic."""
        title = " ".join(title.split())
        if not title:
            raise UserFacingError("The title is empty; give the comic a name.")
        if style is not None and style not in self.styles:
            names = ", ".join(sorted(self.styles)) or "none configured"
            raise UserFacingError(f"There is no style `{_quote(style, 32)}`; pick one of: {names}.")
        layout_name = layout or self.settings.default_layout
        try:
            await asyncio.to_thread(
                _pages.check_title, title, layout=layout_name, panels_per_page=self.settings.panels_per_page
            )
        except TextDoesNotFit as error:
            raise UserFacingError(error.user_message) from None
        comic = await self.bot.storage.comics.create(
            owner_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id or 0,
            title=title, style=style, layout=layout_name, seed=random_seed(),
        )
        details = f"style {style}, " if style else ""
        await interaction.response.send_message(
            f"📘 New comic {_title(comic)} (#{comic.id}; {details}layout {comic.layout}). It is your active comic: "
            "add characters with `/comic character add` and panels with `/comic panel`.",
            allowed_mentions=NO_PINGS,
        )

    @comic.command(name="list")
    async def list_comics(self, interaction: discord.Interaction) -> None:
        """List the comics of this server you own, share or can view."""
        summaries = await self.bot.storage.comics.visible(interaction.guild_id, interaction.user.id)
        if not summaries:
            raise UserFacingError("There are no comics in this server yet. Start one with `/comic new`.")
        active = await self.bot.storage.comics.active(interaction.user.id, interaction.guild_id)
        lines = []
        for summary in summaries:
            comic = summary.comic
            marker = " ← active" if active is not None and active.id == comic.id else ""
            lines.append(f"`#{comic.id}` {_title(comic)}: {summary.panel_count} panel(s), {summary.role}{marker}")
        text = "Comics here (`/comic open id` picks one):\n" + "\n".join(lines)
        await interaction.response.send_message(embeds.shorten(text, embeds.CONTENT_MAX), ephemeral=True)

    @comic.command(name="open")
    @app_commands.describe(id="The comic's number, as `/comic list` shows it")
    async def open_comic(self, interaction: discord.Interaction, id: app_commands.Range[int, 1]) -> None:
        """Make a comic your active comic."""
        try:
            comic = await self.bot.storage.comics.get(id)
        except ComicStorageError as error:
            raise UserFacingError(f"{error} `/comic list` shows the comics here.") from None
        if comic.guild_id != interaction.guild_id:
            raise UserFacingError(f"There is no comic #{id} in this server. `/comic list` shows the comics here.")
        await self.bot.storage.comics.set_active(interaction.user.id, interaction.guild_id, comic.id)
        role = await self.bot.storage.comics.role(comic, interaction.user.id)
        can = "add and edit panels" if role != "viewer" else "view and export it (the owner and collaborators edit)"
        await interaction.response.send_message(
            f"{_title(comic)} (#{comic.id}) is now your active comic. You can {can}.", ephemeral=True
        )

    # -- sharing -----------------------------------------------------------------------------------

    @comic.command(name="share")
    @app_commands.describe(member="Who may add and edit panels")
    async def share(self, interaction: discord.Interaction, member: discord.User) -> None:
        """Let a member add and edit panels of your active comic."""
        comic = await self._owned(interaction, "share")
        if member.bot:
            raise UserFacingError("Bots can't edit comics; pick a member.")
        if member.id == comic.owner_id:
            raise UserFacingError(f"You own {_title(comic)} already.")
        added = await self.bot.storage.comics.add_collaborator(comic.id, member.id)
        if not added:
            raise UserFacingError(f"{member.mention} can already edit {_title(comic)}.")
        made_active = await self.bot.storage.comics.set_active_if_none(member.id, interaction.guild_id, comic.id)
        hint = "it is now their active comic" if made_active else f"they can pick it with `/comic open {comic.id}`"
        await interaction.response.send_message(
            f"🤝 {member.mention} can now add and edit panels of {_title(comic)}; {hint}.", allowed_mentions=NO_PINGS
        )

    @comic.command(name="unshare")
    @app_commands.describe(member="Who may no longer edit")
    async def unshare(self, interaction: discord.Interaction, member: discord.User) -> None:
        """Stop a member from editing your active comic (they can still view it)."""
        comic = await self._owned(interaction, "unshare")
        if not await self.bot.storage.comics.remove_collaborator(comic.id, member.id):
            raise UserFacingError(f"{member.mention} is not a collaborator on {_title(comic)}.")
        await interaction.response.send_message(
            f"{member.mention} can no longer edit {_title(comic)}.", allowed_mentions=NO_PINGS
        )

    # -- characters --------------------------------------------------------------------------------

    @character.command(name="add")
    @app_commands.describe(
        name="The name you will use in panel prompts",
        description="How they look, woven into every prompt that names them",
    )
    async def character_add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 40],
        description: app_commands.Range[str, 1, 300],
    ) -> None:
        """Add a character (or change one's description) so they look alike in every panel."""
        comic = await self._editable(interaction, "change the characters of")
        name, description = " ".join(name.split()), " ".join(description.split())
        if not any(ch.isalnum() for ch in name):
            raise UserFacingError("A character's name needs at least one letter or digit.")
        if not description:
            raise UserFacingError("The description is empty; say how the character looks.")
        try:
            character, created = await self.bot.storage.comics.set_character(
                comic.id, name, description, max_characters=self.settings.max_characters
            )
        except ComicFull as error:
            raise UserFacingError(str(error)) from None
        verb = "joins" if created else "is updated in"
        await interaction.response.send_message(
            f"🧑‍🎨 **{_quote(character.name, 40)}** {verb} {_title(comic)}: {_quote(description, 300)}",
            allowed_mentions=NO_PINGS,
        )

    @character.command(name="list")
    async def character_list(self, interaction: discord.Interaction) -> None:
        """Show the characters of your active comic."""
        comic = await self._active(interaction)
        characters = await self.bot.storage.comics.characters(comic.id)
        if not characters:
            raise UserFacingError(f"{_title(comic)} has no characters yet; add one with `/comic character add`.")
        lines = [f"• **{_quote(c.name, 40)}**: {_quote(c.description, 300)}" for c in characters]
        await interaction.response.send_message(
            embeds.shorten(f"Characters of {_title(comic)}:\n" + "\n".join(lines), embeds.CONTENT_MAX), ephemeral=True
        )

    @character.command(name="remove")
    @app_commands.describe(name="The character's name")
    async def character_remove(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 40]) -> None:
        """Remove a character (panels already drawn keep their look)."""
        comic = await self._editable(interaction, "change the characters of")
        try:
            removed = await self.bot.storage.comics.remove_character(comic.id, " ".join(name.split()))
        except CharacterNotFound:
            raise UserFacingError(f"{_title(comic)} has no character called **{_quote(name, 40)}**.") from None
        await interaction.response.send_message(
            f"**{_quote(removed.name, 40)}** leaves {_title(comic)}.", allowed_mentions=NO_PINGS
        )

    # -- panels ------------------------------------------------------------------------------------

    @comic.command(name="panel")
    @app_commands.describe(
        prompt="What the panel shows; name characters to draw them as described",
        caption="Narration in a box at the top of the panel",
        dialogue="What the speaker says, in a speech bubble",
        speaker="Who speaks (bubbles alternate sides by speaker)",
        continue_from_previous="Draw from the previous panel's picture for visual continuity",
    )
    async def panel(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 1000],
        caption: app_commands.Range[str, 1, 500] | None = None,
        dialogue: app_commands.Range[str, 1, 500] | None = None,
        speaker: app_commands.Range[str, 1, 40] | None = None,
        continue_from_previous: bool = False,
    ) -> None:
        """Queue the next panel of your active comic."""
        comic = await self._editable(interaction, "add panels to")
        caption, dialogue, speaker = _clean(caption), _clean(dialogue), _clean(speaker)
        if speaker is not None and dialogue is None:
            raise UserFacingError("`speaker` goes with `dialogue`; add what they say, or leave `speaker` out.")
        count = await self.bot.storage.comics.panel_count(comic.id)
        if count >= self.settings.max_panels:
            raise UserFacingError(
                f"{_title(comic)} already has {count} panels (the limit is {self.settings.max_panels}); "
                "remove one or start a new comic."
            )
        await self._check_text(comic, caption, dialogue)
        init: tuple[str, int, int] | None = None
        if continue_from_previous:
            panels = await self.bot.storage.comics.panels(comic.id)
            if not panels:
                raise UserFacingError(
                    "There is no previous panel to continue from; leave `continue_from_previous` off."
                )
            previous = panels[-1]
            image = await self._current_image(previous)
            if image is None:
                raise UserFacingError(
                    f"Panel {previous.position} isn't drawn yet; wait for it, or leave `continue_from_previous` off."
                )
            init = (image.path, image.width, image.height)
        request = self._validate(panel_request(
            prompt,
            characters=await self._characters(comic),
            style=self._style(comic),
            limits=self.bot.settings.generation,
            size=self.bot.model.native_size,
            init_image=init,
            strength=self.settings.continue_strength,
        ))
        self._check_capacity(interaction.user.id)

        def plan(stored: PanelRecord) -> PanelPlan:
            drawn = with_take(request, comic_id=comic.id, comic_seed=comic.seed, panel_id=stored.id, take=0)
            return PanelPlan(drawn.seed, drawn.to_json(), self._new_job(interaction, drawn))

        try:
            change = await self.bot.storage.comics.add_panel(
                comic.id, NewPanel(prompt.strip(), caption, dialogue, speaker), plan,
                max_panels=self.settings.max_panels,
            )
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        assert change.job_id is not None
        await self._start_job(
            interaction, change.job_id,
            f"🖼️ Panel {change.after.position} of {_title(comic)}: **{_quote(prompt)}** is queued",
        )

    @comic.command(name="edit")
    @app_commands.describe(
        panel="The panel's number",
        prompt="A new prompt: the panel is redrawn with the same seed",
        caption=f"A new caption (`{CLEAR}` removes it)",
        dialogue=f"New dialogue (`{CLEAR}` removes it)",
        speaker=f"A new speaker (`{CLEAR}` removes it)",
    )
    async def edit(
        self,
        interaction: discord.Interaction,
        panel: app_commands.Range[int, 1],
        prompt: app_commands.Range[str, 1, 1000] | None = None,
        caption: app_commands.Range[str, 1, 500] | None = None,
        dialogue: app_commands.Range[str, 1, 500] | None = None,
        speaker: app_commands.Range[str, 1, 40] | None = None,
    ) -> None:
        """Change a panel's prompt, caption, dialogue or speaker."""
        comic = await self._editable(interaction, "edit panels of")
        changes: dict[str, str | None] = {}
        if prompt is not None:
            if not prompt.strip():
                raise UserFacingError("The prompt is empty; describe the panel.")
            changes["prompt"] = prompt.strip()
        for name, value in (("caption", caption), ("dialogue", dialogue), ("speaker", speaker)):
            if value is not None:
                changes[name] = None if value.strip() == CLEAR else _clean(value)
        if not changes:
            raise UserFacingError("Give at least one of `prompt`, `caption`, `dialogue` or `speaker` to change.")
        current = await self._panel(comic, panel)
        caption_now = changes.get("caption", current.caption)
        dialogue_now = changes.get("dialogue", current.dialogue)
        speaker_now = changes.get("speaker", current.speaker)
        if speaker_now is not None and dialogue_now is None:
            raise UserFacingError("`speaker` goes with `dialogue`; this panel would have a speaker but no dialogue.")
        if "caption" in changes or "dialogue" in changes:
            await self._check_text(comic, caption_now, dialogue_now)

        plan = None
        if "prompt" in changes:
            characters = await self._characters(comic)
            style = self._style(comic)
            self._check_capacity(interaction.user.id)
            new_prompt = changes["prompt"] or ""
            fresh = panel_request(new_prompt, characters=characters, style=style,
                                  limits=self.bot.settings.generation, size=self.bot.model.native_size)
            self._validate(fresh)

            def plan(stored: PanelRecord) -> PanelPlan:
                old = GenerationRequest.from_json(stored.params_json)
                drawn = old.replace(prompt=fresh.prompt, count=1)
                drawn = with_take(drawn, comic_id=comic.id, comic_seed=comic.seed, panel_id=stored.id,
                                  take=take_of(old))
                # The seed stays: only redo picks a new one.
                drawn = drawn.replace(seed=stored.seed)
                return PanelPlan(drawn.seed, drawn.to_json(), self._new_job(interaction, drawn))

        try:
            change = await self.bot.storage.comics.update_panel(comic.id, panel, changes, plan)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        assert change.before is not None
        if change.job_id is None:
            what = ", ".join(changes)
            await interaction.response.send_message(
                f"✏️ Panel {change.after.position} of {_title(comic)}: {what} updated.", allowed_mentions=NO_PINGS
            )
            return
        self._stop_drawing(change.before)
        await self._start_job(
            interaction, change.job_id,
            f"✏️ Panel {change.after.position} of {_title(comic)} is redrawn with the new prompt "
            f"**{_quote(change.after.prompt)}**",
        )

    @comic.command(name="redo")
    @app_commands.describe(panel="The panel's number")
    async def redo(self, interaction: discord.Interaction, panel: app_commands.Range[int, 1]) -> None:
        """Redraw a panel with a new seed (everything else stays)."""
        comic = await self._editable(interaction, "redo panels of")
        await self._panel(comic, panel)
        self._check_capacity(interaction.user.id)

        def plan(stored: PanelRecord) -> PanelPlan:
            old = GenerationRequest.from_json(stored.params_json)
            drawn = with_take(old, comic_id=comic.id, comic_seed=comic.seed, panel_id=stored.id, take=take_of(old) + 1)
            return PanelPlan(drawn.seed, drawn.to_json(), self._new_job(interaction, drawn))

        try:
            change = await self.bot.storage.comics.update_panel(comic.id, panel, {}, plan)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        assert change.before is not None and change.job_id is not None
        self._stop_drawing(change.before)
        await self._start_job(
            interaction, change.job_id,
            f"🔁 Panel {change.after.position} of {_title(comic)} is redrawn with seed {change.after.seed}",
        )

    @comic.command(name="move")
    @app_commands.describe(panel="The panel's number now", to="Its new number")
    async def move(
        self, interaction: discord.Interaction, panel: app_commands.Range[int, 1], to: app_commands.Range[int, 1]
    ) -> None:
        """Move a panel to another place; the panels between shift over."""
        comic = await self._editable(interaction, "reorder panels of")
        try:
            panels = await self.bot.storage.comics.move_panel(comic.id, panel, to)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        await interaction.response.send_message(
            f"↕️ Panel {panel} of {_title(comic)} is now panel {to} of {len(panels)}.", allowed_mentions=NO_PINGS
        )

    @comic.command(name="remove")
    @app_commands.describe(panel="The panel's number")
    async def remove(self, interaction: discord.Interaction, panel: app_commands.Range[int, 1]) -> None:
        """Remove a panel; the panels after it move up."""
        comic = await self._editable(interaction, "remove panels of")
        try:
            removed = await self.bot.storage.comics.remove_panel(comic.id, panel)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        self._stop_drawing(removed)
        left = await self.bot.storage.comics.panel_count(comic.id)
        await interaction.response.send_message(
            f"🗑️ Removed panel {panel} (**{_quote(removed.prompt)}**) of {_title(comic)}; {left} panel(s) left.",
            allowed_mentions=NO_PINGS,
        )

    async def _panel(self, comic: ComicRecord, position: int) -> PanelRecord:
        try:
            return await self.bot.storage.comics.panel_at(comic.id, position)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None

    # -- showing and exporting ---------------------------------------------------------------------

    async def _panels_to_render(self, comic: ComicRecord) -> list[PanelRecord]:
        panels = await self.bot.storage.comics.panels(comic.id)
        if not panels:
            raise UserFacingError(f"{_title(comic)} has no panels yet; add one with `/comic panel`.")
        return panels

    @comic.command(name="show")
    @app_commands.describe(page="Which page (default: the first)")
    async def show(self, interaction: discord.Interaction, page: app_commands.Range[int, 1, 100] = 1) -> None:
        """Post a rendered page of your active comic."""
        comic = await self._active(interaction)
        panels = await self._panels_to_render(comic)
        pages_total = _pages.page_count(len(panels), self.settings.panels_per_page)
        if page > pages_total:
            raise UserFacingError(f"{_title(comic)} has {pages_total} page(s); pick a page from 1 to {pages_total}.")
        await interaction.response.defer(thinking=True)
        try:
            rendered, note = await self._render(comic, panels)
        except TextDoesNotFit as error:
            await interaction.followup.send(error.user_message)
            return
        files = await asyncio.to_thread(
            _pages.export_files, [rendered[page - 1]], fmt="png", upload_limit=interaction.filesize_limit,
            info=ComicInfo(title=comic.title, writer=""),
            basename=f"{_pages.file_basename(comic.title, comic.id)}-p{page}",
        )
        text = f"{_title(comic)}, page {page} of {pages_total} ({len(panels)} panels){note}"
        await interaction.followup.send(
            embeds.shorten(text, embeds.CONTENT_MAX), files=[_file(files[0])], allowed_mentions=NO_PINGS
        )

    @comic.command(name="export")
    @app_commands.describe(format="png: an image per page; pdf: one document; cbz: a comic-book archive")
    async def export(self, interaction: discord.Interaction, format: Literal["png", "pdf", "cbz"]) -> None:
        """Export your active comic as PNG pages, a PDF or a CBZ."""
        comic = await self._active(interaction)
        panels = await self._panels_to_render(comic)
        await interaction.response.defer(thinking=True)
        try:
            rendered, note = await self._render(comic, panels)
        except TextDoesNotFit as error:
            await interaction.followup.send(error.user_message)
            return
        info = ComicInfo(
            title=comic.title,
            writer=await self._member_name(interaction, comic.owner_id),
            summary=_summary(panels, await self.bot.storage.comics.characters(comic.id)),
            notes=f"Made with panelbot; comic #{comic.id}, {len(panels)} panels.",
            manga=comic.layout == "manga",
        )
        limit = interaction.filesize_limit
        try:
            files = await asyncio.to_thread(
                _pages.export_files, rendered, fmt=format, upload_limit=limit, info=info,
                basename=_pages.file_basename(comic.title, comic.id),
            )
        except ValueError:
            log.exception("export of comic %s to %s failed", comic.id, format)
            await interaction.followup.send("This server's upload limit is too small for this comic's pages.")
            return
        batches = _pages.upload_batches(files, limit)
        split = f", in {len(files)} files" if format != "png" and len(files) > 1 else ""
        head = (f"📦 {_title(comic)} as {format.upper()}: {len(rendered)} page(s){split}"
                f"{note}")
        for index, batch in enumerate(batches):
            content = head if index == 0 else f"{_title(comic)} ({index + 1}/{len(batches)})"
            await interaction.followup.send(
                embeds.shorten(content, embeds.CONTENT_MAX), files=[_file(f) for f in batch], allowed_mentions=NO_PINGS
            )

    # -- the 📖 reaction ---------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """📖 on one of the bot's results adds its (first) image as the next panel of the member's active comic."""
        if self.bot.user is None or payload.user_id == self.bot.user.id or str(payload.emoji) != ADD_TO_COMIC:
            return
        storage = self.bot.storage
        try:
            posted = await storage.messages.get(payload.message_id)
        except NotFound:
            return
        if posted.kind != "result" or not posted.image_ids:
            return
        comic = await storage.comics.active(payload.user_id, payload.guild_id)
        if comic is None:
            await self._notice(payload, "You have no active comic here; start one with `/comic new` first.")
            return
        if await storage.comics.role(comic, payload.user_id) == "viewer":
            await self._notice(payload, f"Only the owner and collaborators can add panels to {_title(comic)}.")
            return
        image = await storage.images.get(posted.image_ids[0])
        prompt = GenerationRequest.from_json(image.params_json).prompt

        def plan(stored: PanelRecord) -> PanelPlan:
            return PanelPlan(seed=image.seed, params_json=image.params_json, job=None)

        try:
            change = await storage.comics.add_panel(
                comic.id, NewPanel(prompt, image_id=image.id), plan, max_panels=self.settings.max_panels
            )
        except ComicStorageError as error:
            await self._notice(payload, str(error))
            return
        await self._notice(payload, f"{ADD_TO_COMIC} Added as panel {change.after.position} of {_title(comic)}.")

    async def _notice(self, payload: discord.RawReactionActionEvent, text: str) -> None:
        """A short note to a reacting member, removed after a while (reactions can't be answered privately)."""
        channel = self.bot.get_partial_messageable(payload.channel_id)
        try:
            await channel.send(f"<@{payload.user_id}> {text}", delete_after=NOTICE_SECONDS, allowed_mentions=NO_PINGS)
        except discord.HTTPException as error:
            log.warning("could not post a comic notice: %s", error)


def _clean(text: str | None) -> str | None:
    """Text with its whitespace trimmed; None for nothing."""
    if text is None:
        return None
    text = text.strip()
    return text or None


def _file(export: ExportFile) -> discord.File:
    return discord.File(io.BytesIO(export.data), filename=export.filename)


def _summary(panels: Sequence[PanelRecord], characters: Sequence[CharacterRecord]) -> str:
    """A CBZ summary: the captions in reading order (the story's narration), then who is in it."""
    captions = " ".join(p.caption for p in panels if p.caption)
    names = [c.name for c in characters]
    parts = [captions] if captions else [f"A comic of {len(panels)} panels."]
    if names:
        parts.append("Characters: " + ", ".join(names) + ".")
    return embeds.shorten(" ".join(parts), 2000)
