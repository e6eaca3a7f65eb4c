"""compel's SDXL path (two text encoders, pooled embeddings) on the tiny SDXL-shaped model.

The pipeline is the real ``StableDiffusionXLPipeline`` with random weights
(:func:`generation.tiny_model.build_tiny_sdxl_pipeline`), loaded through :class:`DiffusionEngine`
like any model folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from generation.engine import DiffusionEngine
from rules.request import GenerationRequest

BASE = GenerationRequest(prompt="a red cat on a hat", seed=5, steps=2, guidance=5.0, width=64, height=64)
HEAD = ", ".join(["a castle on a hill"] * 30)


@pytest.fixture(scope="module")
def sdxl_engine(tiny_sdxl_model_dir: Path) -> DiffusionEngine:
    engine = DiffusionEngine(str(tiny_sdxl_model_dir), device="cpu", dtype="float32")
    engine.load()
    return engine


def test_family_is_sdxl(sdxl_engine: DiffusionEngine) -> None:
    assert sdxl_engine.family == "sdxl"
    assert "XL" in type(sdxl_engine.pipeline).__name__


def test_a_plain_prompt_encodes_as_the_pipeline_does_with_both_encoders(sdxl_engine: DiffusionEngine) -> None:
    pipe = sdxl_engine.pipeline
    own = pipe.encode_prompt(BASE.prompt, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True,
                             negative_prompt="")
    ours = sdxl_engine.encode_prompts([BASE.prompt], [""])
    assert ours["prompt_embeds"].shape == own[0].shape == (1, 77, 64)
    torch.testing.assert_close(ours["prompt_embeds"], own[0])
    torch.testing.assert_close(ours["pooled_prompt_embeds"], own[2])
    # The bot always passed "" as the negative prompt: the empty text's embedding (not SDXL's zeros,
    # which the pipeline uses only when no negative prompt is passed at all).
    torch.testing.assert_close(ours["negative_prompt_embeds"], own[1])
    torch.testing.assert_close(ours["negative_pooled_prompt_embeds"], own[3])
    from_strings = pipe(
        prompt=BASE.prompt, negative_prompt="", num_inference_steps=BASE.steps, guidance_scale=BASE.guidance,
        width=64, height=64,
        generator=torch.Generator().manual_seed(BASE.seed), output_type="np",
    ).images[0]
    ours_image = np.asarray(sdxl_engine.run(BASE)[0], dtype=np.int16)
    assert np.abs(ours_image - np.round(from_strings * 255).astype(np.int16)).max() <= 1


def test_weights_scale_both_encoders_halves_at_the_word(sdxl_engine: DiffusionEngine) -> None:
    plain = sdxl_engine.encode_prompts(["a red cat"], [""])["prompt_embeds"][0]
    weighted = sdxl_engine.encode_prompts(["a (red:1.5) cat"], [""])["prompt_embeds"][0]
    changed = [i for i in range(plain.shape[0]) if not torch.equal(plain[i], weighted[i])]
    tokenizer = sdxl_engine.pipeline.tokenizer
    start = 1 + len(tokenizer("a", add_special_tokens=False).input_ids)
    assert changed == list(range(start, start + len(tokenizer("red", add_special_tokens=False).input_ids)))
    # Both halves (the two encoders' 32 dims each) moved.
    for i in changed:
        assert not torch.equal(plain[i, :32], weighted[i, :32]) and not torch.equal(plain[i, 32:], weighted[i, 32:])


def test_a_long_prompt_is_encoded_in_full_on_both_encoders(sdxl_engine: DiffusionEngine) -> None:
    one = sdxl_engine.encode_prompts([HEAD + ", a red cat"], ["blurry"])
    other = sdxl_engine.encode_prompts([HEAD + ", a blue dog"], ["blurry"])
    assert one["prompt_embeds"].shape[1] >= 3 * 77
    assert one["negative_prompt_embeds"].shape == one["prompt_embeds"].shape
    assert not torch.equal(one["prompt_embeds"], other["prompt_embeds"])
    torch.testing.assert_close(one["prompt_embeds"][:, :77], other["prompt_embeds"][:, :77])
    image = sdxl_engine.run(BASE.replace(prompt=HEAD + ", a red cat", negative_prompt="blurry"))[0]
    assert image.size == (64, 64)
