"""Several models on one worker with real tiny pipelines: an SD one and an SDXL-shaped one, a broken one, every sampler.

Each request names its model; the worker loads it on its own thread, keeps up to
``max_loaded`` loaded and unloads the one used longest ago. A model that fails to load fails
its job only, with a reason, and the model that was serving goes on serving.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from generation.engine import DiffusionEngine
from generation.errors import ModelLoadError
from generation.models import detect_family, read_text2image
from generation.queue import JobQueue, QueuedJob
from rules.models import ModelSpec
from rules.request import SCHEDULERS, GenerationRequest

REQUEST = GenerationRequest(prompt="a lighthouse at dusk", seed=11, steps=3, guidance=5.0, width=64, height=64)


def specs(sd: Path, sdxl: Path, broken: Path) -> list[ModelSpec]:
    return [ModelSpec("tiny-sd", str(sd)), ModelSpec("tiny-xl", str(sdxl), display_name="Tiny XL"),
            ModelSpec("broken", str(broken))]


@pytest.fixture(scope="module")
def models_engine(tiny_model_dir: Path, tiny_sdxl_model_dir: Path, broken_model_dir: Path) -> DiffusionEngine:
    """One worker's engine with three models configured, one loaded at a time."""
    engine = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32",
                             models=specs(tiny_model_dir, tiny_sdxl_model_dir, broken_model_dir))
    engine.load()
    return engine


def pixels(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_each_request_runs_on_the_model_it_names(models_engine: DiffusionEngine) -> None:
    sd = models_engine.run(REQUEST)[0]
    assert models_engine.loaded_models == ("tiny-sd",)
    xl = models_engine.run(REQUEST.replace(model="tiny-xl"))[0]
    assert models_engine.loaded_models == ("tiny-xl",)  # max_loaded 1: the SD model was unloaded first
    assert type(models_engine.pipeline).__name__ == "StableDiffusionXLPipeline"
    assert models_engine.active.family == "SDXL"
    assert sd.size == xl.size == (64, 64)
    assert np.abs(pixels(sd) - pixels(xl)).mean() > 5  # different weights draw different pixels
    # Back and forth: each model draws exactly what it drew before.
    assert np.array_equal(pixels(models_engine.run(REQUEST)[0]), pixels(sd))
    assert np.array_equal(pixels(models_engine.run(REQUEST.replace(model="tiny-xl"))[0]), pixels(xl))
    # The default model's name works like naming none.
    assert np.array_equal(pixels(models_engine.run(REQUEST.replace(model="tiny-sd"))[0]), pixels(sd))


def test_sdxl_img2img_and_inpaint_share_its_weights(models_engine: DiffusionEngine) -> None:
    from PIL import Image

    source = Image.new("RGB", (64, 64), (200, 120, 40))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    source.info["panelbot.mask"] = mask
    xl = REQUEST.replace(model="tiny-xl", init_image="x", strength=0.6)
    varied = models_engine.run(xl.replace(kind="img2img"), init_image=source)[0]
    painted = models_engine.run(xl.replace(kind="inpaint", mask_image="m"), init_image=source)[0]
    assert varied.size == painted.size == (64, 64)
    pipes = [models_engine.pipeline, models_engine._image2image, models_engine._inpaint]
    assert {type(p).__name__ for p in pipes} == {
        "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"
    }
    assert pipes[1].unet is pipes[0].unet and pipes[2].text_encoder_2 is pipes[0].text_encoder_2


def test_a_model_that_fails_to_load_leaves_the_loaded_one_serving(models_engine: DiffusionEngine) -> None:
    before = models_engine.run(REQUEST)[0]
    with pytest.raises(ModelLoadError) as caught:
        models_engine.run(REQUEST.replace(model="broken"))
    assert caught.value.model == "broken" and "damaged" in caught.value.reason
    assert "models.broken.id" in str(caught.value)
    assert models_engine.loaded_models == ("tiny-sd",)  # not unloaded for a model that could not be read
    assert np.array_equal(pixels(models_engine.run(REQUEST)[0]), pixels(before))
    states = {state.name: state for state in models_engine.model_states()}
    assert states["broken"].error and not states["broken"].loaded
    assert states["tiny-sd"].loaded and states["tiny-sd"].family == "SD1" and not states["tiny-sd"].error
    assert states["tiny-xl"].family == "SDXL" and states["tiny-xl"].native_size == 64


def test_an_unknown_model_fails_its_job_only(models_engine: DiffusionEngine) -> None:
    with pytest.raises(ModelLoadError, match="not configured"):
        models_engine.run(REQUEST.replace(model="dalle"))
    assert models_engine.run(REQUEST)[0].size == (64, 64)


def test_several_models_stay_loaded_when_the_queue_has_room(
    tiny_model_dir: Path, tiny_sdxl_model_dir: Path, broken_model_dir: Path
) -> None:
    engine = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32", max_loaded_models=2,
                             models=specs(tiny_model_dir, tiny_sdxl_model_dir, broken_model_dir))
    engine.load()
    engine.run(REQUEST.replace(model="tiny-xl"))
    assert set(engine.loaded_models) == {"tiny-sd", "tiny-xl"}
    first_unet = engine.pipeline.unet
    engine.run(REQUEST)
    engine.run(REQUEST.replace(model="tiny-xl"))
    assert engine.pipeline.unet is first_unet  # kept, not loaded again
    assert engine.models.unload("tiny-sd") and engine.loaded_models == ("tiny-xl",)


