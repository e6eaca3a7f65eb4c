"""Config loading: every key typed and validated; errors name the key (``run_bot.py`` exiting 2: tests/e2e)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings, parse_settings

REPO = Path(__file__).resolve().parents[2]


def test_example_config_loads_with_token_from_environment() -> None:
    settings = load_settings(REPO / "config.example.toml", env={"DISCORD_TOKEN": "env-token"})
    assert settings.discord.token == "env-token"
    assert settings.discord.api_base == "https://discord.com/api/v10"
    assert settings.discord.gateway_url.startswith("wss://")
    assert settings.model.device == "auto" and settings.model.dtype == "auto"
    assert settings.generation.max_count == 4
    assert "env-token" not in repr(settings)


def test_environment_token_overrides_the_file() -> None:
    settings = parse_settings({"discord": {"token": "file-token"}}, env={"DISCORD_TOKEN": "env-token"})
    assert settings.discord.token == "env-token"
    assert parse_settings({"discord": {"token": "file-token"}}, env={}).discord.token == "file-token"


def test_guild_ids_are_a_list_of_ints() -> None:
    settings = parse_settings({"discord": {"token": "t", "guild_ids": [1, 2]}}, env={})
    assert settings.discord.guild_ids == (1, 2)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({}, "discord.token"),
        ({"discord": {"token": "t", "colour": "blue"}}, "discord.colour"),
        ({"discord": {"token": "t"}, "modle": {}}, "modle"),
        ({"discord": {"token": "t", "guild_ids": "123"}}, "discord.guild_ids"),
        ({"discord": {"token": "t", "api_base": "discord.com"}}, "discord.api_base"),
        ({"discord": {"token": "t", "gateway_url": "https://x"}}, "discord.gateway_url"),
        ({"discord": {"token": "t"}, "model": {"dtype": "float8"}}, "model.dtype"),
        ({"discord": {"token": "t"}, "model": {"device": "gpu"}}, "model.device"),
        ({"discord": {"token": "t"}, "generation": {"max_count": 9}}, "generation.max_count"),
        ({"discord": {"token": "t"}, "generation": {"default_steps": "many"}}, "generation.default_steps"),
        ({"discord": {"token": "t"}, "storage": {"database": 3}}, "storage.database"),
        ({"discord": {"token": "t"}, "queue": {"job_timeout_s": 0}}, "queue.job_timeout_s"),
        # unknown keys and sections, sections that are not tables
        ({"discord": {"token": "t"}, "queue": {"max_jobs": 3}}, "queue.max_jobs"),
        ({"discord": {"token": "t"}, "generation": {"steps": 3}}, "generation.steps"),
        ({"discord": {"token": "t"}, "safety": {"words": []}}, "safety.words"),
        ({"discord": "t"}, "discord"),
        ({"discord": {"token": "t"}, "queue": [1]}, "queue"),
        # types: no strings for numbers, no booleans for numbers, no numbers for strings
        ({"discord": {"token": "t", "progress_interval_s": "2"}}, "discord.progress_interval_s"),
        ({"discord": {"token": "t"}, "queue": {"max_batch_images": True}}, "queue.max_batch_images"),
        ({"discord": {"token": "t"}, "model": {"id": 5}}, "model.id"),
        ({"discord": {"token": "t"}, "storage": {"images_dir": ""}}, "storage.images_dir"),
        # one item of a list
        ({"discord": {"token": "t", "guild_ids": [1, 0]}}, "discord.guild_ids[1]"),
        ({"discord": {"token": "t"}, "model": {"devices": ["cuda:0", "gpu"]}}, "model.devices[1]"),
        ({"discord": {"token": "t"}, "model": {"devices": ["cuda:0", "cuda:0"]}}, "model.devices"),
        # ranges, and values checked against another value of the section
        ({"discord": {"token": "t", "progress_interval_s": 0.5}}, "discord.progress_interval_s"),
        ({"discord": {"token": "t"}, "generation": {"max_steps": 0}}, "generation.max_steps"),
        ({"discord": {"token": "t"}, "generation": {"default_steps": 60, "max_steps": 50}}, "generation.default_steps"),
        ({"discord": {"token": "t"}, "generation": {"min_size": 60}}, "generation.min_size"),
        ({"discord": {"token": "t"}, "generation": {"max_upscaled_pixels": 1000}}, "generation.max_upscaled_pixels"),
        ({"discord": {"token": "t"}, "queue": {"max_pending_total": 5}}, "queue.max_pending_total"),
        ({"discord": {"token": "t"}, "queue": {"preview_interval_s": 0.5}}, "queue.preview_interval_s"),
        ({"discord": {"token": "t"}, "queue": {"max_batch_images": 17}}, "queue.max_batch_images"),
        ({"discord": {"token": "t"}, "comic": {"max_panels": 0}}, "comic.max_panels"),
        ({"discord": {"token": "t"}, "comic": {"continue_strength": 1.5}}, "comic.continue_strength"),
        ({"discord": {"token": "t"}, "safety": {"blocked_words": ["ok", "!!"]}}, "safety.blocked_words"),
        ({"discord": {"token": "t"}, "safety": {"age_restricted_action": "maybe"}}, "safety.age_restricted_action"),
        ({"discord": {"token": "t"}, "styles": {"noir": {"guidance": 31.0}}}, "styles.noir.guidance"),
    ],
)
def test_bad_settings_name_their_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, env={})
    assert caught.value.key == key
    assert key in str(caught.value)


def test_an_error_is_one_line_saying_what_is_wrong() -> None:
    cases = {
        "generation.max_count": ({"generation": {"max_count": 9}}, "less than or equal to 4, not 9"),
        "generation.default_steps": ({"generation": {"default_steps": "many"}}, "valid integer, not 'many'"),
        "queue.max_jobs": ({"queue": {"max_jobs": 3}}, "unknown setting"),
        "modle": ({"modle": {}}, "unknown section (known: discord, model,"),
        "generation.variation_subtle_strength": (
            {"generation": {"variation_subtle_strength": 0.9}},
            "must not be above variation_strong_strength (0.65)",
        ),
        "safety.nsfw_action": ({"safety": {"nsfw_action": "delete"}}, "must be one of withhold, spoiler, not 'delete'"),
    }
    for key, (raw, wrong) in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse_settings({"discord": {"token": "t"}, **raw}, env={})
        text = str(caught.value)
        assert text.startswith(f"config error: {key}: ") and wrong in text, text
        assert "\n" not in text and "pydantic" not in text


def test_settings_are_frozen_and_typed() -> None:
    settings = parse_settings(
        {
            "discord": {"token": "t", "guild_ids": [7]},
            "model": {"devices": ["cuda:0", "cuda:1"]},
            "storage": {"database": "db.sqlite3"},
            "generation": {"default_guidance": 5},
        },
        env={},
    )
    assert settings.model.all_devices() == ("cuda:0", "cuda:1")
    assert settings.storage.database == Path("db.sqlite3")
    assert settings.generation.default_guidance == 5.0 and isinstance(settings.generation.default_guidance, float)
    assert settings.discord.guild_ids == (7,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.queue.max_batch_images = 8  # type: ignore[misc]
    # The sections stay dataclasses: the queue is built from asdict(settings.queue), and a
    # replaced section is validated again.
    assert dataclasses.asdict(settings.queue)["max_batch_images"] == 4
    with pytest.raises(ValueError, match="max_panels"):
        dataclasses.replace(settings.comic, max_panels=0)


def test_the_token_stays_out_of_repr_and_str() -> None:
    settings = parse_settings({"discord": {"token": "file-secret"}}, env={"DISCORD_TOKEN": "env-secret"})
    for text in (repr(settings), str(settings), repr(settings.discord), str(settings.discord)):
        assert "secret" not in text



def test_performance_switches_are_a_section_with_the_engine_options_fields() -> None:
    from generation.performance import PerformanceOptions

    settings = parse_settings({"discord": {"token": "t"}, "performance": {"vae_slicing": True, "step_cache": "pab"}})
    options = PerformanceOptions(**dataclasses.asdict(settings.performance))
    assert options.vae_slicing and options.step_cache == "pab" and not options.compile_unet
    with pytest.raises(ConfigError) as caught:
        parse_settings({"discord": {"token": "t"}, "performance": {"step_cache": "deepcache"}}, env={})
    assert caught.value.key == "performance.step_cache"
