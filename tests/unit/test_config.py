"""Config loading: every key typed and validated; errors name the key (``run_bot.py`` exiting 2: tests/e2e)."""

from __future__ import annotations

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
    ],
)
def test_bad_settings_name_their_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, env={})
    assert caught.value.key == key
    assert key in str(caught.value)
