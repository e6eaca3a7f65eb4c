"""Prompt weighting in the syntax AUTOMATIC1111's web UI taught artists: ``(word:1.3)``, ``(word)``, ``[word]``.

:func:`weighted_fragments` splits a prompt into ``(text, weight)`` runs; ``generation.prompt_encoding``
hands them to compel, which builds the text embeddings (weights, prompts past the 77-token window,
textual-inversion tokens, SDXL's two encoders). compel reads its own syntax (``word+``,
``(word)1.3``), not this one, and no maintained package on the index parses A1111's, so the rules
are written here, following the web UI's ``parse_prompt_attention``:

- ``(text)`` multiplies the weight of ``text`` by 1.1, ``((text))`` by 1.21;
- ``(text:1.5)`` sets a factor of 1.5 (any number, also below 1);
- ``[text]`` divides by 1.1;
- ``\\(``, ``\\)``, ``\\[``, ``\\]`` are literal brackets; an unclosed bracket applies to the rest;
- ``<lora:NAME:WEIGHT>`` tags are not text for the encoder: :func:`rules.loras.strip_lora_tags` removes
  them first.
"""

from __future__ import annotations

import re
from typing import Final

#: ``(text)`` multiplies by this, ``[text]`` divides by it (as in the web UI).
ROUND_FACTOR: Final = 1.1
SQUARE_FACTOR: Final = 1 / 1.1

_ATTENTION_RE: Final = re.compile(
    r"""
    \\\(|\\\)|\\\[|\\]|\\\\|\\|   # escapes
    \(|\[|                         # openers
    :\s*([+-]?[.\d]+)\s*\)|        # (text:1.3) closer with its weight
    \)|]|                          # closers
    [^\\()\[\]:]+|                 # plain text
    :
    """,
    re.VERBOSE,
)


def weighted_fragments(text: str) -> list[tuple[str, float]]:
    """``text`` as runs of ``(text, weight)``: neighbouring runs of equal weight joined, empty runs dropped.

    A prompt without brackets is one run at weight 1.0, so it encodes exactly as plain text.
    """
    runs: list[list[str | float]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] = float(run[1]) * factor

    for match in _ATTENTION_RE.finditer(text):
        piece, weight = match.group(0), match.group(1)
        if piece.startswith("\\"):
            runs.append([piece[1:] or "\\", 1.0])
        elif piece == "(":
            round_open.append(len(runs))
        elif piece == "[":
            square_open.append(len(runs))
        elif weight is not None and round_open:
            try:
                factor = float(weight)
            except ValueError:
                factor = ROUND_FACTOR
            multiply(round_open.pop(), factor)
        elif piece == ")" and round_open:
            multiply(round_open.pop(), ROUND_FACTOR)
        elif piece == "]" and square_open:
            multiply(square_open.pop(), SQUARE_FACTOR)
        else:
            runs.append([piece, 1.0])
    for start in round_open:
        multiply(start, ROUND_FACTOR)
    for start in square_open:
        multiply(start, SQUARE_FACTOR)
    merged: list[tuple[str, float]] = []
    for run in runs:
        text_part, run_weight = str(run[0]), float(run[1])
        if merged and merged[-1][1] == run_weight:
            merged[-1] = (merged[-1][0] + text_part, run_weight)
        else:
            merged.append((text_part, run_weight))
    cleaned = [(" ".join(part.split()), factor) for part, factor in merged]
    return [(part, factor) for part, factor in cleaned if part] or [("", 1.0)]


def plain_text(text: str) -> str:
    """The prompt's words without weighting syntax (for pipelines that take text, such as an upscaler)."""
    return " ".join(piece for piece, _ in weighted_fragments(text) if piece).strip()
