"""What a comic panel is drawn from: its seed, its prompt (style and characters woven in), its request.

Plain functions, no Discord and no database, so the rules are easy to read and test:

* **Seeds.** A panel's seed is derived from the comic's seed, the panel's id and its *take*
  (0 for the first drawing, +1 for each ``redo``): the same comic and panel always give the same
  seed, moving a panel does not change it (the id does not change), and ``redo`` is the only
  thing that picks a new one.
* **Characters.** (:mod:`rules.characters`) The first time a panel's prompt names a character
  (whole word, any case), that character's description is put in brackets right after the name,
  so the character is drawn the same way from panel to panel: ``"Mira opens the door"`` becomes
  ``"Mira (a red-haired girl in a yellow raincoat) opens the door"``. A trained character's
  trigger words lead its description and its LoRA is applied at its weight.
* **Styles.** The comic's style preset wraps the prompt (``prefix, prompt, suffix``), adds its
  negative prompt and, where it sets them, its steps and guidance.
* **Speaker sides.** Speakers get a side for their bubbles in the order they first speak in the
  comic: the first on the left, the second on the right, the third on the left again, and so on
  (names compared in any case). Dialogue without a speaker gets a bubble in the middle. The
  sides are worked out from the panel order at render time, so they are always consistent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.config import ComicSettings
from composition.comic_lettering import SpeakerSide
from rules.character_routes import IP_ADAPTER, CharacterRoute, choose_route
from rules.characters import CHARACTERS_KEY, TrainedLook, apply_looks, mentioned, weave_characters
from rules.request import SEED_MAX, GenerationLimits, GenerationRequest
from rules.styles import StylePreset, apply_style
from storage.comics import BOARD_INDEX_KEY


def panel_seed(comic_seed: int, panel_id: int, take: int = 0) -> int:
    """The seed of one drawing of a panel: fixed by the comic, the panel and the take."""
    digest = hashlib.sha256(f"comic-panel:{comic_seed}:{panel_id}:{take}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (SEED_MAX + 1)


def named_characters(prompt: str, names: Iterable[str]) -> list[str]:
    """The characters ``prompt`` names (whole words, any case), in the order their names first appear."""
    return mentioned(prompt, list(names))


def character_routes(
    prompt: str, characters: Mapping[str, object], *, ip_adapter_configured: bool, storyboard: bool = False
) -> list[CharacterRoute]:
    """How each character ``prompt`` names is kept consistent (see :mod:`rules.character_routes`)."""
    return [
        choose_route(characters[name], name, ip_adapter_configured=ip_adapter_configured, storyboard=storyboard)
        for name in named_characters(prompt, characters)
    ]


def with_routes(request: GenerationRequest, routes: Sequence[CharacterRoute]) -> GenerationRequest:
    """``request`` drawn by these routes: named in its embed (``extra["characters"]``: ``[[name, route]]``),
    and the first IP-Adapter character's reference pictures and scale on the request (one likeness per panel)."""
    if not routes:
        return request
    request = request.replace(extra={**request.extra, CHARACTERS_KEY: [[route.name, route.route] for route in routes]})
    adapted = next((route for route in routes if route.route == IP_ADAPTER), None)
    if adapted is not None:
        request = request.replace(ip_adapter_images=list(adapted.references), ip_adapter_scale=adapted.scale)
    return request


def speaker_sides(panels: Sequence[tuple[str | None, str | None]]) -> list[SpeakerSide]:
    """The bubble side of each panel, from its (speaker, dialogue): see the module docstring."""
    order: dict[str, int] = {}
    sides: list[SpeakerSide] = []
    for speaker, dialogue in panels:
        key = " ".join((speaker or "").split()).casefold()
        if not key or not dialogue:
            sides.append("center")
            continue
        index = order.setdefault(key, len(order))
        sides.append("left" if index % 2 == 0 else "right")
    return sides


__all__ = ["compose_prompt", "panel_request", "panel_seed", "speaker_sides", "take_of", "weave_characters",
           "with_take"]


def compose_prompt(prompt: str, characters: Mapping[str, str], style: StylePreset | None) -> tuple[str, str]:
    """The prompt and negative prompt a panel is drawn with: characters woven in, then the style."""
    return apply_style(weave_characters(prompt, characters), "", style)


def panel_request(
    prompt: str,
    *,
    characters: Mapping[str, str],
    style: StylePreset | None,
    limits: GenerationLimits,
    size: int,
    init_image: tuple[str, int, int] | None = None,
    strength: float = ComicSettings.continue_strength,
    shape: tuple[int, int] | None = None,
    trained: Mapping[str, TrainedLook] | None = None,
) -> GenerationRequest:
    """The request for a new panel (seed 0 until the panel's id is known: see :func:`with_take`).

    ``init_image`` is (stored path, width, height) of the previous panel for an img2img
    continuation; the panel then takes that image's size. ``shape`` (width, height), when given,
    is the size to draw at instead (its frame's shape: see :mod:`rules.frame_size`); a continued
    panel's source is then resized to it. ``trained``: the comic's trained characters by name;
    each the prompt names adds its LoRA and trigger words.
    """
    woven, loras, routes = apply_looks(prompt, characters, trained or {})
    text, negative = apply_style(woven, "", style)
    request = GenerationRequest(
        prompt=text,
        negative_prompt=negative,
        steps=style.steps if style is not None and style.steps is not None else limits.default_steps,
        guidance=style.guidance if style is not None and style.guidance is not None else limits.default_guidance,
        width=size,
        height=size,
        count=1,
        loras=loras,
        extra={CHARACTERS_KEY: routes} if routes else {},
    )
    if init_image is not None:
        path, width, height = init_image
        request = request.replace(kind="img2img", init_image=path, strength=strength, width=width, height=height)
    if shape is not None:
        request = request.replace(width=shape[0], height=shape[1])
    return request


def take_of(request: GenerationRequest) -> int:
    """Which drawing of its panel a request is (0 for the first)."""
    take = request.extra.get("take", 0)
    return take if isinstance(take, int) and take >= 0 else 0


def with_take(
    request: GenerationRequest, *, comic_id: int, comic_seed: int, panel_id: int, take: int
) -> GenerationRequest:
    """``request`` as drawing number ``take`` of a panel: its derived seed, one image, and a note of whose it is."""
    extra: dict[str, Any] = {**request.extra, "comic_id": comic_id, "panel_id": panel_id, "take": take}
    extra.pop(BOARD_INDEX_KEY, None)  # a redrawn storyboard panel is drawn on its own
    return request.replace(seed=panel_seed(comic_seed, panel_id, take), count=1, extra=extra)
