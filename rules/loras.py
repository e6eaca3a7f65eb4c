"""LoRAs and textual-inversion embeddings members may use: their config, ``<lora:NAME:WEIGHT>`` tags, resolution.

The operator lists them in ``[loras.NAME]`` (:class:`LoraConfig`) and ``[embeddings.NAME]``
(:class:`EmbeddingConfig`). A member names LoRAs with ``--lora NAME:WEIGHT`` (repeatable) or the web
UI's ``<lora:NAME:WEIGHT>`` in the prompt; :func:`resolve_loras` turns the names into
:class:`rules.request.LoraUse` (where the weights are, how strongly), appends trigger words that are
missing, and refuses unknown names and LoRAs made for another model family with a short message.
The tag stays in the prompt as written (shown, stored, written into the PNG's parameters, as the web
UI does); :func:`strip_lora_tags` removes it from the text the encoder reads. Embeddings need no
resolving: the engine loads them all at start and their token in the prompt is enough.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Final

from pydantic import ConfigDict, Field, Strict, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from rules.request import LoraUse, RequestError

#: Model families a LoRA or embedding is made for (the running model's comes from its pipeline).
FAMILIES: Final[tuple[str, ...]] = ("sd1", "sd2", "sdxl")
#: The weights a LoRA may be applied at (validation checks the same range).
MIN_WEIGHT: Final = -4.0
MAX_WEIGHT: Final = 4.0

#: ``<lora:NAME>`` or ``<lora:NAME:WEIGHT>``, as the web UI writes it.
LORA_TAG_RE: Final = re.compile(r"<lora:([^:<>]+?)(?::\s*([+-]?(?:\d+\.?\d*|\.\d+)))?\s*>", re.IGNORECASE)
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,63}$")

_FIELDS = ConfigDict(extra="forbid")


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"must be one of {', '.join(FAMILIES)}, not {family!r}")
    return family


@pydantic_dataclass(frozen=True, config=_FIELDS)
class LoraConfig:
    """``[loras.NAME]``: a LoRA members may apply by name."""

    #: A ``.safetensors`` file, a folder holding ``pytorch_lora_weights.safetensors``, or a hub id.
    source: Annotated[str, Field(min_length=1)]
    #: Words the LoRA was trained on; appended to the prompt when it lacks them.
    trigger_words: tuple[str, ...] = ()
    #: The weight when the member gives none (``--lora NAME`` or ``<lora:NAME>``).
    default_weight: Annotated[float, Strict(), Field(ge=MIN_WEIGHT, le=MAX_WEIGHT)] = 1.0
    #: The model family it was trained for: ``sd1``, ``sd2`` or ``sdxl``.
    family: str = "sd1"

    _family = field_validator("family")(_check_family)


@pydantic_dataclass(frozen=True, config=_FIELDS)
class EmbeddingConfig:
    """``[embeddings.NAME]``: a textual-inversion embedding, loaded at start, used by its token in the prompt."""

    #: A ``.safetensors``/``.bin`` file or a hub id, as diffusers' ``load_textual_inversion`` reads it.
    source: Annotated[str, Field(min_length=1)]
    #: The word that stands for it in prompts (e.g. ``<ink-style>``).
    token: Annotated[str, Field(min_length=1, max_length=64)]
    family: str = "sd1"

    _family = field_validator("family")(_check_family)


def check_names(names: Iterable[str], section: str) -> None:
    """Refuse a table name members could not type (``ValueError`` naming it)."""
    for name in names:
        if not _NAME_RE.match(name):
            raise ValueError(
                f"[{section}.{name}]: a name members can type is letters, digits, spaces, '_', '-' or '.' "
                "(at most 64), starting with a letter or digit"
            )


def extract_lora_tags(prompt: str) -> list[tuple[str, float | None]]:
    """The ``<lora:NAME:WEIGHT>`` tags in ``prompt``, in order: (name, weight or None when not given)."""
    return [
        (match[1].strip(), float(match[2]) if match[2] is not None else None) for match in LORA_TAG_RE.finditer(prompt)
    ]


def strip_lora_tags(prompt: str) -> str:
    """``prompt`` without its ``<lora:...>`` tags: the text the encoder reads."""
    text = LORA_TAG_RE.sub(" ", prompt)
    text = re.sub(r"\s+([,.;])", r"\1", text)
    return " ".join(text.split()).strip(" ,")


def _known(catalog: Mapping[str, object], kind: str) -> str:
    return f"{kind}: {', '.join(sorted(catalog))}." if catalog else f"No {kind} are configured on this bot."


def resolve_loras(
    prompt: str,
    flagged: Sequence[tuple[str, float | None]],
    catalog: Mapping[str, LoraConfig],
    *,
    family: str | None,
) -> tuple[str, tuple[LoraUse, ...]]:
    """The prompt with missing trigger words appended, and the LoRAs its tags and ``--lora`` flags name.

    ``flagged`` are the ``--lora`` flags' (name, weight). Names match case-insensitively.
    ``family`` is the running model's (None: not known, not checked). Raises
    :class:`RequestError` for an unknown name, a weight out of range or a LoRA for another family.
    """
    by_lower = {name.lower(): name for name in catalog}
    uses: list[LoraUse] = []
    triggers: list[str] = []
    for typed, weight in [*extract_lora_tags(prompt), *flagged]:
        name = by_lower.get(typed.lower())
        if name is None:
            raise RequestError("lora", f"`{typed}` is not a LoRA I know. {_known(catalog, 'LoRAs')}")
        config = catalog[name]
        if family is not None and config.family != family:
            raise RequestError(
                "lora", f"`{name}` is made for {config.family} models; this model is {family}. "
                "Pick a model of its family, or leave the LoRA out."
            )
        chosen = config.default_weight if weight is None else weight
        if not MIN_WEIGHT <= chosen <= MAX_WEIGHT:
            raise RequestError(
                "lora", f"The weight of LoRA `{name}` must be between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}; "
                f"you gave {chosen:g}."
            )
        uses.append(LoraUse(name, config.source, chosen))
        triggers.extend(word for word in config.trigger_words if word not in triggers)
    lowered = prompt.lower()
    missing = [word for word in triggers if word.lower() not in lowered]
    if missing:
        prompt = f"{prompt.rstrip().rstrip(',')}, {', '.join(missing)}"
    return prompt, tuple(uses)


def embeddings_for(catalog: Mapping[str, EmbeddingConfig], family: str) -> dict[str, EmbeddingConfig]:
    """The embeddings made for ``family`` (the ones the engine loads)."""
    return {name: config for name, config in catalog.items() if config.family == family}
