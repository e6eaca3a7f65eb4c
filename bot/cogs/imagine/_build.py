"""From /imagine's options and the flags in its prompt to one :class:`GenerationRequest`.

Plain code, no Discord: the order of precedence is easy to read here and to test.

1. Flags in the prompt (``--ar 16:9 --seed 42 --no text``) are parsed; an unknown or malformed
   flag is a :class:`~rules.prompt_flags.FlagError` listing the valid ones.
2. Options given explicitly win over flags (``merge_options``).
3. A style preset (option or ``--style``) wraps the prompt and adds its negative prompt; its
   steps and guidance replace the configured defaults, never a value the member gave.
4. LoRAs: ``<lora:NAME:WEIGHT>`` tags in the prompt (kept in it as written) and ``--lora`` flags
   are resolved against ``[loras.NAME]`` (:func:`rules.loras.resolve_loras`); missing trigger words
   are appended to the prompt.
5. The size: explicit ``width``/``height``, else ``--size``, else ``--ar`` (about the model's
   native pixel count, sides multiples of 64), else the uploaded image's shape at about that
   pixel count, else the native square.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rules.image_checks import fit_size
from rules.loras import LoraConfig, resolve_loras
from rules.png_parameters import PngParameters
from rules.prompt_flags import aspect_size, merge_options, parse_prompt
from rules.request import GenerationLimits, GenerationRequest, RequestError, random_seed
from rules.safety import SafetyPolicy
from rules.styles import StylePreset, apply_style


@dataclass(frozen=True)
class ImagineOptions:
    """What a member typed into /imagine (None: not given)."""

    prompt: str
    negative: str | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    count: int | None = None
    style: str | None = None

    def explicit(self) -> dict[str, Any]:
        """The options given, by option name (the prompt apart)."""
        names = ("negative", "seed", "steps", "guidance", "width", "height", "count", "style")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def build_request(
    options: ImagineOptions,
    *,
    limits: GenerationLimits,
    native: int,
    styles: Mapping[str, StylePreset],
    safety: SafetyPolicy,
    source_size: tuple[int, int] | None = None,
    loras: Mapping[str, LoraConfig] | None = None,
    family: str | None = None,
) -> GenerationRequest:
    """The txt2img request the options and flags describe (the caller adds a source image).

    ``source_size`` is the uploaded image's size, used for the shape when nothing else sets it.
    ``loras`` are the configured ``[loras.NAME]``; ``family`` the running model's (None: unchecked).
    Raises :class:`RequestError` (flag errors and unknown styles included) with a message for the member.
    """
    parsed = parse_prompt(options.prompt, styles=styles.keys())
    merged = merge_options(parsed, options.explicit())
    style_name = merged.get("style")
    preset: StylePreset | None = None
    if style_name is not None:
        preset = styles.get(str(style_name).lower())
        if preset is None:
            listing = ", ".join(sorted(styles)) or "none are configured"
            raise RequestError("style", f"`{style_name}` is not a style I know. Styles: {listing}.")
    text = str(merged["prompt"])
    blocked = safety.blocked_word_in(text)
    if blocked is not None:
        raise RequestError("prompt", f"Your prompt contains a word this server doesn't allow (`{blocked}`).")
    text, uses = resolve_loras(text, merged.get("loras", ()), loras or {}, family=family)
    prompt, negative = apply_style(text, str(merged.get("negative") or ""), preset)
    steps = merged.get("steps")
    if steps is None:
        steps = preset.steps if preset is not None and preset.steps is not None else limits.default_steps
    guidance = merged.get("guidance")
    if guidance is None:
        guidance = preset.guidance if preset is not None and preset.guidance is not None else limits.default_guidance
    width, height = _size(merged, limits=limits, native=native, source_size=source_size)
    seed = merged.get("seed")
    count = merged.get("count")
    return GenerationRequest(
        # Keep an empty prompt empty (validation names it), even when a style adds words around it.
        prompt=prompt if text.strip() else "",
        negative_prompt=negative,
        seed=random_seed() if seed is None else int(seed),
        steps=int(steps),
        guidance=float(guidance),
        width=width,
        height=height,
        count=limits.default_count if count is None else int(count),
        loras=uses,
        extra={"style": preset.name} if preset is not None else {},
    )


def _size(
    merged: Mapping[str, Any], *, limits: GenerationLimits, native: int, source_size: tuple[int, int] | None
) -> tuple[int, int]:
    width, height = merged.get("width"), merged.get("height")
    if "aspect_ratio" in merged:
        ratio_w, ratio_h = merged["aspect_ratio"]
        return aspect_size(ratio_w, ratio_h, native, max_side=limits.max_size)
    if width is None and height is None and source_size is not None:
        # The upload's shape at about the native pixel count (larger or smaller), sides multiples of 8.
        area = min(native * native, limits.max_pixels)
        scale = (area / (source_size[0] * source_size[1])) ** 0.5
        # A small native size can make the short side smaller than allowed: grow it to the minimum.
        scale = max(scale, limits.min_size / min(source_size))
        scaled = (max(1, round(source_size[0] * scale)), max(1, round(source_size[1] * scale)))
        return fit_size(*scaled, max_pixels=max(area, scaled[0] * scaled[1]))
    return (native if width is None else int(width), native if height is None else int(height))


def model_family_of(model: object) -> str | None:
    """The running model's family (``sd1``, ``sd2``, ``sdxl``), or None when it does not say (a remote worker)."""
    family = getattr(model, "family", None)
    return family if isinstance(family, str) else None


def rerun_options(params: PngParameters, image_size: tuple[int, int]) -> ImagineOptions:
    """The /imagine options that make a PNG's image again from its parameters (one image).

    The size is the one the parameters name, else the picture's own when its sides are multiples of 8.
    """
    width, height = params.width, params.height
    if width is None or height is None:
        width, height = image_size if image_size[0] % 8 == 0 and image_size[1] % 8 == 0 else (None, None)
    return ImagineOptions(
        prompt=params.prompt,
        negative=params.negative_prompt or None,
        seed=params.seed,
        steps=params.steps,
        guidance=params.guidance,
        width=width,
        height=height,
        count=1,
    )
