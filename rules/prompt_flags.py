"""Midjourney-style flags written into a prompt: ``a lighthouse at dusk --ar 16:9 --seed 42 --no text``.

The prompt text comes first and the flags follow it. Each flag takes one value, except ``--no``,
and ``--cref``, whose values (the negative prompt; character names, separated by commas) run up to
the next flag or the end:

==============  ==========================  ====================================
flag            value                       slash-command option it fills
==============  ==========================  ====================================
``--ar``        ``W:H`` (whole numbers)     ``width`` and ``height`` (see below)
``--size``      ``WxH`` in pixels           ``width`` and ``height``
``--seed``      whole number                ``seed``
``--no``        text up to the next flag    ``negative``
``--steps``     whole number                ``steps``
``--cfg``       number                      ``guidance``
``--n``         whole number                ``count``
``--style``     a style preset's name       ``style``
``--model``     a configured model's name   ``model``
``--sampler``   a sampler name              ``sampler``
``--cref``      character names, by commas  ``cref`` (characters of the active comic)
``--lora``      ``NAME`` or ``NAME:WEIGHT`` a LoRA from ``[loras.NAME]`` (repeatable)
==============  ==========================  ====================================

``--aspect``, ``--guidance``, ``--count`` and ``--scheduler`` are accepted as other names for
``--ar``, ``--cfg``, ``--n`` and ``--sampler``. A sampler's name may have spaces
(``--sampler DPM++ 2M Karras``; its value runs up to the next flag, like ``--no``'s) and any case;
``euler_a`` and ``dpm++_2m_karras`` work too. ``--lora`` is the one flag that may be given several
times. Phones turn ``--`` into an em dash, so ``—ar`` (and the en dash ``–ar``) count as ``--ar``.
A flag starts only after a space (or at the very start), so ``well--known`` is text.

This module checks the *form* of each value (a number is a number); ranges are checked by
:func:`rules.request.validate`, which knows the configured limits. Errors are
:class:`FlagError`, a :class:`~rules.request.RequestError`, so the code that already answers
``RequestError`` with its message answers flag mistakes too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict, cast

from rules.models import MODEL_NAME_RE
from rules.request import SCHEDULERS, SEED_MAX, RequestError, canonical_scheduler

#: The widest aspect ratio accepted, either way round (4:1 or 1:4).
MAX_ASPECT: Final = 4.0

#: Canonical flag names, in the order they are listed to users and written by :func:`reproduce_line`.
FLAG_NAMES: Final[tuple[str, ...]] = (
    "ar", "size", "seed", "steps", "cfg", "n", "style", "model", "sampler", "lora", "cref", "no"
)
#: Flags that may be given more than once (their values are collected in order).
REPEATABLE_FLAGS: Final = frozenset({"lora"})

#: Other spellings users may type, mapped to the canonical name.
FLAG_ALIASES: Final[Mapping[str, str]] = {"aspect": "ar", "guidance": "cfg", "count": "n", "scheduler": "sampler"}

#: An example for each flag, used in error messages.
_EXAMPLES: Final[Mapping[str, str]] = {
    "ar": "--ar 16:9",
    "size": "--size 768x512",
    "seed": "--seed 1234",
    "steps": "--steps 30",
    "cfg": "--cfg 7.5",
    "n": "--n 4",
    "style": "--style comic",
    "model": "--model sdxl",
    "sampler": "--sampler DPM++ 2M Karras",
    "cref": "--cref Mira",
    "lora": "--lora ink:0.8",
    "no": "--no text, watermark",
}

#: ``--name`` / ``—name`` / ``–name`` after whitespace or at the start of the text.
_FLAG_RE: Final = re.compile(r"(?<!\S)(?:--|—|–)([A-Za-z][A-Za-z0-9_-]*)")
_COMMAND_PREFIX_RE: Final = re.compile(r"^\s*/imagine\s+prompt:\s*", re.IGNORECASE)
_WHOLE_RE: Final = re.compile(r"^\d+$")
_NUMBER_RE: Final = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
_RATIO_RE: Final = re.compile(r"^(\d+):(\d+)$")
_SIZE_RE: Final = re.compile(r"^(\d+)[x×](\d+)$", re.IGNORECASE)
_STYLE_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LORA_RE: Final = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)(?::([+-]?(?:\d+\.?\d*|\.\d+)))?$")


class FlagError(RequestError):
    """A flag in the prompt is unknown, repeated or malformed; ``str()`` is a short message for the user."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(flag, message)
        self.flag = flag


