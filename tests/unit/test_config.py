"""Config loading: every key typed and validated; errors are one line naming the key, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
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


def _run_bot(config: Path, env_token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    if env_token is not None:
        env["DISCORD_TOKEN"] = env_token
    return subprocess.run(
        [sys.executable, str(REPO / "run_bot.py"), "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[discord]\ntoken = ""\n', "discord.token"),
        ('[discord]\ntoken = "t"\nshard = 1\n', "discord.shard"),
        ('[discord]\ntoken = "t"\n[generation]\nmax_pixels = -1\n', "generation.max_pixels"),
        ('[discord]\ntoken = "t"\n[model]\ndtype = "fp8"\n', "model.dtype"),
    ],
)
def test_run_bot_exits_2_with_one_line_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    result = _run_bot(config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0]
    assert "Traceback" not in result.stderr


def test_run_bot_reports_a_missing_config_file(tmp_path: Path) -> None:
    result = _run_bot(tmp_path / "nope.toml", env_token="t")
    assert result.returncode == 2
    assert "nope.toml" in result.stderr and "Traceback" not in result.stderr
