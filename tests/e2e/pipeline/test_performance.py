"""Every performance switch builds and makes an image with the tiny model, within its stated tolerance.

Tolerances against the default engine at the same seed (pixel values 0-255):

- lossless switches (channels_last, VAE tiling and slicing, CPU offload, compile): max difference <= 2,
  float rounding only;
- step caches (token merging, Pyramid Attention Broadcast), which approximate on purpose: PSNR >= 35 dB.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from generation.engine import DiffusionEngine
from generation.performance import PerformanceOptions
from rules.request import GenerationRequest

LOSSLESS_MAX_DIFF = 2.0
CACHE_MIN_PSNR_DB = 35.0


def request(
    seed: int = 11, *, prompt: str = "a cat with a hat", count: int = 1, size: int = 64, steps: int = 8
) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, seed=seed, steps=steps, guidance=5.0, width=size, height=size, count=count)


def pixels(images: list[Any]) -> np.ndarray:
    return np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def load(model_dir: Path, options: PerformanceOptions) -> DiffusionEngine:
    engine = DiffusionEngine(str(model_dir), device="cpu", dtype="float32", performance=options)
    engine.load()
    return engine


def in_effect(engine: DiffusionEngine, options: PerformanceOptions) -> bool:
    """Whether the switch really changed the loaded pipeline (so a test cannot pass on a no-op)."""
    pipe = engine.pipeline
    if options.channels_last:
        weight = pipe.unet.conv_in.weight
        return bool(weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous())
    if options.vae_tiling:
        return bool(pipe.vae.use_tiling)
    if options.vae_slicing:
        return bool(pipe.vae.use_slicing)
    if options.step_cache == "tomesd":
        return any(type(m).__name__.startswith("ToMe") for m in pipe.unet.modules())
    if options.step_cache == "pab":
        return any(hasattr(m, "_diffusers_hook") for m in pipe.unet.modules())
    return True


def test_unknown_step_cache_is_refused() -> None:
    with pytest.raises(ValueError, match="step_cache"):
        PerformanceOptions(step_cache="magic")


def test_all_off_is_the_default_engine(engine: DiffusionEngine, tiny_model_dir: Path) -> None:
    plain = load(tiny_model_dir, PerformanceOptions())
    assert PerformanceOptions().describe() == "default"
    assert np.array_equal(pixels(plain.run(request())), pixels(engine.run(request())))


@pytest.mark.parametrize(
    ("options", "lossless"),
    [
        (PerformanceOptions(channels_last=True), True),
        (PerformanceOptions(vae_tiling=True), True),
        (PerformanceOptions(vae_slicing=True), True),
        (PerformanceOptions(cpu_offload=True), True),  # ignored on a CPU engine: the same pixels
        (PerformanceOptions(step_cache="tomesd"), False),
        (PerformanceOptions(step_cache="pab"), False),
        (PerformanceOptions(channels_last=True, vae_slicing=True, step_cache="tomesd"), False),
    ],
    ids=lambda value: value.describe() if isinstance(value, PerformanceOptions) else str(value),
)
def test_switch_makes_an_image_within_tolerance(
    engine: DiffusionEngine, tiny_model_dir: Path, options: PerformanceOptions, lossless: bool
) -> None:
    fast = load(tiny_model_dir, options)
    assert in_effect(fast, options)
    got = fast.run(request(count=2))
    assert [image.size for image in got] == [(64, 64), (64, 64)]
    want = pixels(engine.run(request(count=2)))
    if lossless:
        assert float(np.abs(pixels(got) - want).max()) <= LOSSLESS_MAX_DIFF
    else:
        assert psnr(pixels(got), want) >= CACHE_MIN_PSNR_DB


def test_step_cache_never_carries_over_between_images(engine: DiffusionEngine, tiny_model_dir: Path) -> None:
    """Cached attention belongs to one pipeline call: an image is the same after any other image."""
    cached = load(tiny_model_dir, PerformanceOptions(step_cache="pab"))
    first = pixels(cached.run(request(1, prompt="a dog")))
    other = pixels(cached.run(request(2, prompt="the cat and the dog", count=2)))
    again = pixels(cached.run(request(1, prompt="a dog")))
    assert np.array_equal(first, again)
    assert psnr(other, pixels(engine.run(request(2, prompt="the cat and the dog", count=2)))) >= CACHE_MIN_PSNR_DB
    # img2img shares the UNet (and so the cache) but starts part-way down the schedule.
    source = engine.run(request(3))[0]
    edit = GenerationRequest(prompt="a dog", seed=4, steps=8, guidance=5.0, width=64, height=64, kind="img2img",
                             strength=0.5)
    got = pixels(cached.run(edit, init_image=source))
    assert psnr(got, pixels(engine.run(edit, init_image=source))) >= CACHE_MIN_PSNR_DB
    assert np.array_equal(pixels(cached.run(request(1, prompt="a dog"))), first)


def test_vae_tiling_above_the_tile_size(engine: DiffusionEngine, tiny_model_dir: Path) -> None:
    """At twice the VAE's tile the decode runs in tiles; the image has the asked size and stays tiled."""
    tiled = load(tiny_model_dir, PerformanceOptions(vae_tiling=True, vae_slicing=True))
    assert tiled.pipeline.vae.tile_sample_min_size < 128
    got = tiled.run(request(size=128, count=2, steps=3))
    assert [image.size for image in got] == [(128, 128), (128, 128)]
    assert tiled.pipeline.vae.use_tiling
    # Tiles overlap and are blended, so the pixels differ from one whole decode, but not wildly.
    assert psnr(pixels(got), pixels(engine.run(request(size=128, count=2, steps=3)))) >= 15.0


@pytest.mark.skipif(
    not os.environ.get("PANELBOT_COMPILE_TEST"),
    reason="torch.compile of the tiny UNet takes about a minute on a 2-core CPU (Inductor's C++ build); "
    "set PANELBOT_COMPILE_TEST=1 to run it",
)
def test_compiled_unet_matches_the_default(engine: DiffusionEngine, tiny_model_dir: Path) -> None:
    compiled = load(tiny_model_dir, PerformanceOptions(compile_unet=True))
    got = pixels(compiled.run(request()))
    assert float(np.abs(got - pixels(engine.run(request()))).max()) <= LOSSLESS_MAX_DIFF
    # Another batch size reuses or recompiles the graph without changing the images.
    pair = pixels(compiled.run(request(count=2)))
    assert float(np.abs(pair - pixels(engine.run(request(count=2)))).max()) <= LOSSLESS_MAX_DIFF
