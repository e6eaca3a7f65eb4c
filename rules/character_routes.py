"""Which way a comic character is kept the same from panel to panel, chosen per panel.

The best available route wins, and the panel's embed names it ("Character: Mira — IP-Adapter"):

1. **trained LoRA**: the character has one trained on its reference pictures;
2. **IP-Adapter**: the model has IP-Adapter weights configured (``[model] ip_adapter``) and the
   character has reference pictures: they condition the drawing directly, without training;
3. **text only**: the character's description woven into the prompt.

A storyboard (``/comic storyboard``) adds **consistent attention**: its panels are drawn as one
batch whose self-attention is shared, so the characters match across the page.

The comic cog hands each character as a :class:`CharacterFacts` (description, reference pictures,
trained LoRA, likeness scale, from ``storage.comics`` and ``storage.characters``);
:func:`lora_path_of` and :func:`references_of` read any record and find nothing on one without
those fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

Route = Literal["trained LoRA", "IP-Adapter", "consistent attention", "text only"]
TRAINED_LORA: Final = "trained LoRA"
IP_ADAPTER: Final = "IP-Adapter"
CONSISTENT_ATTENTION: Final = "consistent attention"
TEXT_ONLY: Final = "text only"
#: The IP-Adapter scale for a character that names none: a likeness that still follows the prompt.
DEFAULT_IP_ADAPTER_SCALE = 0.6


def lora_path_of(character: object) -> str | None:
    """The character's trained LoRA (a path or name), or None (not trained; or a record without the field)."""
    for name in ("lora_path", "lora"):
        value = getattr(character, name, None)
        if isinstance(value, str) and value.strip():
            return value
    return None


def references_of(character: object) -> list[str]:
    """The character's reference pictures (paths in the image store), or [] (none; or no such field)."""
    for name in ("reference_paths", "references"):
        value = getattr(character, name, None)
        if isinstance(value, (list, tuple)):
            return [str(item) for item in value if isinstance(item, str) and item]
    return []


def ip_adapter_scale_of(character: object) -> float:
    """The character's IP-Adapter scale (how strongly the references weigh), or the default."""
    value = getattr(character, "ip_adapter_scale", None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else DEFAULT_IP_ADAPTER_SCALE


@dataclass(frozen=True)
class CharacterFacts:
    """What the routes need to know of one character: its description, reference pictures (paths in
    the image store), trained LoRA file (None: untrained) and IP-Adapter scale (None: the default)."""

    name: str
    description: str
    references: list[str] = field(default_factory=list)
    lora_path: str | None = None
    ip_adapter_scale: float | None = None


@dataclass(frozen=True)
class CharacterRoute:
    """How one character is drawn in one panel."""

    name: str
    route: Route
    lora_path: str | None = None
    references: list[str] = field(default_factory=list)
    scale: float = 0.0

    def label(self) -> str:
        """``Mira — IP-Adapter``."""
        return f"{self.name} — {self.route}"


def choose_route(
    character: object, name: str, *, ip_adapter_configured: bool, storyboard: bool = False
) -> CharacterRoute:
    """The best route available for ``character`` (see the module docstring)."""
    lora = lora_path_of(character)
    if lora is not None:
        return CharacterRoute(name, TRAINED_LORA, lora_path=lora)
    references = references_of(character)
    if ip_adapter_configured and references:
        return CharacterRoute(name, IP_ADAPTER, references=references, scale=ip_adapter_scale_of(character))
    return CharacterRoute(name, CONSISTENT_ATTENTION if storyboard else TEXT_ONLY)

