"""Previews of a running job: the free latent projection, and a configured tiny autoencoder."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image

from generation.engine import DiffusionEngine
from generation.previews import LatentProjection, TinyAutoencoderPreview
from rules.request import GenerationRequest


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_latent_projection_makes_a_small_png_of_the_first_image() -> None:
    latents = torch.zeros(2, 4, 8, 16)
    latents[0, 0] = 1.0  # channel 0 is reddish in SD's latent space
    image = decode(LatentProjection().render_png(latents, max_side=64))
    assert image.size == (64, 32)
    red, _green, blue = image.getpixel((32, 16))
    assert red > blue and red > 128


def test_a_configured_tiny_autoencoder_decodes_previews(tiny_model_dir: Path, tmp_path: Path) -> None:
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1), latent_channels=4, upsampling_scaling_factor=2,
    ).save_pretrained(tmp_path / "taesd-tiny")
    engine = DiffusionEngine(
        str(tiny_model_dir), device="cpu", dtype="float32", preview_decoder=str(tmp_path / "taesd-tiny")
    )
    engine.load()
    assert isinstance(engine.previewer, TinyAutoencoderPreview)
    previews: list[bytes] = []
    request = GenerationRequest(prompt="a boat", seed=1, steps=2, width=64, height=64)
    engine.run(request, on_step=lambda step, total, latents: previews.append(engine.preview_png(latents)))
    assert len(previews) == 2
    assert decode(previews[0]).size == (160, 160)  # 32x32 latents, decoded 2x, scaled to 160
