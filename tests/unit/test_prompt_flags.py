"""Prompt flags: parsing, errors that name the flag, aspect sizes, merging, and the reproduce line."""

from __future__ import annotations

import pytest

from rules.prompt_flags import (
    FlagError,
    ParsedPrompt,
    aspect_size,
    merge_options,
    parse_prompt,
    reproduce_line,
)
from rules.request import GenerationLimits, GenerationRequest, RequestError, validate


def test_prompt_without_flags_is_kept_whole() -> None:
    parsed = parse_prompt("  a lighthouse at dusk, well--known style  ")
    assert parsed == ParsedPrompt("a lighthouse at dusk, well--known style", {})


def test_every_flag_is_parsed_to_its_type() -> None:
    parsed = parse_prompt(
        "a cat in a hat --ar 16:9 --seed 42 --steps 25 --cfg 7.5 --n 3 --style Comic --no text, watermark"
    )
    assert parsed.prompt == "a cat in a hat"
    assert parsed.flags == {
        "ar": (16, 9),
        "seed": 42,
        "steps": 25,
        "cfg": 7.5,
        "n": 3,
        "style": "comic",
        "no": "text, watermark",
    }


def test_no_runs_up_to_the_next_flag() -> None:
    parsed = parse_prompt("forest --no people, cars, --seed 7")
    assert parsed.flags == {"no": "people, cars", "seed": 7}


@pytest.mark.parametrize("dash", ["—", "–", "--"])
def test_phone_dashes_count_as_double_hyphen(dash: str) -> None:
    parsed = parse_prompt(f"a fox {dash}ar 2:3 {dash}seed 9")
    assert parsed.prompt == "a fox"
    assert parsed.flags == {"ar": (2, 3), "seed": 9}


def test_aliases_and_size() -> None:
    parsed = parse_prompt("x --aspect 3:2 --guidance 6 --count 2")
    assert parsed.flags == {"ar": (3, 2), "cfg": 6.0, "n": 2}
    assert parse_prompt("x --size 768x512").flags == {"size": (768, 512)}


@pytest.mark.parametrize(
    ("text", "flag", "fragment"),
    [
        ("cat --foo 3", "foo", "--ar"),  # unknown: lists the valid flags
        ("cat --seed 1 --seed 2", "seed", "twice"),
        ("cat --ar 1:1 --aspect 2:3", "ar", "twice"),
        ("cat --ar 16x9", "ar", "16x9"),
        ("cat --ar 0:9", "ar", "above 0"),
        ("cat --ar 5:1", "ar", "1:4"),
        ("cat --seed abc", "seed", "abc"),
        ("cat --seed -5", "seed", "-5"),
        ("cat --seed 4294967296", "seed", "4294967295"),
        ("cat --steps", "steps", "needs a value"),
        ("cat --steps --seed 3", "steps", "needs a value"),
        ("cat --cfg seven", "cfg", "seven"),
        ("cat --cfg nan", "cfg", "nan"),
        ("cat --n 2.5", "n", "2.5"),
        ("cat --seed 5 on a mat", "seed", "one value"),
        ("cat --no", "no", "--no"),
        ("cat --size 512", "size", "512"),
        ("cat --ar 1:1 --size 512x512", "size", "not both"),
    ],
)
def test_mistakes_raise_flag_error_naming_the_flag(text: str, flag: str, fragment: str) -> None:
    with pytest.raises(FlagError) as caught:
        parse_prompt(text)
    assert caught.value.flag == flag
    assert f"--{flag}" in str(caught.value)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, RequestError)


def test_unknown_flag_lists_valid_ones() -> None:
    listed = (
        r"`--ar`, `--size`, `--seed`, `--steps`, `--cfg`, `--n`, `--style`, `--model`, `--sampler`, `--lora`, "
        r"`--cref`, `--no`"
    )
    with pytest.raises(FlagError, match=listed):
        parse_prompt("cat --quality 2")


def test_style_must_be_known_when_styles_are_given() -> None:
    assert parse_prompt("cat --style manga", styles={"manga", "comic"}).flags == {"style": "manga"}
    with pytest.raises(FlagError, match="Styles: comic, manga"):
        parse_prompt("cat --style vaporwave", styles={"manga", "comic"})


