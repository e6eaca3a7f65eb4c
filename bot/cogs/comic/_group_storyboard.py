"""/comic storyboard: up to six panels drawn as one batch whose images share self-attention.

Each ``panelN`` option is ``description | caption | dialogue`` (caption and dialogue optional;
dialogue may start with a character's name and a colon, ``Mira: Look!``, to name the speaker).
The panels are added to the member's active comic, with their texts, as ``/comic panel`` adds
one; one queue job draws them all (one member turn), with consistent self-attention
(:mod:`generation.consistent_attention`, ``[comic] storyboard_attention``) so the characters
match across the page. A batch has one size, so the storyboard is drawn at the mean shape of
the frames its panels fill. Each panel records its own single-panel request, so ``redo`` and
``edit`` redraw one panel alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import discord
from discord import app_commands

from bot.add_to_comic import comic_title
from bot.cogs.comic._context import ComicContext, clean, quote
from bot.cogs.comic._panels import character_routes, compose_prompt, panel_seed, with_routes
from bot.errors import UserFacingError
from bot.jobs import JobOrigin
from rules.character_routes import CharacterFacts, CharacterRoute
from rules.frame_size import size_for_aspect
from rules.request import MAX_STORYBOARD_PANELS, GenerationLimits, GenerationRequest
from storage.comics import (
    BOARD_INDEX_KEY,
    BoardPlan,
    ComicRecord,
    ComicStorageError,
    NewPanel,
    PanelPlan,
    PanelRecord,
)

PANEL_HELP = "description | caption | dialogue (caption and dialogue optional; dialogue may start with `Name:`)"


@dataclass(frozen=True)
class BoardPanel:
    """One panel of a storyboard as the member wrote it."""

    prompt: str
    caption: str | None = None
    dialogue: str | None = None
    speaker: str | None = None


def parse_panel(text: str, character_names: Sequence[str] = ()) -> BoardPanel:
    """``description | caption | dialogue`` → a :class:`BoardPanel`; ``Name: words`` in the dialogue names
    the speaker when Name is one of the comic's characters."""
    parts = [part.strip() for part in text.split("|")]
    if len(parts) > 3:
        raise UserFacingError(
            f"A storyboard panel has at most three parts, `{PANEL_HELP}`; this one has {len(parts)}: "
            f"**{quote(text)}**."
        )
    prompt = parts[0]
    if not prompt:
        raise UserFacingError(f"A storyboard panel needs a description before the first `|`: **{quote(text)}**.")
    caption = clean(parts[1]) if len(parts) > 1 else None
    dialogue = clean(parts[2]) if len(parts) > 2 else None
    speaker = None
    if dialogue is not None and ":" in dialogue:
        name, _, said = dialogue.partition(":")
        known = {known_name.casefold(): known_name for known_name in character_names}
        if name.strip().casefold() in known and said.strip():
            speaker, dialogue = known[name.strip().casefold()], said.strip()
    return BoardPanel(prompt, caption, dialogue, speaker)


def board_size(frames: Sequence[tuple[int, int]], *, native: int, limits: GenerationLimits) -> tuple[int, int]:
    """One size for the whole batch: the geometric mean of the frames' aspects (see the module docstring)."""
    mean = math.exp(sum(math.log(width / height) for width, height in frames) / len(frames))
    return size_for_aspect(mean, native=native, limits=limits)


def board_request(
    prompts: Sequence[str],
    *,
    negative: str,
    steps: int,
    guidance: float,
    size: tuple[int, int],
    shared_attention: float,
    routes: Sequence[CharacterRoute],
) -> GenerationRequest:
    """The storyboard's one request: one image per panel prompt, attention shared at ``shared_attention``."""
    request = GenerationRequest(
        prompt=prompts[0], negative_prompt=negative, panel_prompts=list(prompts), count=len(prompts),
        shared_attention=shared_attention, steps=steps, guidance=guidance, width=size[0], height=size[1],
    )
    return with_routes(request, routes)


def _unique_routes(routes: Sequence[CharacterRoute]) -> list[CharacterRoute]:
    seen: dict[str, CharacterRoute] = {}
    for route in routes:
        seen.setdefault(route.name.casefold(), route)
    return list(seen.values())


