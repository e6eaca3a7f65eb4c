"""The trained characters of a comic as prompts apply them, and ``/imagine --cref``'s lookup.

Shared by the comic cog (panels) and the imagine cog (``--cref NAME``): both draw a character
the same way (:func:`rules.characters.apply_looks`).
"""

from __future__ import annotations

from collections.abc import Sequence

from rules.characters import CHARACTERS_KEY, TrainedLook, apply_looks, mentioned
from rules.request import GenerationRequest, RequestError
from storage import Storage

#: The request ``extra`` key /imagine's ``--cref`` names ride in until they are looked up.
CREF_KEY = "cref"


async def trained_looks(storage: Storage, comic_id: int) -> dict[str, TrainedLook]:
    """The comic's characters with a trained LoRA, by name."""
    return {
        trained.name: TrainedLook(trained.name, trained.lora.token, trained.lora.path, trained.weight)
        for trained in await storage.characters.trained(comic_id)
    }


async def apply_cref(
    storage: Storage, request: GenerationRequest, *, user_id: int, guild_id: int | None
) -> GenerationRequest:
    """``request`` with the characters its ``--cref`` named (of the member's active comic) drawn in.

    A named character the prompt does not mention is added at its end; each is then woven in as a
    panel weaves it (description, and trigger words and LoRA once trained). :class:`RequestError`
    for a member with no active comic or a name it has no character of.
    """
    names: Sequence[str] = request.extra.get(CREF_KEY) or ()
    if not names:
        return request
    comic = await storage.comics.active(user_id, guild_id)
    if comic is None:
        raise RequestError("cref", "`--cref` names a character of your active comic, and you have none here; "
                                   "start one with `/comic new`.")
    characters = {c.name: c.description for c in await storage.comics.characters(comic.id)}
    by_key = {name.casefold(): name for name in characters}
    chosen = []
    for name in names:
        known = by_key.get(" ".join(name.split()).casefold())
        if known is None:
            listing = ", ".join(sorted(characters)) or "none yet"
            raise RequestError("cref", f"Your active comic has no character called `{name}` (characters: {listing}).")
        chosen.append(known)
    prompt = request.prompt
    for name in chosen:
        if not mentioned(prompt, [name]):
            prompt = f"{prompt}, {name}"
    trained = await trained_looks(storage, comic.id)
    subset = {name: characters[name] for name in chosen}
    woven, loras, routes = apply_looks(prompt, subset, {n: look for n, look in trained.items() if n in subset})
    extra = {key: value for key, value in request.extra.items() if key != CREF_KEY}
    if routes:
        extra[CHARACTERS_KEY] = routes
    return request.replace(prompt=woven, loras=(*request.loras, *loras), extra=extra)