@pytest.mark.parametrize("model", ["tiny-sd", "tiny-xl"])
def test_every_sampler_name_produces_an_image(models_engine: DiffusionEngine, model: str) -> None:
    for name in SCHEDULERS:
        image = models_engine.run(REQUEST.replace(model=model, scheduler=name, steps=4))[0]
        assert image.size == (64, 64), name
        assert type(models_engine.pipeline.scheduler).__name__ == SCHEDULERS[name][0], name
        assert pixels(image).std() > 0, name
        config = models_engine.pipeline.scheduler.config
        for key, value in SCHEDULERS[name][1].items():
            assert config.get(key) == value, (name, key)


def test_a_models_configured_sampler_is_its_default(tiny_model_dir: Path) -> None:
    engine = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32",
                             models=[ModelSpec("tiny-sd", str(tiny_model_dir), scheduler="Euler a")])
    engine.load()
    engine.run(REQUEST)
    assert type(engine.pipeline.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    engine.run(REQUEST.replace(scheduler="ddim"))
    assert type(engine.pipeline.scheduler).__name__ == "DDIMScheduler"


def test_sdxl_in_float16_decodes_with_an_upcast_vae_unless_a_vae_is_named(tiny_sdxl_model_dir: Path) -> None:
    pipe = read_text2image(ModelSpec("xl", str(tiny_sdxl_model_dir)), torch.float16)
    assert pipe.vae.config.force_upcast is True and pipe.vae.dtype == torch.float16
    named = ModelSpec("xl", str(tiny_sdxl_model_dir), vae=str(tiny_sdxl_model_dir / "vae"))
    with_vae = read_text2image(named, torch.float16)
    assert with_vae.vae.dtype == torch.float16


def test_families_are_read_from_the_files_without_loading(
    tiny_model_dir: Path, tiny_sdxl_model_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    assert detect_family(str(tiny_model_dir)) == ("SD1", 64)
    assert detect_family(str(tiny_sdxl_model_dir)) == ("SDXL", 64)
    assert detect_family("nobody/not-downloaded") == ("", 0)
    checkpoint = tmp_path / "xl.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(2)}, str(checkpoint))
    assert detect_family(str(checkpoint)) == ("SDXL", 1024)
    save_file({"cond_stage_model.transformer.x": torch.zeros(2)}, str(tmp_path / "sd.safetensors"))
    assert detect_family(str(tmp_path / "sd.safetensors")) == ("SD1", 512)


async def test_the_queue_batches_only_jobs_of_the_same_model(
    models_engine: DiffusionEngine,
) -> None:
    queue = JobQueue([models_engine], max_batch_images=4)
    queue._loop = asyncio.get_running_loop()  # submit all before the worker starts: one decision
    jobs = []
    for job_id, model in enumerate(["tiny-sd", "tiny-xl", "tiny-sd", "tiny-xl"], start=1):
        request = REQUEST.replace(model=None if model == "tiny-sd" else model, seed=job_id)
        jobs.append(QueuedJob(job_id=job_id, user_id=job_id, request=request,
                              model=request.model or models_engine.default_model))
    futures = [queue.submit(job) for job in jobs]
    queue.start()
    results = await asyncio.wait_for(asyncio.gather(*futures), timeout=120)
    await queue.close()
    assert all(len(images) == 1 for images in results)
    starts = {job.job_id: job.started_at for job in jobs}
    assert starts[1] == starts[3] and starts[2] == starts[4] and starts[1] != starts[2]


async def test_a_failed_load_fails_that_job_and_the_next_one_runs(models_engine: DiffusionEngine) -> None:
    queue = JobQueue([models_engine])
    queue.start()
    broken = QueuedJob(job_id=1, user_id=1, request=REQUEST.replace(model="broken"), model="broken")
    with pytest.raises(ModelLoadError):
        await asyncio.wait_for(queue.submit(broken), timeout=60)
    served = QueuedJob(job_id=2, user_id=1, request=REQUEST, model=models_engine.default_model)
    images = await asyncio.wait_for(queue.submit(served), timeout=60)
    await queue.close()
    assert len(images) == 1 and served.device == "cpu"
