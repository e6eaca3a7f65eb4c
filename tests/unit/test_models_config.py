"""Several models and samplers without a GPU: `[models.NAME]` config, `--model`/`--sampler`, request defaults."""

from __future__ import annotations

from typing import Any

import pytest

from bot.cogs.imagine._build import ImagineOptions, build_request
from bot.config import ConfigError, parse_settings
from rules.models import ModelSpec, default_model_name, find_model, match_models
from rules.prompt_flags import FlagError, parse_prompt, reproduce_line
from rules.request import SCHEDULERS, GenerationLimits, GenerationRequest, RequestError, canonical_scheduler, validate
from rules.safety import SafetyPolicy
from rules.styles import DEFAULT_STYLES


def settings(**sections: Any) -> Any:
    return parse_settings({"discord": {"token": "t"}, **sections}, env={})


def test_model_tables_add_models_after_the_default_one() -> None:
    loaded = settings(
        model={"id": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
        models={
            "sdxl": {"id": "stabilityai/stable-diffusion-xl-base-1.0", "display_name": "SDXL base",
                     "vae": "madebyollin/sdxl-vae-fp16-fix", "width": 1024, "height": 1024, "steps": 25,
                     "guidance": 6.5, "scheduler": "dpm++ 2m karras", "negative_prompt": "blurry"},
            "anime": {"id": "models/anime.safetensors"},
        },
    )
    specs = loaded.model_specs()
    assert [spec.name for spec in specs] == ["stable-diffusion-v1-5", "sdxl", "anime"]
    sdxl = specs[1]
    assert sdxl.title == "SDXL base" and sdxl.vae == "madebyollin/sdxl-vae-fp16-fix"
    assert (sdxl.width, sdxl.height, sdxl.steps, sdxl.guidance) == (1024, 1024, 25, 6.5)
    assert sdxl.scheduler == "DPM++ 2M Karras"  # stored by its listed name
    assert sdxl.negative_prompt == "blurry"
    assert specs[2].scheduler is None and specs[2].steps is None
    assert loaded.queue.max_loaded_models == 1


def test_the_single_model_config_still_works_and_can_be_named() -> None:
    assert [spec.name for spec in settings().model_specs()] == ["stable-diffusion-v1-5"]
    named = settings(model={"id": "x/y", "name": "base", "display_name": "Base", "scheduler": "euler_a"})
    (spec,) = named.model_specs()
    assert (spec.name, spec.source, spec.title, spec.scheduler) == ("base", "x/y", "Base", "Euler a")


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"models": {"Big Model": {"id": "a/b"}}}, "models.Big Model"),
        ({"models": {"xl": {}}}, "models.xl.id"),
        ({"models": {"xl": {"id": "a/b", "colour": "red"}}}, "models.xl.colour"),
        ({"models": {"xl": {"id": "a/b", "scheduler": "warp drive"}}}, "models.xl.scheduler"),
        ({"models": {"xl": {"id": "a/b", "width": 1001}}}, "models.xl.width"),
        ({"models": {"xl": {"id": "a/b", "steps": 500}}}, "models.xl.steps"),
        ({"models": {"xl": {"id": "a/b", "guidance": 99.0}}}, "models.xl.guidance"),
        ({"model": {"id": "a/b", "name": "xl"}, "models": {"xl": {"id": "c/d"}}}, "models.xl"),
        ({"model": {"name": "Not A Name"}}, "model.name"),
        ({"queue": {"max_loaded_models": 0}}, "queue.max_loaded_models"),
    ],
)
def test_bad_model_settings_name_their_key(sections: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**sections)
    assert caught.value.key == key, str(caught.value)


def test_an_unknown_model_key_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: id, display_name, vae"):
        settings(models={"xl": {"id": "a/b", "colour": "red"}})


def test_model_names_from_where_the_weights_are() -> None:
    assert default_model_name("stable-diffusion-v1-5/stable-diffusion-v1-5") == "stable-diffusion-v1-5"
    assert default_model_name("models/Anime Mix.safetensors") == "anime-mix"
    assert default_model_name("/srv/ckpt/dream.ckpt") == "dream"
    assert default_model_name("models/tiny-sd/") == "tiny-sd"


def test_finding_and_completing_models() -> None:
    specs = [ModelSpec("base", "a/b"), ModelSpec("sdxl", "c/d", display_name="SDXL base"), ModelSpec("xl-turbo", "e/f")]
    assert find_model("SDXL", specs).name == "sdxl"
    with pytest.raises(RequestError, match="Models: base, sdxl, xl-turbo"):
        find_model("dalle", specs)
    assert [s.name for s in match_models("xl", specs)] == ["xl-turbo", "sdxl"]
    assert [s.name for s in match_models("", specs)] == ["base", "sdxl", "xl-turbo"]


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("DPM++ 2M Karras", "DPM++ 2M Karras"),
        ("dpm++ 2m karras", "DPM++ 2M Karras"),
        ("dpm++_2m_karras", "DPM++ 2M Karras"),
        ("dpmpp_2m_karras", "DPM++ 2M Karras"),
        ("DPM++ SDE Karras", "DPM++ SDE Karras"),
        ("euler_a", "Euler a"),
        ("Euler A", "Euler a"),
        ("euler", "Euler"),
        ("ddim", "DDIM"),
        ("unipc", "UniPC"),
        ("lcm", "LCM"),
        ("dpmpp_2m", "DPM++ 2M"),  # stored before the names changed
        ("pndm", "PLMS"),
    ],
)
def test_sampler_names_in_any_spelling(typed: str, name: str) -> None:
    assert canonical_scheduler(typed) == name


