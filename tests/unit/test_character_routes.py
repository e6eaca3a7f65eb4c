"""Which route keeps a character consistent, storyboard requests and their validation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.cogs.comic._panels import character_routes, named_characters, with_routes, with_take
from rules.character_routes import (
    DEFAULT_IP_ADAPTER_SCALE,
    choose_route,
    lora_path_of,
    references_of,
)
from rules.request import GenerationLimits, GenerationRequest, RequestError, validate
from storage.comics import CharacterRecord

LIMITS = GenerationLimits()


@dataclass
class Trained:
    name: str
    lora_path: str | None = None
    reference_paths: list[str] = field(default_factory=list)
    ip_adapter_scale: float | None = None


def test_todays_records_have_no_lora_and_no_references() -> None:
    record = CharacterRecord(1, 1, "Mira", "a girl")
    assert lora_path_of(record) is None and references_of(record) == []
    assert choose_route(record, "Mira", ip_adapter_configured=True).route == "text only"
    assert choose_route(record, "Mira", ip_adapter_configured=True, storyboard=True).route == "consistent attention"


def test_the_best_available_route_wins() -> None:
    both = Trained("Mira", lora_path="loras/mira.safetensors", reference_paths=["a.png"])
    assert choose_route(both, "Mira", ip_adapter_configured=True).route == "trained LoRA"
    refs = Trained("Mira", reference_paths=["a.png", "b.png"], ip_adapter_scale=0.8)
    route = choose_route(refs, "Mira", ip_adapter_configured=True)
    assert (route.route, route.references, route.scale) == ("IP-Adapter", ["a.png", "b.png"], 0.8)
    assert choose_route(Trained("Mira", reference_paths=["a.png"]), "Mira", ip_adapter_configured=True).scale == (
        DEFAULT_IP_ADAPTER_SCALE
    )
    assert choose_route(refs, "Mira", ip_adapter_configured=False).route == "text only"
    assert route.label() == "Mira — IP-Adapter"


def test_routes_follow_the_names_in_the_prompt_and_land_on_the_request() -> None:
    characters = {"Mira": Trained("Mira", reference_paths=["m.png"]), "Otto": Trained("Otto"), "Pip": Trained("Pip")}
    assert named_characters("Otto meets mira at dawn", characters) == ["Otto", "Mira"]
    routes = character_routes("Otto meets mira", characters, ip_adapter_configured=True)
    request = with_routes(GenerationRequest(prompt="x"), routes)
    assert request.extra["characters"] == [["Otto", "text only"], ["Mira", "IP-Adapter"]]
    assert request.ip_adapter_images == ["m.png"] and request.ip_adapter_scale == DEFAULT_IP_ADAPTER_SCALE
    assert with_routes(GenerationRequest(prompt="x"), []) == GenerationRequest(prompt="x")


def storyboard(**changes: object) -> GenerationRequest:
    base = GenerationRequest(prompt="a", panel_prompts=["a", "b", "c"], count=3, shared_attention=0.5, steps=3)
    return base.replace(**changes)


def test_storyboards_validate_their_panels() -> None:
    assert validate(storyboard(panel_prompts=[" a ", "b", "c"]), LIMITS).panel_prompts == ["a", "b", "c"]
    assert validate(storyboard(panel_prompts=list("abcdef"), count=6), LIMITS).count == 6  # past max_count
    for changes, field_name in [
        ({"panel_prompts": ["a"], "count": 1}, "panels"),
        ({"panel_prompts": list("abcdefg"), "count": 7}, "panels"),
        ({"count": 2}, "count"),
        ({"panel_prompts": ["a", " ", "c"]}, "panel2"),
        ({"panel_prompts": ["a", "b" * 2000, "c"]}, "panel2"),
        ({"shared_attention": 1.5}, "shared_attention"),
        ({"kind": "img2img", "init_image": "x.png", "strength": 0.5}, "kind"),
    ]:
        with pytest.raises(RequestError) as caught:
            validate(storyboard(**changes), LIMITS)
        assert caught.value.field == field_name, changes


def test_reference_requests_validate_and_key_their_batches() -> None:
    plain = GenerationRequest(prompt="a", steps=3)
    refs = plain.replace(ip_adapter_images=["a.png"], ip_adapter_scale=0.6)
    assert validate(refs, LIMITS) == refs
    with pytest.raises(RequestError):
        validate(refs.replace(ip_adapter_images=[f"{i}.png" for i in range(5)]), LIMITS)
    with pytest.raises(RequestError):
        validate(refs.replace(ip_adapter_scale=3.0), LIMITS)
    assert refs.batch_key() != plain.batch_key() and refs.batch_key() != refs.replace(ip_adapter_scale=1.0).batch_key()
    assert plain.replace(ip_adapter_scale=0.9).batch_key() == plain.batch_key()  # no references: no adapter


def test_a_storyboard_is_solo_and_each_image_has_its_own_request() -> None:
    board = storyboard(seed=10)
    assert board.solo and not GenerationRequest(prompt="a").solo
    assert board.image_prompts() == ["a", "b", "c"]
    assert GenerationRequest(prompt="z", count=2).image_prompts() == ["z"] * 2
    second = board.image_request(1)
    assert (second.prompt, second.seed, second.count) == ("b", 11, 1)
    assert (second.panel_prompts, second.shared_attention) == ([], 0.0)
    assert GenerationRequest.from_json(board.to_json()) == board
    redrawn = with_take(second.replace(extra={"board_index": 1}), comic_id=1, comic_seed=2, panel_id=3, take=1)
    assert "board_index" not in redrawn.extra
