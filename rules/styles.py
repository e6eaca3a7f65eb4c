"""Style presets (``--style comic`` or the ``style`` option): prompt text, a negative prompt, settings.

A preset wraps the user's prompt as ``prefix, prompt, suffix`` and adds its negative prompt after
the user's. Its ``steps`` and ``guidance``, when set, replace the configured defaults but never a
value the user gave. The bot ships :data:`DEFAULT_STYLES`; owners change or add presets in the
config file::

    [styles.comic]            # change one key of a shipped preset
    steps = 25

    [styles.noir]             # a new preset: missing keys are empty
    prefix = "film noir still"
    suffix = "high contrast black and white, hard shadows, 1940s"
    negative = "color, cartoon"
    guidance = 8.0
    description = "Black-and-white 1940s crime film"

    [styles.anime]            # hide a shipped preset
    enabled = false
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

#: Longest style name; names are one word so they work after ``--style``.
MAX_NAME_CHARS: Final = 32
#: Discord shows at most 25 autocomplete choices.
MAX_CHOICES: Final = 25
_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class StyleConfigError(ValueError):
    """A ``[styles.NAME]`` table is wrong; ``key`` is the full key (``styles.comic.steps``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class StylePreset:
    """One named style: text wrapped around the prompt, a negative prompt and optional settings."""

    name: str
    prompt_prefix: str = ""
    prompt_suffix: str = ""
    negative_prompt: str = ""
    steps: int | None = None
    guidance: float | None = None
    description: str = ""


def _join(*parts: str) -> str:
    return ", ".join(part.strip().strip(",").strip() for part in parts if part.strip().strip(","))


def apply_style(prompt: str, negative: str, preset: StylePreset | None) -> tuple[str, str]:
    """The prompt and negative prompt with ``preset`` applied (unchanged for ``None``).

    The prompt becomes ``prefix, prompt, suffix``; the negative becomes ``user's, preset's``.
    """
    if preset is None:
        return prompt, negative
    return (
        _join(preset.prompt_prefix, prompt, preset.prompt_suffix),
        _join(negative, preset.negative_prompt),
    )


DEFAULT_STYLES: Final[Mapping[str, StylePreset]] = {
    preset.name: preset
    for preset in (
        StylePreset(
            name="comic",
            prompt_prefix="comic book panel",
            prompt_suffix=(
                "bold clean ink outlines, flat vibrant colors, halftone shading, dynamic composition, "
                "dramatic lighting, graphic novel illustration"
            ),
            negative_prompt=(
                "photo, photorealistic, 3d render, blurry, muddy colors, sketchy lines, "
                "speech bubble, text, watermark, signature"
            ),
            guidance=7.5,
            description="Western comic book: bold ink, flat colors, halftones",
        ),
        StylePreset(
            name="manga",
            prompt_prefix="manga illustration",
            prompt_suffix=(
                "black and white, detailed ink linework, screentone shading, expressive eyes, "
                "dramatic panel composition, high contrast"
            ),
            negative_prompt=(
                "color, photo, photorealistic, 3d render, blurry, lowres, bad anatomy, "
                "deformed hands, text, watermark"
            ),
            guidance=7.5,
            description="Black-and-white manga: ink lines and screentones",
        ),
        StylePreset(
            name="watercolor",
            prompt_prefix="watercolor painting",
            prompt_suffix=(
                "soft wet-on-wet washes, gentle color bleeding, visible paper texture, "
                "loose expressive brushstrokes, light airy palette"
            ),
            negative_prompt=(
                "photo, photorealistic, 3d render, digital art, harsh black outlines, oversaturated, "
                "text, watermark, signature"
            ),
            description="Soft washes on textured paper",
        ),
        StylePreset(
            name="photo",
            prompt_prefix="professional photograph",
            prompt_suffix=(
                "natural light, 50mm lens, shallow depth of field, sharp focus, "
                "highly detailed, realistic textures"
            ),
            negative_prompt=(
                "illustration, painting, drawing, cartoon, anime, 3d render, cgi, oversaturated, "
                "deformed, extra fingers, blurry, text, watermark"
            ),
            guidance=6.0,
            description="Realistic photography with a shallow depth of field",
        ),
        StylePreset(
            name="pixel-art",
            prompt_prefix="pixel art",
            prompt_suffix=(
                "16-bit retro video game style, limited color palette, crisp hard-edged pixels, "
                "no anti-aliasing, clean sprite shapes"
            ),
            negative_prompt=(
                "blurry, smooth gradients, photo, photorealistic, 3d render, noise, jpeg artifacts, "
                "text, watermark"
            ),
            guidance=8.0,
            description="16-bit video game pixels, limited palette",
        ),
        StylePreset(
            name="oil-painting",
            prompt_prefix="oil painting on canvas",
            prompt_suffix=(
                "thick impasto brushstrokes, rich layered colors, visible canvas texture, "
                "classical chiaroscuro lighting, fine art"
            ),
            negative_prompt=(
                "photo, photorealistic, 3d render, digital art, flat colors, cartoon, anime, "
                "blurry, text, watermark, signature, frame"
            ),
            description="Classical oil on canvas with visible brushwork",
        ),
        StylePreset(
            name="anime",
            prompt_prefix="anime key visual",
            prompt_suffix=(
                "cel shading, clean lineart, vibrant colors, expressive eyes, "
                "detailed background, studio anime style"
            ),
            negative_prompt=(
                "photo, photorealistic, 3d render, western cartoon, lowres, bad anatomy, "
                "extra fingers, blurry, text, watermark"
            ),
            guidance=7.0,
            description="Cel-shaded anime with clean lines",
        ),
    )
}

#: Config key -> StylePreset field, and the TOML type it must have.
_KEYS: Final[Mapping[str, tuple[str, type]]] = {
    "prefix": ("prompt_prefix", str),
    "suffix": ("prompt_suffix", str),
    "negative": ("negative_prompt", str),
    "steps": ("steps", int),
    "guidance": ("guidance", float),
    "description": ("description", str),
    "enabled": ("enabled", bool),
}


def _value(key: str, value: Any, kind: type) -> Any:
    """Check one TOML value; whole numbers are accepted where a float is wanted."""
    if kind is bool:
        if not isinstance(value, bool):
            raise StyleConfigError(key, f"must be true or false, not {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise StyleConfigError(key, f"must be a string, not {value!r}")
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and isinstance(value, float)):
        wanted = "a whole number" if kind is int else "a number"
        raise StyleConfigError(key, f"must be {wanted}, not {value!r}")
    if kind is int and value < 1:
        raise StyleConfigError(key, f"must be at least 1, not {value!r}")
    if value < 0:
        raise StyleConfigError(key, f"must not be negative, not {value!r}")
    return kind(value)


def styles_from_config(
    raw: Mapping[str, Any], defaults: Mapping[str, StylePreset] = DEFAULT_STYLES
) -> dict[str, StylePreset]:
    """Build the style presets from the ``[styles]`` table, merged over ``defaults``.

    ``raw`` maps each style name to its table. A table for a shipped name changes only the keys
    it sets; a new name starts from empty text. ``enabled = false`` removes a preset. Keys are
    ``prefix``, ``suffix``, ``negative``, ``steps``, ``guidance``, ``description`` and
    ``enabled``; anything else raises :class:`StyleConfigError` naming ``styles.NAME.key``.
    Ranges of ``steps``/``guidance`` against the generation limits are the caller's to check.
    """
    styles = dict(defaults)
    for name, table in raw.items():
        base = f"styles.{name}"
        if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not _NAME_RE.match(name):
            raise StyleConfigError(
                base, f"a style name is one lowercase word of letters, digits, - or _ (at most {MAX_NAME_CHARS})"
            )
        if not isinstance(table, Mapping):
            raise StyleConfigError(base, "must be a table ([styles." + name + "])")
        changes: dict[str, Any] = {}
        for key, value in table.items():
            if key not in _KEYS:
                raise StyleConfigError(f"{base}.{key}", f"unknown key (known: {', '.join(sorted(_KEYS))})")
            field_name, kind = _KEYS[key]
            changes[field_name] = _value(f"{base}.{key}", value, kind)
        if not changes.pop("enabled", True):
            styles.pop(name, None)
            continue
        preset = styles.get(name, StylePreset(name=name))
        styles[name] = dataclasses.replace(preset, **changes)
    return styles


def match_styles(current: str, styles: Iterable[str]) -> list[str]:
    """Style names for autocomplete: names starting with ``current`` first, then names containing it.

    Case-insensitive; each group sorted; at most :data:`MAX_CHOICES`. An empty ``current`` lists
    every name.
    """
    needle = current.strip().lower()
    names = sorted(set(styles))
    starts = [name for name in names if name.lower().startswith(needle)]
    contains = [name for name in names if needle in name.lower() and name not in starts]
    return (starts + contains)[:MAX_CHOICES]