class Flags(TypedDict, total=False):
    """The typed values of the flags found in a prompt, keyed by canonical flag name."""

    ar: tuple[int, int]
    size: tuple[int, int]
    seed: int
    steps: int
    cfg: float
    n: int
    style: str
    model: str
    sampler: str
    cref: tuple[str, ...]
    lora: tuple[tuple[str, float | None], ...]
    no: str


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt split into its text and its flags."""

    prompt: str
    flags: Flags = field(default_factory=lambda: Flags())


def _valid_flags_text() -> str:
    return ", ".join(f"`--{name}`" for name in FLAG_NAMES)


def _single_value(flag: str, raw: str) -> str:
    """The one word a flag takes, or a :class:`FlagError` saying what is wrong."""
    words = raw.split()
    if not words:
        raise FlagError(flag, f"`--{flag}` needs a value, like `{_EXAMPLES[flag]}`.")
    if len(words) > 1:
        raise FlagError(
            flag,
            f"`--{flag}` takes one value, like `{_EXAMPLES[flag]}`; you gave `{raw}`. "
            "Put the description before the flags.",
        )
    return words[0]


def _whole(flag: str, value: str) -> int:
    if not _WHOLE_RE.match(value):
        raise FlagError(flag, f"`--{flag}` needs a whole number, like `{_EXAMPLES[flag]}`; you gave `{value}`.")
    return int(value)


def check_aspect(ratio_w: int, ratio_h: int) -> None:
    """Refuse a ratio with a zero side or wider than 4:1 (either way round) with :class:`FlagError`."""
    if ratio_w <= 0 or ratio_h <= 0:
        raise FlagError("ar", f"`--ar` needs two whole numbers above 0, like `16:9`; you gave `{ratio_w}:{ratio_h}`.")
    if max(ratio_w, ratio_h) / min(ratio_w, ratio_h) > MAX_ASPECT:
        raise FlagError(
            "ar", f"`--ar {ratio_w}:{ratio_h}` is too stretched; use a ratio between 1:4 and 4:1."
        )


def _parse_value(flag: str, raw: str, styles: Collection[str] | None, models: Collection[str] | None) -> Any:
    """Turn the raw text after one flag into its typed value."""
    if flag == "sampler":
        typed = " ".join(raw.split())
        if not typed:
            raise FlagError("sampler", f"`--sampler` needs a sampler's name, like `{_EXAMPLES['sampler']}`.")
        sampler = canonical_scheduler(typed)
        if sampler is None:
            listing = ", ".join(SCHEDULERS)
            raise FlagError("sampler", f"`--sampler {typed}` is not a sampler I know. Samplers: {listing}.")
        return sampler
    if flag == "no":
        negative = raw.strip().strip(",").strip()
        if not negative:
            raise FlagError("no", f"`--no` needs the things to keep out, like `{_EXAMPLES['no']}`.")
        return negative
    if flag == "cref":
        names = tuple(" ".join(name.split()) for name in raw.split(","))
        if not all(names):
            raise FlagError("cref", f"`--cref` needs character names separated by commas, like `{_EXAMPLES['cref']}`.")
        return names
    value = _single_value(flag, raw)
    if flag == "ar":
        match = _RATIO_RE.match(value)
        if not match:
            raise FlagError("ar", f"`--ar` needs a ratio like `16:9` (whole numbers and a colon); you gave `{value}`.")
        ratio = (int(match[1]), int(match[2]))
        check_aspect(*ratio)
        return ratio
    if flag == "size":
        match = _SIZE_RE.match(value)
        if not match:
            raise FlagError("size", f"`--size` needs width x height in pixels, like `768x512`; you gave `{value}`.")
        return (int(match[1]), int(match[2]))
    if flag == "seed":
        seed = _whole("seed", value)
        if seed > SEED_MAX:
            raise FlagError("seed", f"`--seed` must be between 0 and {SEED_MAX}; you gave {seed}.")
        return seed
    if flag in ("steps", "n"):
        return _whole(flag, value)
    if flag == "lora":
        match = _LORA_RE.match(value)
        if not match:
            raise FlagError("lora", f"`--lora` needs a name and maybe a weight, like `{_EXAMPLES['lora']}`; "
                            f"you gave `{value}`.")
        return (match[1], float(match[2]) if match[2] is not None else None)
    if flag == "cfg":
        if not _NUMBER_RE.match(value) or not math.isfinite(float(value)):
            raise FlagError("cfg", f"`--cfg` needs a number, like `--cfg 7.5`; you gave `{value}`.")
        return float(value)
    if flag == "model":
        name = value.lower()
        known_models = list(models) if models is not None else None
        if not MODEL_NAME_RE.match(name) or (known_models is not None and name not in known_models):
            listing = f" Models: {', '.join(known_models)}." if known_models else ""
            raise FlagError("model", f"`--model {value}` is not a model I know.{listing}")
        return name
    # style
    name = value.lower()
    known = sorted(styles) if styles is not None else None
    if not _STYLE_RE.match(name) or (known is not None and name not in known):
        listing = f" Styles: {', '.join(known)}." if known else ""
        raise FlagError("style", f"`--style {value}` is not a style I know.{listing}")
    return name


def parse_prompt(
    text: str, *, styles: Collection[str] | None = None, models: Collection[str] | None = None
) -> ParsedPrompt:
    """Split ``text`` into the prompt and its flags; raise :class:`FlagError` naming the flag on a mistake.

    The prompt is the text before the first flag, stripped. A leading ``/imagine prompt:`` (from a
    pasted :func:`reproduce_line`) is dropped. ``styles``, when given, is the set of known style
    names: ``--style`` must name one of them; ``models`` does the same for ``--model``. Flag names
    are case-insensitive.
    """
    text = _COMMAND_PREFIX_RE.sub("", text, count=1)
    matches = list(_FLAG_RE.finditer(text))
    if not matches:
        return ParsedPrompt(text.strip())
    flags: dict[str, Any] = {}
    for index, match in enumerate(matches):
        typed = match[1].lower()
        flag = FLAG_ALIASES.get(typed, typed)
        if flag not in FLAG_NAMES:
            raise FlagError(typed, f"`--{typed}` is not a flag I know. Flags: {_valid_flags_text()}.")
        if flag in flags and flag not in REPEATABLE_FLAGS:
            raise FlagError(flag, f"`--{flag}` is given twice; keep one.")
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        value = _parse_value(flag, text[match.end() : end], styles, models)
        flags[flag] = (*flags.get(flag, ()), value) if flag in REPEATABLE_FLAGS else value
    if "ar" in flags and "size" in flags:
        raise FlagError("size", "Use either `--ar` or `--size`, not both.")
    return ParsedPrompt(text[: matches[0].start()].strip(), cast(Flags, flags))


def aspect_size(
    ratio_w: int, ratio_h: int, native: int, *, multiple: int = 64, max_side: int | None = None
) -> tuple[int, int]:
    """A ``(width, height)`` with aspect ``ratio_w:ratio_h`` and about ``native * native`` pixels.

    Each side is a multiple of ``multiple`` (at least ``multiple``) and at most ``max_side``. Among
    the sizes that round each side down or up, the one closest to the ratio is picked whose pixel
    count does not pass ``native * native`` (so it stays within a ``max_pixels`` set to the
    model's native area): 16:9 at 1024 gives 1344x768, 3:2 gives 1216x832. Ratios wider than
    4:1 either way raise :class:`FlagError`.
    """
    check_aspect(ratio_w, ratio_h)
    if native < multiple or multiple < 1:
        raise ValueError(f"native = {native} must be at least multiple = {multiple}")
    area = native * native
    ratio = ratio_w / ratio_h
    exact_w, exact_h = math.sqrt(area * ratio), math.sqrt(area / ratio)
    if max_side is not None:
        if max_side < multiple:
            raise ValueError(f"max_side = {max_side} must be at least multiple = {multiple}")
        shrink = min(1.0, max_side / max(exact_w, exact_h))
        exact_w, exact_h = exact_w * shrink, exact_h * shrink
    limit_side = max_side if max_side is not None else math.inf

    def sides(exact: float) -> list[int]:
        low = max(multiple, math.floor(exact / multiple) * multiple)
        return [low, low + multiple]

    candidates = [
        (w, h)
        for w in sides(exact_w)
        for h in sides(exact_h)
        if w * h <= area and w <= limit_side and h <= limit_side
    ]
    if not candidates:  # only when even the smallest multiples pass the area: tiny natives
        return (max(multiple, math.floor(exact_w / multiple) * multiple),
                max(multiple, math.floor(exact_h / multiple) * multiple))
    return min(candidates, key=lambda wh: (abs(math.log((wh[0] / wh[1]) / ratio)), -wh[0] * wh[1]))


#: Flag name -> the slash-command option it fills (``ar`` and ``size`` are handled apart).
_OPTION_OF_FLAG: Final[Mapping[str, str]] = {
    "seed": "seed",
    "steps": "steps",
    "cfg": "guidance",
    "n": "count",
    "style": "style",
    "model": "model",
    "sampler": "sampler",
    "cref": "cref",
    "lora": "loras",
    "no": "negative",
}


def merge_options(parsed: ParsedPrompt, explicit: Mapping[str, Any]) -> dict[str, Any]:
    """Combine the flags with the slash command's own options; **explicit options win over flags**.

    ``explicit`` maps option names (``negative``, ``seed``, ``steps``, ``guidance``, ``count``,
    ``style``, ``width``, ``height``, ...) to values; ``None`` means "not given" and is skipped,
    and names this module does not know are passed through. The result uses the same option names
    plus ``prompt`` (the text without flags) and, for ``--ar``, ``aspect_ratio`` as ``(w, h)``;
    turn that into pixels with :func:`aspect_size`. ``--size`` fills ``width`` and ``height``.
    An explicit ``width`` or ``height`` overrides ``--ar`` and ``--size`` entirely. Options
    neither given nor flagged are absent: the caller applies style and config defaults.
    """
    merged: dict[str, Any] = {"prompt": parsed.prompt}
    flags = parsed.flags
    by_name = cast(Mapping[str, Any], flags)
    for flag, option in _OPTION_OF_FLAG.items():
        if flag in by_name:
            merged[option] = by_name[flag]
    given = {key: value for key, value in explicit.items() if value is not None and key != "prompt"}
    if "width" not in given and "height" not in given:
        if "ar" in flags:
            merged["aspect_ratio"] = flags["ar"]
        if "size" in flags:
            merged["width"], merged["height"] = flags["size"]
    merged.update(given)
    return merged


def _number_text(value: float) -> str:
    """``7.0`` -> ``7``, ``7.25`` -> ``7.25``: short and exact when read back with ``float()``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def reproduce_line(
    *,
    prompt: str,
    negative_prompt: str = "",
    seed: int,
    steps: int,
    guidance: float,
    width: int,
    height: int,
    native: int | None = None,
    model: str | None = None,
    sampler: str | None = None,
) -> str:
    """The ``/imagine prompt: ... --ar ... --seed ... --steps ... --cfg ... --no ...`` line for one image.

    Pass the image's own seed (``request.seeds()[i]``): the line asks for that one image. The size
    is written as ``--ar W:H`` when :func:`aspect_size` gives back exactly ``width x height`` at the
    model's ``native`` size, else as ``--size WxH``, so the line always reproduces the image. A
    style is not written: its text is already part of ``prompt`` and ``negative_prompt``, and its
    steps and guidance are written as numbers; ``model`` and ``sampler`` are written when given.
    Feeding the line (with or without the ``/imagine prompt:`` start) to :func:`parse_prompt` gives these values back.
    """
    parts = [f"/imagine prompt: {prompt.strip()}"]
    divisor = math.gcd(width, height)
    ratio = (width // divisor, height // divisor)
    try:
        use_ratio = native is not None and aspect_size(*ratio, native) == (width, height)
    except (FlagError, ValueError):
        use_ratio = False
    parts.append(f"--ar {ratio[0]}:{ratio[1]}" if use_ratio else f"--size {width}x{height}")
    parts.append(f"--seed {seed}")
    parts.append(f"--steps {steps}")
    parts.append(f"--cfg {_number_text(guidance)}")
    if model:
        parts.append(f"--model {model}")
    if sampler:
        parts.append(f"--sampler {sampler}")
    if negative_prompt.strip():
        parts.append(f"--no {negative_prompt.strip()}")
    return " ".join(parts)
