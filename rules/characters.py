"""How a named character is drawn: its description woven into the prompt, and its trained LoRA if it has one.

Plain functions, no Discord and no database. The first time a prompt names a character (whole
word, any case), that character's description goes in brackets right after the name:
``"Mira opens the door"`` becomes ``"Mira (a red-haired girl in a yellow raincoat) opens the
door"``. A trained character's trigger words (its rare token and class word, what it was trained
under) lead its description, and its LoRA is applied at its weight; two trained characters in
one prompt apply both LoRAs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rules.request import LoraUse

#: What the result embed says of a character drawn with its trained LoRA.
TRAINED_ROUTE = "trained LoRA"
#: The request ``extra`` key listing the characters drawn and how: ``[[name, route], ...]``.
CHARACTERS_KEY = "characters"


@dataclass(frozen=True)
class TrainedLook:
    """A character's trained LoRA, as a prompt naming the character applies it."""

    name: str
    #: The words the LoRA was trained under (``"zwoq character"``).
    trigger: str
    #: The LoRA file.
    source: str
    weight: float = 1.0


def _name_pattern(name: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(word) for word in name.split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


def _mentions(prompt: str, names: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, name) of the first mention of each named character; longer names win overlaps."""
    taken: list[tuple[int, int, str]] = []
    for name in sorted(names, key=len, reverse=True):
        pattern = _name_pattern(name)
        match = pattern.search(prompt)
        while match is not None and any(match.start() < end and start < match.end() for start, end, _ in taken):
            match = pattern.search(prompt, match.end())
        if match is not None:
            taken.append((match.start(), match.end(), name))
    return taken


def mentioned(prompt: str, names: Sequence[str]) -> list[str]:
    """The characters ``prompt`` names, in the order it names them."""
    return [name for _, _, name in sorted(_mentions(prompt, names))]


def weave_characters(prompt: str, characters: Mapping[str, str]) -> str:
    """``prompt`` with each named character's description after the first mention of its name.

    Longer names win where names overlap ("Anna Lee" before "Anna"); a character the prompt does
    not name adds nothing.
    """
    woven = prompt
    for _, end, name in sorted(_mentions(prompt, list(characters)), reverse=True):
        woven = f"{woven[:end]} ({characters[name]}){woven[end:]}"
    return woven


def apply_looks(
    prompt: str, characters: Mapping[str, str], trained: Mapping[str, TrainedLook]
) -> tuple[str, tuple[LoraUse, ...], list[list[str]]]:
    """The woven prompt, the LoRAs of the trained characters it names, and ``[[name, route]]`` of those.

    A trained character's description starts with its trigger words; one without a description
    (only trained) gets the trigger words alone.
    """
    descriptions = dict(characters)
    for name, look in trained.items():
        description = descriptions.get(name, "")
        descriptions[name] = f"{look.trigger}, {description}" if description else look.trigger
    named = mentioned(prompt, list(descriptions))
    loras = tuple(LoraUse(name, trained[name].source, trained[name].weight) for name in named if name in trained)
    routes = [[name, TRAINED_ROUTE] for name in named if name in trained]
    return weave_characters(prompt, descriptions), loras, routes