class StoryboardCommands(app_commands.Group, name="comic", description="Make comics from generated panels"):
    """``/comic storyboard``; the cog moves it into its one ``/comic`` group."""

    def __init__(self, context: ComicContext) -> None:
        super().__init__()
        self.context = context

    @app_commands.command(name="storyboard")
    @app_commands.describe(
        panel1=f"Panel 1: {PANEL_HELP}",
        panel2="Panel 2: description | caption | dialogue",
        panel3="Panel 3 (optional)",
        panel4="Panel 4 (optional)",
        panel5="Panel 5 (optional)",
        panel6="Panel 6 (optional)",
    )
    async def storyboard(
        self,
        interaction: discord.Interaction,
        panel1: app_commands.Range[str, 1, 1500],
        panel2: app_commands.Range[str, 1, 1500],
        panel3: app_commands.Range[str, 1, 1500] | None = None,
        panel4: app_commands.Range[str, 1, 1500] | None = None,
        panel5: app_commands.Range[str, 1, 1500] | None = None,
        panel6: app_commands.Range[str, 1, 1500] | None = None,
    ) -> None:
        """Draw 2-6 panels as one batch whose characters match (shared attention)."""
        context = self.context
        comic = await context.editable(interaction, "add panels to")
        texts = [text for text in (panel1, panel2, panel3, panel4, panel5, panel6) if text is not None]
        records = await context.character_records(comic)
        panels = [parse_panel(text, list(records)) for text in texts[:MAX_STORYBOARD_PANELS]]
        for panel in panels:
            context.check_words(panel.prompt, panel.caption, panel.dialogue)
            await context.check_text(comic, panel.caption, panel.dialogue)
        count = await context.storage.comics.panel_count(comic.id)
        limit = context.settings.max_panels
        if count + len(panels) > limit:
            raise UserFacingError(
                f"{comic_title(comic)} has {count} panels and the limit is {limit}; "
                f"{len(panels)} more do not fit. Remove some, draw fewer, or start a new comic."
            )
        request = context.validate(self._request(comic, records, panels, count), interaction.guild_id)
        await context.check_capacity(interaction, request.prompt)
        origin = JobOrigin.of(interaction)

        def plan(stored: Sequence[PanelRecord]) -> BoardPlan:
            seed = panel_seed(comic.seed, stored[0].id, 0)
            board = request.replace(seed=seed, extra={**request.extra, "comic_id": comic.id,
                                                      "panel_ids": [panel.id for panel in stored]})
            plans = []
            for index, panel in enumerate(stored):
                alone = board.image_request(index).replace(
                    extra={**request.extra, "comic_id": comic.id, "panel_id": panel.id, "take": 0,
                           BOARD_INDEX_KEY: index},
                    ip_adapter_images=board.ip_adapter_images,
                )
                plans.append(PanelPlan(alone.seed, alone.to_json()))
            return BoardPlan(plans, origin.new_job(board))

        new = [NewPanel(p.prompt, p.caption, p.dialogue, p.speaker) for p in panels]
        try:
            stored, job_id = await context.storage.comics.add_storyboard(comic.id, new, plan, max_panels=limit)
        except ComicStorageError as error:
            raise UserFacingError(str(error)) from None
        first, last = stored[0].position, stored[-1].position
        routes = request.extra.get("characters") or []
        how = f" ({', '.join(' — '.join(map(str, route)) for route in routes)})" if routes else ""
        await context.start_panel_job(
            interaction, job_id,
            f"🎞️ Panels {first}-{last} of {comic_title(comic)} are queued as one storyboard{how}",
        )

    def _request(
        self, comic: ComicRecord, records: Mapping[str, CharacterFacts], panels: Sequence[BoardPanel], count: int
    ) -> GenerationRequest:
        """The storyboard's request: each panel's prompt with characters and style, at the frames' mean shape."""
        context = self.context
        style = context.style(comic)
        limits = context.services.settings.generation
        descriptions = {name: record.description for name, record in records.items()}
        prompts: list[str] = []
        negative = ""
        for panel in panels:
            text, negative = compose_prompt(panel.prompt, descriptions, style)
            prompts.append(text)
        total = count + len(panels)
        frames = [context.frame(comic, total, count + i) for i in range(1, len(panels) + 1)]
        size = board_size(frames, native=context.services.model.native_size, limits=limits)
        shared = context.settings.storyboard_attention
        routes = _unique_routes([
            route for panel in panels
            for route in character_routes(panel.prompt, records, ip_adapter_configured=context.ip_adapter_configured,
                                          storyboard=shared > 0)
        ])
        return board_request(
            prompts,
            negative=negative,
            steps=style.steps if style is not None and style.steps is not None else limits.default_steps,
            guidance=style.guidance if style is not None and style.guidance is not None else limits.default_guidance,
            size=size,
            shared_attention=shared,
            routes=routes,
        )