def test_every_listed_sampler_is_its_own_name_and_unknown_ones_are_refused() -> None:
    for name in SCHEDULERS:
        assert canonical_scheduler(name) == name
    assert canonical_scheduler("warp drive") is None
    request = GenerationRequest(prompt="cat", width=64, height=64, steps=4, scheduler="euler_a")
    assert validate(request, GenerationLimits()).scheduler == "Euler a"


def test_model_and_sampler_flags() -> None:
    parsed = parse_prompt("a fox --model SDXL --sampler dpm++ 2m karras --seed 3", models=["base", "sdxl"])
    assert parsed.prompt == "a fox"
    assert parsed.flags == {"model": "sdxl", "sampler": "DPM++ 2M Karras", "seed": 3}
    assert parse_prompt("a fox --scheduler euler_a").flags == {"sampler": "Euler a"}
    with pytest.raises(FlagError, match="Models: base, sdxl") as caught:
        parse_prompt("a fox --model dalle", models=["base", "sdxl"])
    assert caught.value.flag == "model"
    with pytest.raises(FlagError, match="Samplers: DPM\\+\\+ 2M Karras") as caught:
        parse_prompt("a fox --sampler warp drive")
    assert caught.value.flag == "sampler"
    with pytest.raises(FlagError, match="needs a sampler"):
        parse_prompt("a fox --sampler --seed 2")


def test_the_reproduce_line_carries_model_and_sampler() -> None:
    line = reproduce_line(prompt="a fox", seed=5, steps=20, guidance=6.0, width=64, height=64, native=64,
                          model="sdxl", sampler="DPM++ SDE Karras")
    flags = parse_prompt(line, models=["sdxl"]).flags
    assert flags["model"] == "sdxl" and flags["sampler"] == "DPM++ SDE Karras" and flags["seed"] == 5


def test_requests_keep_their_model_and_batch_only_with_the_same_model() -> None:
    request = GenerationRequest(prompt="cat", model="sdxl", scheduler="Euler a")
    assert GenerationRequest.from_json(request.to_json()) == request
    assert request.batch_key() != request.replace(model=None).batch_key()
    assert GenerationRequest.from_json(GenerationRequest(prompt="old").to_json()).model is None


SPECS = (
    ModelSpec("base", "a/b"),
    ModelSpec("sdxl", "c/d", width=1024, height=768, steps=25, guidance=5.5, scheduler="Euler a",
              negative_prompt="blurry"),
    ModelSpec("turbo", "e/f", steps=4, guidance=0.0, scheduler="LCM"),
)


def build(prompt: str, **options: Any) -> GenerationRequest:
    natives = {"base": 512, "sdxl": 1024, "turbo": 512}
    return build_request(
        ImagineOptions(prompt=prompt, **options), limits=GenerationLimits(max_size=2048, max_pixels=2048 * 2048),
        native=512, styles=DEFAULT_STYLES, safety=SafetyPolicy(), models=SPECS,
        native_for=lambda spec: natives[spec.name],
    )


def test_the_default_model_is_not_named_in_the_request() -> None:
    request = build("a fox")
    assert request.model is None and request.scheduler is None
    assert (request.width, request.height, request.steps) == (512, 512, GenerationLimits().default_steps)
    assert build("a fox", model="base").model is None


def test_a_models_defaults_apply_where_the_member_set_nothing() -> None:
    request = build("a fox", model="sdxl")
    assert request.model == "sdxl"
    assert (request.width, request.height, request.steps, request.guidance) == (1024, 768, 25, 5.5)
    assert request.scheduler == "Euler a" and request.negative_prompt == "blurry"
    flagged = build("a fox --model sdxl --steps 9 --cfg 3 --no text --sampler ddim --ar 1:1")
    assert flagged.model == "sdxl"
    assert (flagged.steps, flagged.guidance, flagged.scheduler, flagged.negative_prompt) == (9, 3.0, "DDIM", "text")
    assert flagged.width == flagged.height == 1024  # --ar at the model's native size
    assert build("a fox", model="turbo", sampler="Euler").scheduler == "Euler"
    # The option wins over the flag.
    assert build("a fox --model sdxl", model="turbo").model == "turbo"


def test_an_unknown_model_option_lists_the_models() -> None:
    with pytest.raises(RequestError, match="Models: base, sdxl, turbo"):
        build("a fox", model="dalle")
    with pytest.raises(RequestError, match="must be one of"):
        build("a fox", sampler="warp drive")
