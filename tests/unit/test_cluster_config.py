"""``[cluster]``: defaults, accepted values, and one-line errors naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.config import ClusterSettings, ConfigError, load_settings, parse_section


def cluster_settings(raw: dict[str, object]) -> ClusterSettings:
    """The ``[cluster]`` section of parsed TOML alone, as the bot's config validates it."""
    settings: ClusterSettings = parse_section(raw, "cluster")
    return settings


def test_absent_means_the_local_backend() -> None:
    settings = cluster_settings({})
    assert settings.backend == "local" and settings.workers == "auto" and settings.num_gpus == 1.0


def test_a_ray_cluster_with_cpu_workers() -> None:
    settings = cluster_settings(
        {"cluster": {"backend": "ray", "address": "ray://head:10001", "workers": 2, "num_gpus": 0, "memory_gb": 1.5}}
    )
    assert settings.address == "ray://head:10001" and settings.workers == 2
    assert settings.memory_bytes == int(1.5 * 1024**3)
    for address in ("auto", "", "10.0.0.7:6379"):
        assert cluster_settings({"cluster": {"address": address}}).address == address


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"backend": "slurm"}, "cluster.backend", "'local' or 'ray'"),
        ({"workers": 0}, "cluster.workers", "between 1 and 1024"),
        ({"workers": True}, "cluster.workers", 'must be a whole number or "auto"'),
        ({"num_gpus": -1}, "cluster.num_gpus", "greater than or equal to 0"),
        ({"num_gpus": "1"}, "cluster.num_gpus", "valid number"),
        ({"address": "http://head"}, "cluster.address", "ray://host:port"),
        ({"colour": "red"}, "cluster.colour", "unknown setting (known: backend, address"),
        ({"backend": "ray", "num_gpus": 0}, "cluster", 'workers = "auto" counts GPUs'),
        ({"max_worker_losses": 0}, "cluster.max_worker_losses", "greater than or equal to 1"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(table: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cluster_settings({"cluster": table})
    assert caught.value.key == key and words in str(caught.value) and "\n" not in str(caught.value)


def test_settings_are_frozen() -> None:
    settings = ClusterSettings(backend="ray", workers=2, num_gpus=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.workers = 3  # type: ignore[misc]


def test_the_file_loads_with_its_cluster_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[discord]\ntoken = "a.b.c"\n\n[cluster]\nbackend = "ray"\naddress = "auto"\n')
    settings = load_settings(path, env={})
    cluster = settings.cluster
    assert settings.discord.token == "a.b.c" and cluster.backend == "ray" and cluster.address == "auto"
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "missing.toml", env={})