@pytest.mark.parametrize(
    ("ratio", "native", "expected"),
    [
        ((1, 1), 512, (512, 512)),
        ((16, 9), 1024, (1344, 768)),
        ((3, 2), 1024, (1216, 832)),
        ((2, 3), 1024, (832, 1216)),
        ((9, 16), 512, (384, 640)),
        ((4, 1), 512, (1024, 256)),
        ((1, 4), 512, (256, 1024)),
    ],
)
def test_aspect_size(ratio: tuple[int, int], native: int, expected: tuple[int, int]) -> None:
    width, height = aspect_size(*ratio, native)
    assert (width, height) == expected
    assert width % 64 == 0 and height % 64 == 0
    assert width * height <= native * native


def test_aspect_size_respects_max_side_and_refuses_absurd_ratios() -> None:
    width, height = aspect_size(4, 1, 1024, max_side=1536)
    assert width <= 1536 and width % 64 == 0 and height >= 64
    assert abs(width / height - 4) < 0.2
    assert aspect_size(4, 1, 64) == (128, 64)  # never below one multiple
    for ratio in ((9, 2), (1, 5), (0, 1)):
        with pytest.raises(FlagError):
            aspect_size(*ratio, 512)


def test_explicit_options_win_over_flags() -> None:
    parsed = parse_prompt("cat --seed 5 --steps 20 --no dogs --ar 16:9 --n 2")
    merged = merge_options(parsed, {"seed": 9, "steps": None, "negative": "birds", "scheduler": "ddim"})
    assert merged == {
        "prompt": "cat",
        "seed": 9,
        "steps": 20,
        "negative": "birds",
        "count": 2,
        "aspect_ratio": (16, 9),
        "scheduler": "ddim",
    }


def test_explicit_width_or_height_overrides_ar_and_size() -> None:
    assert "aspect_ratio" not in merge_options(parse_prompt("cat --ar 16:9"), {"width": 640})
    merged = merge_options(parse_prompt("cat --size 768x512"), {"height": 256})
    assert merged == {"prompt": "cat", "height": 256}
    assert merge_options(parse_prompt("cat --size 768x512"), {}) == {"prompt": "cat", "width": 768, "height": 512}


def _request_from_line(line: str, native: int) -> GenerationRequest:
    """What the bot would build from a pasted line (the merge/aspect path under test)."""
    options = merge_options(parse_prompt(line), {})
    width, height = options.get("width", native), options.get("height", native)
    if "aspect_ratio" in options:
        ratio_w, ratio_h = options["aspect_ratio"]
        width, height = aspect_size(ratio_w, ratio_h, native)
    return GenerationRequest(
        prompt=options["prompt"],
        negative_prompt=options.get("negative", ""),
        seed=options["seed"],
        steps=options["steps"],
        guidance=options["guidance"],
        width=width,
        height=height,
    )


@pytest.mark.parametrize(
    "request_",
    [
        GenerationRequest("a cat, oil painting", "text, watermark", 123, 28, 7.5, 640, 384),
        GenerationRequest("robot — portrait", "", 0, 1, 0.0, 512, 512),
        GenerationRequest("city at night", "blur", 4294967295, 50, 12.25, 520, 776),  # not an --ar size
        GenerationRequest("tall tower", "", 77, 30, 7.0, 256, 1024),
    ],
)
def test_reproduce_line_round_trips(request_: GenerationRequest) -> None:
    line = reproduce_line(
        prompt=request_.prompt,
        negative_prompt=request_.negative_prompt,
        seed=request_.seed,
        steps=request_.steps,
        guidance=request_.guidance,
        width=request_.width,
        height=request_.height,
        native=512,
    )
    assert line.startswith("/imagine prompt: ")
    rebuilt = _request_from_line(line, native=512)
    assert rebuilt == request_
    validate(rebuilt, GenerationLimits())


def test_reproduce_line_text() -> None:
    line = reproduce_line(
        prompt="a cat", negative_prompt="text", seed=5, steps=30, guidance=7.0, width=1344, height=768, native=1024
    )
    assert line == "/imagine prompt: a cat --ar 7:4 --seed 5 --steps 30 --cfg 7 --no text"
    line = reproduce_line(prompt="a cat", seed=5, steps=30, guidance=7.0, width=1344, height=768)
    assert line == "/imagine prompt: a cat --size 1344x768 --seed 5 --steps 30 --cfg 7"
