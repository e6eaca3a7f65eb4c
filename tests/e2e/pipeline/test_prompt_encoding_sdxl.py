"""compel's SDXL path (two text encoders, pooled embeddings) on a tiny SDXL-shaped pipeline built here.

The pipeline is the real ``StableDiffusionXLPipeline`` with random weights: a UNet with SDXL's
``text_time`` conditioning, ``CLIPTextModel`` and ``CLIPTextModelWithProjection`` over the tiny
tokenizer, saved as a diffusers folder and loaded through :class:`DiffusionEngine` like any model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.engine import DiffusionEngine
from generation.tiny_model import TOKENIZER_MAX_LENGTH, build_tokenizer
from rules.request import GenerationRequest

BASE = GenerationRequest(prompt="a red cat on a hat", seed=5, steps=2, guidance=5.0, width=64, height=64)
HEAD = ", ".join(["a castle on a hill"] * 30)


def build_tiny_sdxl() -> object:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64, norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), latent_channels=4, norm_num_groups=32,
        sample_size=64,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp) / "one")
        tokenizer_2 = build_tokenizer(Path(tmp) / "two")
    config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=3,
        vocab_size=len(tokenizer), max_position_embeddings=TOKENIZER_MAX_LENGTH, projection_dim=32,
    )
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(config), text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         steps_offset=1, timestep_spacing="leading"),
    )


@pytest.fixture(scope="module")
def sdxl_engine(tmp_path_factory: pytest.TempPathFactory) -> DiffusionEngine:
    folder = tmp_path_factory.mktemp("models") / "tiny-sdxl"
    build_tiny_sdxl().save_pretrained(folder, safe_serialization=True)  # type: ignore[attr-defined]
    engine = DiffusionEngine(str(folder), device="cpu", dtype="float32")
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
