"""Shared fixtures: the tiny offline model, a loaded engine, temporary storage.

Tests never download anything: ``HF_HUB_OFFLINE`` is set before diffusers is imported, and the
tiny Stable Diffusion pipeline is built in-process once per session. Torch runs on one thread so
pixel comparisons are stable.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Stable Diffusion folder, built once per test session."""
    import torch

    from generation.tiny_model import save_tiny_pipeline

    torch.set_num_threads(1)
    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_sdxl_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SDXL-shaped folder (two text encoders), seeded apart from the SD one, built once."""
    import torch

    from generation.tiny_model import save_tiny_pipeline

    torch.set_num_threads(1)
    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sdxl", seed=1, sdxl=True)


@pytest.fixture(scope="session")
def broken_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A copy of the tiny model folder whose UNet weights are garbage: it looks like a model but can't load."""
    import shutil

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("models") / "broken"))
    for weights in (folder / "unet").glob("*.safetensors"):
        weights.write_bytes(b"not safetensors at all")
    return folder


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """The tiny model loaded through the same path as any local diffusers folder."""
    from generation.engine import DiffusionEngine

    loaded = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32")
    loaded.load()
    return loaded


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[object]:
    """Storage on a temporary SQLite file and image folder."""
    from storage import Storage

    opened = await Storage.open(tmp_path / "bot.sqlite3", tmp_path / "images")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def repo_root() -> Iterator[Path]:
    """The repository's root folder."""
    yield REPO_ROOT


@pytest.fixture
async def emulator() -> AsyncIterator[object]:
    """A Discord emulator on 127.0.0.1; the test fails if the bot sent anything Discord would refuse."""
    from playground import DiscordEmulator

    emu = DiscordEmulator()
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
    assert emu.problems == [], "the emulator saw requests Discord would refuse:\n" + "\n".join(emu.problems)


@pytest.fixture
async def running_bot(emulator, engine, tmp_path: Path) -> AsyncIterator[object]:  # type: ignore[no-untyped-def]
    """The real bot connected to the emulator with the tiny model and a temporary database."""
    from tests.harness import settings_for, start_bot

    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path))
    try:
        yield bot
    finally:
        await bot.stop()


E2E_DIR = REPO_ROOT / "tests" / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under ``tests/e2e`` run real components end to end, so they are marked ``e2e``: the bot against
    the local Discord, and (in ``tests/e2e/pipeline``) the diffusers pipeline and GPU queue with the tiny model."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)
