"""LoRA names, tags and flags, A1111 prompt weights, and the PNG ``parameters`` text: plain code, no model."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from bot.cogs.imagine._build import ImagineOptions, build_request, rerun_options
from bot.config import ConfigError, parse_settings
from rules.loras import LoraConfig, extract_lora_tags, resolve_loras, strip_lora_tags
from rules.png_parameters import (
    PARAMETERS_KEY,
    lora_hash,
    parameters_text,
    png_bytes,
    prompt_with_lora_tags,
    read_parameters,
    scheduler_of,
)
from rules.prompt_flags import FlagError, parse_prompt
from rules.prompt_weights import plain_text, weighted_fragments
from rules.request import GenerationLimits, GenerationRequest, LoraUse, RequestError, validate
from rules.safety import SafetyPolicy

CATALOG = {
    "ink": LoraConfig(source="/loras/ink.safetensors", trigger_words=("inkwash",), default_weight=0.7),
    "xl-only": LoraConfig(source="/loras/xl.safetensors", family="sdxl"),
}


# -- prompt weights -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "runs"),
    [
        ("a red cat", [("a red cat", 1.0)]),
        ("a (cat:1.5) on a mat", [("a", 1.0), ("cat", 1.5), ("on a mat", 1.0)]),
        ("a (cat) x", [("a", 1.0), ("cat", 1.1), ("x", 1.0)]),
        ("a ((cat)) x", [("a", 1.0), ("cat", pytest.approx(1.21)), ("x", 1.0)]),
        ("a [cat] x", [("a", 1.0), ("cat", pytest.approx(1 / 1.1)), ("x", 1.0)]),
        ("a (red (cat:1.2)) dog", [("a", 1.0), ("red", 1.1), ("cat", pytest.approx(1.32)), ("dog", 1.0)]),
        (r"a \(cat\) x", [("a (cat) x", 1.0)]),
        ("a (cat", [("a", 1.0), ("cat", 1.1)]),
        ("(fog:0.5), sea", [("fog", 0.5), (", sea", 1.0)]),
        ("", [("", 1.0)]),
    ],
)
def test_a1111_weights(prompt: str, runs: list[tuple[str, float]]) -> None:
    assert weighted_fragments(prompt) == runs


def test_plain_text_drops_the_syntax() -> None:
    assert plain_text("a (red:1.3) [cat]") == "a red cat"


# -- LoRA tags, flags and resolution ------------------------------------------------------------------


def test_lora_tags_are_found_and_stripped_for_the_encoder() -> None:
    prompt = "a cat <lora:ink:0.5>, on a hat <LORA:Pen Nib>"
    assert extract_lora_tags(prompt) == [("ink", 0.5), ("Pen Nib", None)]
    assert strip_lora_tags(prompt) == "a cat, on a hat"


def test_lora_flag_is_repeatable_and_checked() -> None:
    parsed = parse_prompt("a cat --lora ink:0.5 --seed 3 --lora pen")
    assert parsed.prompt == "a cat"
    assert parsed.flags["lora"] == (("ink", 0.5), ("pen", None))
    with pytest.raises(FlagError, match=r"--lora ink:0\.8"):
        parse_prompt("a cat --lora ink:lots")
    with pytest.raises(FlagError, match="given twice"):
        parse_prompt("a cat --seed 1 --seed 2")


def test_resolution_uses_default_weights_and_appends_missing_trigger_words() -> None:
    prompt, uses = resolve_loras("a cat <lora:INK:0.5>", [("ink", None)], CATALOG, family="sd1")
    assert uses == (LoraUse("ink", "/loras/ink.safetensors", 0.5), LoraUse("ink", "/loras/ink.safetensors", 0.7))
    assert prompt == "a cat <lora:INK:0.5>, inkwash"
    again, _ = resolve_loras("an inkwash cat <lora:ink>", [], CATALOG, family="sd1")
    assert again == "an inkwash cat <lora:ink>"


@pytest.mark.parametrize(
    ("prompt", "flags", "fragment"),
    [
        ("a <lora:ghost:1>", [], "`ghost` is not a LoRA I know. LoRAs: ink, xl-only."),
        ("a cat", [("xl-only", 1.0)], "made for sdxl models; this model is sd1"),
        ("a cat <lora:ink:9>", [], "between -4 and 4"),
    ],
)
def test_resolution_refuses_with_a_message(prompt: str, flags: list[tuple[str, float]], fragment: str) -> None:
    with pytest.raises(RequestError, match=fragment.replace(".", r"\.")):
        resolve_loras(prompt, flags, CATALOG, family="sd1")


def test_no_loras_configured_says_so() -> None:
    with pytest.raises(RequestError, match="No LoRAs are configured"):
        resolve_loras("a <lora:ink>", [], {}, family=None)


def test_build_request_keeps_the_prompt_as_written_and_carries_the_loras() -> None:
    request = build_request(
        ImagineOptions(prompt="a (red:1.2) cat <lora:ink:0.5> --lora ink --seed 4"), limits=GenerationLimits(),
        native=64, styles={}, safety=SafetyPolicy(), loras=CATALOG, family="sd1",
    )
    assert request.prompt == "a (red:1.2) cat <lora:ink:0.5>, inkwash"
    assert [use.weight for use in request.loras] == [0.5, 0.7]
    assert request.seed == 4


def test_a_long_prompt_is_no_longer_refused_only_the_character_cap_applies() -> None:
    long_prompt = ", ".join(["castle on a hill"] * 40)  # far past 77 tokens
    limits = GenerationLimits()
    assert validate(GenerationRequest(prompt=long_prompt[:1000]), limits).prompt == long_prompt[:1000].strip()
    with pytest.raises(RequestError, match="characters long"):
        validate(GenerationRequest(prompt=long_prompt), GenerationLimits(max_prompt_chars=100))


# -- config ---------------------------------------------------------------------------------------


def test_lora_and_embedding_tables() -> None:
    raw = {
        "discord": {"token": "t"},
        "loras": {"ink": {"source": "ink.safetensors", "trigger_words": ["inkwash"], "default_weight": 0.8}},
        "embeddings": {"grain": {"source": "grain.safetensors", "token": "<grain>", "family": "sd1"}},
    }
    settings = parse_settings(raw, env={})
    assert settings.loras["ink"].trigger_words == ("inkwash",)
    assert settings.embeddings["grain"].token == "<grain>"


@pytest.mark.parametrize(
    ("tables", "key"),
    [
        ({"loras": {"ink": {"source": "x", "family": "sd9"}}}, "loras.ink.family"),
        ({"loras": {"ink": {"source": "x", "default_weight": 7.0}}}, "loras.ink.default_weight"),
        ({"loras": {"ink": {"source": "x", "weight": 1.0}}}, "loras.ink"),
        ({"loras": {"<ink>": {"source": "x"}}}, "loras"),
        ({"embeddings": {"grain": {"source": "x"}}}, "embeddings.grain.token"),
    ],
)
def test_bad_tables_name_their_key(tables: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"discord": {"token": "t"}, **tables}, env={})
    assert caught.value.key.startswith(key)


# -- PNG parameters ---------------------------------------------------------------------------------


def request_with_loras(tmp_path: Path) -> GenerationRequest:
    ink = tmp_path / "ink.safetensors"
    ink.write_bytes(b"not really weights")
    return GenerationRequest(
        prompt="a (red:1.2) cat <lora:ink:0.5>", negative_prompt="blur, text", seed=5, steps=3, guidance=7.5,
        width=64, height=96, count=2, scheduler="dpmpp_2m",
        loras=(LoraUse("ink", str(ink), 0.5), LoraUse("pen", str(tmp_path / "missing.safetensors"), 1.0)),
    )


def test_parameters_text_is_the_web_uis(tmp_path: Path) -> None:
    request = request_with_loras(tmp_path)
    digest = lora_hash(str(tmp_path / "ink.safetensors"))
    assert digest is not None and len(digest) == 12
    text = parameters_text(request, seed=6, model_name="tiny-sd")
    assert text == (
        "a (red:1.2) cat <lora:ink:0.5> <lora:pen:1>\n"
        "Negative prompt: blur, text\n"
        "Steps: 3, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 6, Size: 64x96, Model: tiny-sd, "
        f'Lora hashes: "ink: {digest}"'
    )
    plain = parameters_text(GenerationRequest(prompt="a cat", seed=1), seed=1, model_name="m", sampler="DDIM")
    assert plain == "a cat\nSteps: 30, Sampler: DDIM, CFG scale: 7, Seed: 1, Size: 512x512, Model: m"


def test_a_tag_already_in_the_prompt_is_not_written_twice() -> None:
    uses = [LoraUse("ink", "x", 0.5), LoraUse("ink", "x", 0.7)]
    assert prompt_with_lora_tags("a <lora:ink:0.5>", uses) == "a <lora:ink:0.5> <lora:ink:0.7>"


def test_parameters_read_back_from_the_png(tmp_path: Path) -> None:
    request = request_with_loras(tmp_path)
    text = parameters_text(request, seed=6, model_name="tiny-sd")
    data = png_bytes(Image.new("RGB", (64, 96), (10, 20, 30)), text)
    with Image.open(io.BytesIO(data)) as image:
        assert image.info[PARAMETERS_KEY] == text
        params = read_parameters(image)
    assert params is not None
    assert (params.prompt, params.negative_prompt) == ("a (red:1.2) cat <lora:ink:0.5> <lora:pen:1>", "blur, text")
    assert (params.steps, params.guidance, params.seed, params.width, params.height) == (3, 7.5, 6, 64, 96)
    assert (params.scheduler, params.model) == ("DPM++ 2M", "tiny-sd")


def test_a_png_without_parameters_reads_as_none() -> None:
    with Image.open(io.BytesIO(png_bytes(Image.new("RGB", (8, 8)), None))) as image:
        assert read_parameters(image) is None


def test_non_latin_prompts_survive() -> None:
    text = "猫 (sakura:1.2)\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 1, Size: 64x64, Model: m"
    with Image.open(io.BytesIO(png_bytes(Image.new("RGB", (8, 8)), text))) as image:
        params = read_parameters(image)
    assert params is not None and params.prompt == "猫 (sakura:1.2)" and params.scheduler == "Euler a"


@pytest.mark.parametrize(
    ("sampler", "scheduler"),
    [("DPM++ 2M Karras", "DPM++ 2M Karras"), ("DPM++ 2M", "DPM++ 2M"), ("Euler a", "Euler a"), ("PLMS", "PLMS"),
     ("DDIM", "DDIM"), ("euler_ancestral", "Euler a"), ("dpmpp_2m", "DPM++ 2M"), ("Heun", None), ("Default", None),
     (None, None)],
)
def test_sampler_names_map_back(sampler: str | None, scheduler: str | None) -> None:
    assert scheduler_of(sampler) == scheduler


def test_rerun_options_from_parameters(tmp_path: Path) -> None:
    text = parameters_text(request_with_loras(tmp_path), seed=6, model_name="tiny-sd")
    with Image.open(io.BytesIO(png_bytes(Image.new("RGB", (64, 96)), text))) as image:
        params = read_parameters(image)
    assert params is not None
    options = rerun_options(params, (64, 96))
    assert (options.seed, options.steps, options.guidance, options.width, options.height, options.count) == (
        6, 3, 7.5, 64, 96, 1
    )
    assert options.negative == "blur, text"


def test_a_result_re_encoded_to_fit_keeps_its_parameters_in_exif(tmp_path: Path) -> None:
    import numpy as np

    from bot.result_files import result_upload
    from composition.upload_fit import MIN_MAX_BYTES

    noise = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    picture = Image.fromarray(noise)
    text = parameters_text(request_with_loras(tmp_path), seed=6, model_name="tiny-sd")
    encoded = png_bytes(picture, text)
    upload = result_upload([picture], [encoded], ("post",), 1, [6], MIN_MAX_BYTES * 4, text)
    assert upload.filename is not None and not upload.filename.endswith(".png")  # a lossy re-encode
    assert upload.data is not None and len(upload.data) <= MIN_MAX_BYTES * 4
    with Image.open(io.BytesIO(upload.data)) as image:
        params = read_parameters(image)
    assert params is not None and params.seed == 6 and params.prompt.endswith("<lora:pen:1>")


def test_the_info_line_reproduces_loras_given_as_flags() -> None:
    from bot.embeds import info_text
    from rules.prompt_flags import parse_prompt as parse

    request = build_request(
        ImagineOptions(prompt="a cat --lora ink:0.5 --seed 4 --n 1"), limits=GenerationLimits(), native=64,
        styles={}, safety=SafetyPolicy(), loras=CATALOG, family="sd1",
    )
    text = info_text(request, image_id=1, job_id=1, model_name="m", native=64, parent_image_id=None)
    line = next(part for part in text.splitlines() if "/imagine prompt:" in part).strip("`")
    again = build_request(
        ImagineOptions(prompt=line), limits=GenerationLimits(), native=64, styles={}, safety=SafetyPolicy(),
        loras=CATALOG, family="sd1",
    )
    assert parse(line).prompt.endswith("<lora:ink:0.5>")
    assert again.loras == request.loras and again.seed == 4
