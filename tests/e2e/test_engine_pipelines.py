"""The engine's four pipelines share one set of weights; inpainting, safety flags and a dedicated upscaler."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from playground import DiscordEmulator
from rules.request import FLAGGED_INFO_KEY, MASK_INFO_KEY, GenerationRequest
from tests.harness import image_posts as results
from tests.harness import settings_for, start_bot

log = logging.getLogger(__name__)


def unique_parameter_bytes(pipelines: list[Any]) -> tuple[int, int]:
    """(parameters, bytes) of every distinct tensor storage the pipelines' modules hold."""
    seen: set[int] = set()
    count = size = 0
    for pipe in pipelines:
        for component in pipe.components.values():
            if not isinstance(component, torch.nn.Module):
                continue
            for tensor in [*component.parameters(), *component.buffers()]:
                storage = tensor.untyped_storage()
                if storage.data_ptr() in seen:
                    continue
                seen.add(storage.data_ptr())
                count += tensor.numel()
                size += storage.nbytes()
    return count, size


def test_txt2img_img2img_inpaint_and_upscale_share_one_set_of_weights(engine: Any) -> None:
    pipelines = engine.pipelines()
    assert set(pipelines) == {"txt2img", "img2img", "inpaint", "upscale"}
    assert type(pipelines["inpaint"]).__name__ == "StableDiffusionInpaintPipeline"
    alone = unique_parameter_bytes([pipelines["txt2img"]])
    together = unique_parameter_bytes(list(pipelines.values()))
    log.info("txt2img alone: %d parameters, %d bytes; all four: %d parameters, %d bytes", *alone, *together)
    assert together == alone
    assert pipelines["inpaint"].unet is pipelines["txt2img"].unet is pipelines["img2img"].unet


def test_inpaint_redraws_only_the_white_of_the_mask(engine: Any) -> None:
    source = Image.new("RGB", (64, 64), (30, 200, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    source.info[MASK_INFO_KEY] = mask
    outputs = []
    for seed in (1, 2):
        request = GenerationRequest(
            prompt="a hole", seed=seed, steps=4, guidance=5.0, width=64, height=64, kind="inpaint",
            init_image="x.png", mask_image="m.png", strength=1.0,
        )
        [image] = engine.run(request, init_image=source)
        outputs.append(np.asarray(image, dtype=np.int16))
    centre = np.abs(outputs[0][20:44, 20:44] - outputs[1][20:44, 20:44]).mean()
    border = np.abs(outputs[0][:6] - outputs[1][:6]).mean()
    assert centre > 5 * border


def test_a_configured_safety_checker_flags_images_in_the_worker(engine: Any) -> None:
    request = GenerationRequest(prompt="a forbidden fruit", seed=1, steps=2, width=64, height=64, count=2)
    try:
        engine.configure(safety_checker="tests.safety_checkers:flag_keyword")
        flagged = engine.run(request)
        clean = engine.run(request.replace(prompt="an apple"))
        assert [image.info[FLAGGED_INFO_KEY] for image in flagged] == [True, True]
        assert [image.info[FLAGGED_INFO_KEY] for image in clean] == [False, False]
        engine.configure(safety_checker="off")
        assert not engine.run(request)[0].info[FLAGGED_INFO_KEY]
    finally:
        engine.configure()
    assert engine.safety_checker is None  # "auto": the tiny model ships no checker of its own


@pytest.fixture(scope="module")
def tiny_upscaler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random StableDiffusionUpscalePipeline (its VAE doubles each side), saved as a folder."""
    from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline, UNet2DConditionModel

    from generation.tiny_model import build_tiny_pipeline

    base = build_tiny_pipeline()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=64, in_channels=7, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=32, num_class_embeds=1000,
    )
    pipe = StableDiffusionUpscalePipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=unet,
        low_res_scheduler=DDPMScheduler(), scheduler=DDIMScheduler(), max_noise_level=350,
    )
    folder = tmp_path_factory.mktemp("models") / "tiny-upscaler"
    pipe.save_pretrained(folder)
    return folder


async def test_an_operator_configured_upscaler_serves_the_upscale_button(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path, tiny_upscaler: Path
) -> None:
    settings = settings_for(emulator, tmp_path, model={"upscaler": str(tiny_upscaler)})
    bot = await start_bot(emulator, engine, settings)
    try:
        uma = emulator.add_member("uma")

        await emulator.send_slash_command("imagine", {"prompt": "a hill", "count": 1, "seed": 9}, user_id=uma)
        single = await emulator.wait_for(lambda: results(emulator)[0] if results(emulator) else None, 60)
        await emulator.wait_for(lambda: "🔍" in single.reactions, 10)
        await emulator.add_reaction(single.id, "🔍", user_id=uma)
        upscale = await emulator.wait_for(lambda: results(emulator)[1] if len(results(emulator)) > 1 else None, 60)
        assert upscale.attachments[0].image().size == (128, 128)
        assert type(engine.pipelines()["upscale"]).__name__ == "StableDiffusionUpscalePipeline"
    finally:
        await bot.stop()
        engine.configure()
    assert type(engine.pipelines()["upscale"]).__name__ != "StableDiffusionUpscalePipeline"
