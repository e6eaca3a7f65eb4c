"""Consistent self-attention on the tiny model: a storyboard's panels are coupled, reproducible, and
independent again when it is off; the UNet's processors are put back after every call."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from generation.consistent_attention import consistent_attention, coupled_layers
from generation.errors import JobCancelled
from rules.request import GenerationRequest

PANELS = ["a red cat on a roof", "a red cat in the rain", "a red cat with a dog"]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def board(prompts: list[str], *, rate: float = 0.5, seed: int = 11) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompts[0], panel_prompts=list(prompts), count=len(prompts), shared_attention=rate,
        seed=seed, steps=3, guidance=5.0, width=64, height=64,
    )


def differ(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


def test_each_panel_is_drawn_from_its_own_prompt_and_off_means_independent(engine) -> None:  # type: ignore[no-untyped-def]
    off = engine.run(board(PANELS, rate=0.0))
    assert [image.size for image in off] == [(64, 64)] * 3
    for index, prompt in enumerate(PANELS):
        alone = engine.run(GenerationRequest(prompt=prompt, seed=11 + index, steps=3, guidance=5.0,
                                             width=64, height=64))[0]
        assert np.abs(pixels(off[index]) - pixels(alone)).max() <= 1
    changed = engine.run(board([PANELS[0], "a blue dog under a tree", PANELS[2]], rate=0.0))
    assert np.abs(pixels(changed[0]) - pixels(off[0])).max() <= 1
    assert np.abs(pixels(changed[2]) - pixels(off[2])).max() <= 1


def test_shared_attention_couples_the_panels_and_is_reproducible(engine) -> None:  # type: ignore[no-untyped-def]
    coupled = engine.run(board(PANELS))
    again = engine.run(board(PANELS))
    for first, second in zip(coupled, again, strict=True):
        assert np.array_equal(pixels(first), pixels(second))
    # The tiny model's random weights move pixels little; off, the difference would be exactly 0.
    independent = engine.run(board(PANELS, rate=0.0))
    assert all(differ(c, i) > 0.05 for c, i in zip(coupled, independent, strict=True))
    # Changing panel 2's prompt changes panels 1 and 3 too: they read its tokens.
    changed = engine.run(board([PANELS[0], "a blue dog under a tree", PANELS[2]]))
    assert differ(changed[0], coupled[0]) > 0.05
    assert differ(changed[2], coupled[2]) > 0.05


def test_processors_are_restored_after_a_call_and_after_a_cancel(engine) -> None:  # type: ignore[no-untyped-def]
    unet = engine.pipeline.unet
    before = {name: type(processor) for name, processor in unet.attn_processors.items()}
    plain = GenerationRequest(prompt="a red cat", seed=3, steps=3, guidance=5.0, width=64, height=64)
    reference = engine.run(plain)[0]
    engine.run(board(PANELS))
    with pytest.raises(JobCancelled):
        engine.run(board(PANELS), should_stop=lambda: JobCancelled("stop"))
    assert {name: type(processor) for name, processor in unet.attn_processors.items()} == before
    assert np.array_equal(pixels(engine.run(plain)[0]), pixels(reference))


def test_only_the_up_blocks_self_attention_is_coupled(engine) -> None:  # type: ignore[no-untyped-def]
    unet = engine.pipeline.unet
    names = coupled_layers(unet)
    assert names and all(name.startswith("up_blocks") and ".attn1." in name for name in names)
    with consistent_attention(unet, images=3, rate=0.5, seed=1) as count:
        assert count == len(names)
        swapped = {name for name, processor in unet.attn_processors.items()
                   if type(processor).__name__ == "ConsistentSelfAttention"}
        assert swapped == set(names)
