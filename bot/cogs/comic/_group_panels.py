"""/comic panel, edit, redo, move and remove: a comic's panels, drawn like any generation job.

A panel's row and its job row are written in one transaction, then the job is started by the
job runner like /imagine's; a result hook (see the cog) links the finished image to the panel,
so a panel job re-queued after a restart still lands in its panel.
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.add_to_comic import comic_title
from bot.cogs.comic import _redraw
from bot.cogs.comic._context import CLEAR, NO_PINGS, ComicContext, clean, quote
from bot.cogs.comic._panels import character_routes, panel_request, take_of, with_routes, with_take
from bot.errors import UserFacingError
from bot.jobs import JobOrigin
from rules.characters import CHARACTERS_KEY
from rules.request import GenerationRequest, fit_source
from storage.comics import ComicRecord, ComicStorageError, NewPanel, PanelPlan, PanelPlanner, PanelRecord

#: A panel's texts a ``/comic edit`` may change besides its prompt.
TEXT_FIELDS = ("caption", "dialogue", "speaker")


class PanelCommands(app_commands.Group, name="comic", description="Make comics from generated panels"):
    """The commands about panels; the cog moves them into its one ``/comic`` group."""

    def __init__(self, context: ComicContext) -> None:
        super().__init__()
        self.context = context

    @app_commands.command(name="panel")
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
        context = self.context
        comic = await context.editable(interaction, "add panels to")
        caption, dialogue, speaker = clean(caption), clean(dialogue), clean(speaker)
        if speaker is not None and dialogue is None:
            raise UserFacingError("`speaker` goes with `dialogue`; add what they say, or leave `speaker` out.")
        await self._check_room(comic)
        await context.check_text(comic, caption, dialogue)
        init = await self._continuation(comic) if continue_from_previous else None
        records = await context.character_records(comic)
        routes = character_routes(prompt, records, ip_adapter_configured=context.ip_adapter_configured)
        request = context.validate(with_routes(panel_request(
            prompt,
            characters={name: record.description for name, record in records.items()},
            trained=await context.trained(comic),
            style=context.style(comic),
            limits=context.services.runner.limits_for(interaction.guild_id),
            size=context.services.model.native_size,
            init_image=init,
            strength=context.settings.continue_strength,
        ), routes), interaction.guild_id)
        await context.check_capacity(interaction, request.prompt)
        origin = JobOrigin.of(interaction)

        def plan(stored: PanelRecord) -> PanelPlan:
            drawn = with_take(request, comic_id=comic.id, comic_seed=comic.seed, panel_id=stored.id, take=0)
            # Drawn at the shape of the frame it fills as the comic's last panel.
            width, height = context.draw_size(comic, stored.position, stored.position)
            drawn = drawn.replace(width=width, height=height)
            return PanelPlan(drawn.seed, drawn.to_json(), origin.new_job(drawn))

        try:
            change = await context.storage.comics.add_panel(
                comic.id, NewPanel(prompt.strip(), caption, dialogue, speaker), plan,
                max_panels=context.settings.max_panels,
            )
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        assert change.job_id is not None
        await context.start_panel_job(
            interaction, change.job_id,
            f"🖼️ Panel {change.after.position} of {comic_title(comic)}: **{quote(prompt)}** is queued",
        )

    async def _check_room(self, comic: ComicRecord) -> None:
        """Refuse a panel past the configured cap."""
        limit = self.context.settings.max_panels
        count = await self.context.storage.comics.panel_count(comic.id)
        if count >= limit:
            raise UserFacingError(
                f"{comic_title(comic)} already has {count} panels (the limit is {limit}); "
                "remove one or start a new comic."
            )

    async def _continuation(self, comic: ComicRecord) -> tuple[str, int, int]:
        """The previous panel's picture (stored path, width, height), to draw the next panel from."""
        panels = await self.context.storage.comics.panels(comic.id)
        if not panels:
            raise UserFacingError("There is no previous panel to continue from; leave `continue_from_previous` off.")
        previous = panels[-1]
        image = await self.context.current_image(previous)
        if image is None:
            raise UserFacingError(
                f"Panel {previous.position} isn't drawn yet; wait for it, or leave `continue_from_previous` off."
            )
        if image.flagged:
            raise UserFacingError(
                f"Panel {previous.position}'s picture was withheld by the safety checker; redo it, or leave "
                "`continue_from_previous` off."
            )
        # A large previous panel (an upscale added with 📖) is drawn from at a size the limits allow.
        width, height = fit_source(
            image.width, image.height, self.context.services.runner.limits_for(comic.guild_id)
        )
        return (image.path, width, height)

    @app_commands.command(name="edit")
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
        comic = await self.context.editable(interaction, "edit panels of")
        changes = _edit_changes(prompt, {"caption": caption, "dialogue": dialogue, "speaker": speaker})
        await self._check_edited_text(comic, await self.context.panel(comic, panel), changes)
        plan = await self._redraw_plan(interaction, comic, changes["prompt"] or "") if "prompt" in changes else None
        try:
            change = await self.context.storage.comics.update_panel(comic.id, panel, changes, plan)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        assert change.before is not None
        if change.job_id is None:
            await interaction.response.send_message(
                f"✏️ Panel {change.after.position} of {comic_title(comic)}: {', '.join(changes)} updated.",
                allowed_mentions=NO_PINGS,
            )
            return
        self.context.stop_drawing(change.before)
        await self.context.start_panel_job(
            interaction, change.job_id,
            f"✏️ Panel {change.after.position} of {comic_title(comic)} is redrawn with the new prompt "
            f"**{quote(change.after.prompt)}**",
        )

    async def _check_edited_text(
        self, comic: ComicRecord, current: PanelRecord, changes: dict[str, str | None]
    ) -> None:
        """Refuse a speaker without dialogue, or text that would not fit, as the panel would be after the edit."""
        caption_now = changes.get("caption", current.caption)
        dialogue_now = changes.get("dialogue", current.dialogue)
        speaker_now = changes.get("speaker", current.speaker)
        if speaker_now is not None and dialogue_now is None:
            raise UserFacingError("`speaker` goes with `dialogue`; this panel would have a speaker but no dialogue.")
        if "caption" in changes or "dialogue" in changes:
            await self.context.check_text(comic, caption_now, dialogue_now)

    async def _redraw_plan(
        self, interaction: discord.Interaction, comic: ComicRecord, new_prompt: str
    ) -> PanelPlanner:
        """How an edited prompt redraws its panel: the same seed and take, the new prompt."""
        context = self.context
        characters = await context.characters(comic)
        fresh = panel_request(new_prompt, characters=characters, style=context.style(comic),
                              limits=context.services.runner.limits_for(interaction.guild_id),
                              size=context.services.model.native_size, trained=await context.trained(comic))
        context.validate(fresh, interaction.guild_id)
        await context.check_capacity(interaction, fresh.prompt)
        origin = JobOrigin.of(interaction)

        def plan(stored: PanelRecord) -> PanelPlan:
            old = GenerationRequest.from_json(stored.params_json)
            kept = {key: value for key, value in old.extra.items() if key != CHARACTERS_KEY}
            drawn = old.replace(prompt=fresh.prompt, count=1, loras=fresh.loras, extra={**kept, **fresh.extra})
            drawn = with_take(drawn, comic_id=comic.id, comic_seed=comic.seed, panel_id=stored.id, take=take_of(old))
            # The seed stays: only redo picks a new one.
            drawn = drawn.replace(seed=stored.seed)
            return PanelPlan(drawn.seed, drawn.to_json(), origin.new_job(drawn))

        return plan

    @app_commands.command(name="redo")
    @app_commands.describe(panel="The panel's number")
    async def redo(self, interaction: discord.Interaction, panel: app_commands.Range[int, 1]) -> None:
        """Redraw a panel with a new seed (everything else stays)."""
        context = self.context
        comic = await context.editable(interaction, "redo panels of")
        await context.panel(comic, panel)
        await context.check_capacity(interaction)
        origin = JobOrigin.of(interaction)

        def plan(stored: PanelRecord) -> PanelPlan:
            old = GenerationRequest.from_json(stored.params_json)
            drawn = with_take(old, comic_id=comic.id, comic_seed=comic.seed, panel_id=stored.id, take=take_of(old) + 1)
            return PanelPlan(drawn.seed, drawn.to_json(), origin.new_job(drawn))

        try:
            change = await context.storage.comics.update_panel(comic.id, panel, {}, plan)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        assert change.before is not None and change.job_id is not None
        context.stop_drawing(change.before)
        await context.start_panel_job(
            interaction, change.job_id,
            f"🔁 Panel {change.after.position} of {comic_title(comic)} is redrawn with seed {change.after.seed}",
        )

    @app_commands.command(name="move")
    @app_commands.describe(panel="The panel's number now", to="Its new number")
    async def move(
        self, interaction: discord.Interaction, panel: app_commands.Range[int, 1], to: app_commands.Range[int, 1]
    ) -> None:
        """Move a panel to another place; the panels between shift over (and are offered a redraw
        where their new frame has another shape)."""
        comic = await self.context.editable(interaction, "reorder panels of")
        try:
            panels = await self.context.storage.comics.move_panel(comic.id, panel, to)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        low, high = min(panel, to), max(panel, to)
        moved = [p for p in panels if low <= p.position <= high]
        moved.sort(key=lambda p: p.position != to)  # the panel moved first
        misfit = await _redraw.misfits(self.context, comic, moved)
        text = f"↕️ Panel {panel} of {comic_title(comic)} is now panel {to} of {len(panels)}."
        if misfit:
            numbers = ", ".join(str(p.position) for p in misfit[: _redraw.MAX_REDRAW_BUTTONS])
            text += f" The frame of panel(s) {numbers} now has another shape; redraw to fit it?"
        view = _redraw.redraw_view(misfit)
        if view is None:
            await interaction.response.send_message(text, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(text, view=view, allowed_mentions=NO_PINGS)

    @app_commands.command(name="remove")
    @app_commands.describe(panel="The panel's number")
    async def remove(self, interaction: discord.Interaction, panel: app_commands.Range[int, 1]) -> None:
        """Remove a panel; the panels after it move up."""
        comic = await self.context.editable(interaction, "remove panels of")
        comics = self.context.storage.comics
        try:
            removed = await comics.remove_panel(comic.id, panel)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        self.context.stop_drawing(removed)
        left = await comics.panel_count(comic.id)
        await interaction.response.send_message(
            f"🗑️ Removed panel {panel} (**{quote(removed.prompt)}**) of {comic_title(comic)}; {left} panel(s) left.",
            allowed_mentions=NO_PINGS,
        )



def _edit_changes(prompt: str | None, texts: dict[str, str | None]) -> dict[str, str | None]:
    """The fields a ``/comic edit`` changes (``-`` clears a text); refuses an empty prompt or no change."""
    changes: dict[str, str | None] = {}
    if prompt is not None:
        if not prompt.strip():
            raise UserFacingError("The prompt is empty; describe the panel.")
        changes["prompt"] = prompt.strip()
    for name in TEXT_FIELDS:
        value = texts[name]
        if value is not None:
            changes[name] = None if value.strip() == CLEAR else clean(value)
    if not changes:
        raise UserFacingError("Give at least one of `prompt`, `caption`, `dialogue` or `speaker` to change.")
    return changes
