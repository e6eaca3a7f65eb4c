"""From /imagine's options and the flags in its prompt to one :class:`GenerationRequest`.

Plain code, no Discord: the order of precedence is easy to read here and to test.

1. Flags in the prompt (``--ar 16:9 --seed 42 --no text``) are parsed; an unknown or malformed
   flag is a :class:`~rules.prompt_flags.FlagError` listing the valid ones.
2. Options given explicitly win over flags (``merge_options``).
3. A style preset (option or ``--style``) wraps the prompt and adds its negative prompt; its
   steps and guidance replace the configured defaults, never a value the member gave.
4. The model (option or ``--model``; else the default model) brings its own defaults from
   ``[models.NAME]``: steps, guidance, sampler, negative prompt and size, used where neither the
   member nor the style set them; ``[generation]``'s defaults come last.
5. LoRAs: ``<lora:NAME:WEIGHT>`` tags in the prompt (kept in it as written) and ``--lora`` flags
   are resolved against ``[loras.NAME]`` (:func:`rules.loras.resolve_loras`) for the chosen
   model's family; missing trigger words are appended to the prompt.
5. The size: explicit ``width``/``height``, else ``--size``, else ``--ar`` (about the model's
   native pixel count, sides multiples of 64), else the uploaded image's shape at about that
   pixel count, else the server's default size (``/settings``), else the model's configured size,
   else its native square.
6. ``--cref NAME`` is kept in ``extra`` for the cog, which looks the characters up
   (:func:`bot.character_looks.apply_cref`).

A server's defaults (``/settings``) arrive as ``limits`` (its default steps, guidance and count),
``default_size``, ``default_style`` (used when the member names no style) and ``default_model``
(used when the member names no model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.character_looks import CREF_KEY
from rules.image_checks import fit_size
from rules.loras import LoraConfig, resolve_loras
from rules.models import ModelSpec, find_model
from rules.png_parameters import PngParameters
from rules.prompt_flags import aspect_size, merge_options, parse_prompt
from rules.request import (
    GenerationLimits,
    GenerationRequest,
    RequestError,
    canonical_scheduler,
    random_seed,
    scheduler_error,
)
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
    model: str | None = None
    sampler: str | None = None

    def explicit(self) -> dict[str, Any]:
        """The options given, by option name (the prompt apart)."""
        names = ("negative", "seed", "steps", "guidance", "width", "height", "count", "style", "model", "sampler")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def build_request(
    options: ImagineOptions,
    *,
    limits: GenerationLimits,
    native: int,
    styles: Mapping[str, StylePreset],
    safety: SafetyPolicy,
    source_size: tuple[int, int] | None = None,
    default_size: tuple[int, int] | None = None,
    default_style: str | None = None,
    default_model: str | None = None,
    models: Sequence[ModelSpec] = (),
    native_for: Callable[[ModelSpec], int] | None = None,
    loras: Mapping[str, LoraConfig] | None = None,
    family: str | None = None,
    family_for: Callable[[ModelSpec], str | None] | None = None,
) -> GenerationRequest:
    """The txt2img request the options and flags describe (the caller adds a source image).

    ``source_size`` is the uploaded image's size, used for the shape when nothing else sets it.
    ``models`` are the configured models, the default first (none: only the default, with
    ``native``); ``native_for`` gives a model's native side (default: ``native``). A request on
    the default model names none (``model`` None), so it follows ``[model]``.
    ``loras`` are the configured ``[loras.NAME]``; ``family`` the running model's family (``sd1``,
    ``sd2``, ``sdxl``; None: unchecked), or ``family_for`` gives the chosen model's.
    Raises :class:`RequestError` (flag errors, unknown styles, models and LoRAs included) with a message for the member.
    """
    parsed = parse_prompt(options.prompt, styles=styles.keys(), models=[spec.name for spec in models] or None)
    merged = merge_options(parsed, options.explicit())
    spec: ModelSpec | None = None
    if merged.get("model") is not None:
        if not models:
            raise RequestError("model", "This bot has one model only; leave `model` out.")
        spec = find_model(str(merged["model"]), models)
    elif models:
        spec = _default_spec(default_model, models)
    if spec is not None and native_for is not None:
        native = native_for(spec)
    sampler = merged.get("sampler")
    if sampler is not None:
        canonical = canonical_scheduler(str(sampler))
        if canonical is None:
            raise scheduler_error("sampler", str(sampler))
        sampler = canonical
    elif spec is not None:
        sampler = spec.scheduler
    style_name = merged.get("style") or default_style
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
    if spec is not None and family_for is not None:
        family = family_for(spec)
    text, uses = resolve_loras(text, merged.get("loras", ()), loras or {}, family=family)
    negative_given = merged.get("negative")
    if negative_given is None and spec is not None:
        negative_given = spec.negative_prompt
    prompt, negative = apply_style(text, str(negative_given or ""), preset)
    steps = _first(merged.get("steps"), preset.steps if preset else None, spec.steps if spec else None,
                   limits.default_steps)
    guidance = _first(merged.get("guidance"), preset.guidance if preset else None,
                      spec.guidance if spec else None, limits.default_guidance)
    if spec is not None and "width" not in merged and "height" not in merged and "aspect_ratio" not in merged \
            and source_size is None and (spec.width is not None or spec.height is not None):
        merged = {**merged, "width": spec.width or spec.height, "height": spec.height or spec.width}
    width, height = _size(merged, limits=limits, native=native, source_size=source_size, default_size=default_size)
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
        scheduler=sampler,
        model=spec.name if spec is not None and models and spec is not models[0] else None,
        loras=uses,
        extra={
            **({"style": preset.name} if preset is not None else {}),
            **({CREF_KEY: list(merged["cref"])} if merged.get("cref") else {}),
        },
    )


def _default_spec(name: str | None, models: Sequence[ModelSpec]) -> ModelSpec:
    """The server's default model, else the config's (a default no longer configured falls back)."""
    for spec in models:
        if name is not None and spec.name == name:
            return spec
    return models[0]


def _first(*values: Any) -> Any:
    """The first value that is not None."""
    return next(value for value in values if value is not None)


def _size(
    merged: Mapping[str, Any],
    *,
    limits: GenerationLimits,
    native: int,
    source_size: tuple[int, int] | None,
    default_size: tuple[int, int] | None = None,
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
    if width is None and height is None and default_size is not None:
        return default_size
    return (native if width is None else int(width), native if height is None else int(height))


def model_family_of(model: object) -> str | None:
    """The running model's family (``sd1``, ``sd2``, ``sdxl``), or None when it does not say (a remote worker)."""
    family = getattr(model, "family", None)
    return family if isinstance(family, str) else None


def rerun_options(
    params: PngParameters, image_size: tuple[int, int], models: Sequence[ModelSpec] = ()
) -> ImagineOptions:
    """The /imagine options that make a PNG's image again from its parameters (one image).

    The size is the one the parameters name, else the picture's own when its sides are multiples of 8.
    The model is the one the parameters name when it is configured here, else the default one; the
    negative prompt is the PNG's even when empty (a model's default negative prompt is not added).
    """
    width, height = params.width, params.height
    if width is None or height is None:
        width, height = image_size if image_size[0] % 8 == 0 and image_size[1] % 8 == 0 else (None, None)
    named = (params.model or "").strip().lower()
    model = next((spec.name for spec in models if spec.name == named), None)
    return ImagineOptions(
        prompt=params.prompt,
        negative=params.negative_prompt,
        seed=params.seed,
        steps=params.steps,
        guidance=params.guidance,
        width=width,
        height=height,
        count=1,
        model=model,
        sampler=params.scheduler,
    )
