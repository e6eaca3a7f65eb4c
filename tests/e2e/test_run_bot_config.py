"""``run_bot.py`` with a bad config: exit status 2 and one line on stderr naming the key, no traceback.

These start the bot's entry point as its own process, so they are end-to-end tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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
        ('[discord]\ntoken = "t"\n[generation]\nmax_count = 9\nmax_steps = "x"\n', "generation.max_steps"),
        ('[discord]\ntoken = "t"\n[extra]\nkey = 1\n', "extra"),
        ('[discord]\ntoken = "t"\n[styles.noir]\nsteps = 500\n', "styles.noir.steps"),
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
