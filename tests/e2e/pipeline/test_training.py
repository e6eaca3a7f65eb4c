"""Training a character's LoRA on the tiny model: the loss falls, panels move toward the references,
the LoRA reloads in a fresh engine, training never leaks into generation, and on the queue it yields
to other members' jobs between slices.

The tiny model's VAE has random weights, so its decoder turns any latents into nearly the same
grey: the pull toward the references is measured where the model works, on the panel's final
latents (before decoding) against the VAE latents of the references, for the untrained and the
trained character at the same seeds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from generation.engine import DiffusionEngine
from generation.errors import JobCancelled
from generation.queue import JobQueue, QueuedJob
from generation.training import CHECKPOINT_FILE, TrainingResult, run_training_job, train_character_lora
from rules.request import GenerationRequest, LoraUse
from rules.training import TRAIN_KIND, TRAINING_KEY, TrainingSpec, instance_prompt

TOKEN = "zwoq"
PROMPT = instance_prompt(TOKEN, "character")
STEPS = 150
SLICE = 50
LEARNING_RATE = 2e-2
RANK = 8
SEEDS = (3, 4, 5)
PLAIN = GenerationRequest(prompt="a red cat", seed=7, steps=3, guidance=5.0, width=64, height=64)


def pattern_pictures() -> list[Image.Image]:
    """Four pictures of one distinct pattern: magenta with dark stripes, each a little different."""
    pictures = []
    for index in range(4):
        data = np.zeros((64, 64, 3), np.uint8)
        data[...] = (230, 30 + 10 * index, 210)
        data[:: 8 - index % 2, :, :] = 15
        pictures.append(Image.fromarray(data))
    return pictures


def own_engine(model_dir: Path) -> DiffusionEngine:
    engine = DiffusionEngine(str(model_dir), device="cpu", dtype="float32")
    engine.load()
    return engine


@pytest.fixture(scope="module")
def trainer(tiny_model_dir: Path) -> DiffusionEngine:
    """An engine of its own: the trained LoRA is loaded into it, the shared one stays untouched."""
    return own_engine(tiny_model_dir)


@pytest.fixture(scope="module")
def trained(trainer: DiffusionEngine, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, float]:
    """The character trained in slices of SLICE steps, resuming from its checkpoint each time."""
    folder = tmp_path_factory.mktemp("trained")
    started = time.monotonic()
    result = None
    for _ in range(STEPS // SLICE + 1):
        result = train_character_lora(
            trainer.pipeline, pattern_pictures(), token=TOKEN, output=folder / "mira.safetensors",
            steps=STEPS, rank=RANK, learning_rate=LEARNING_RATE, resolution=64,
            checkpoint_dir=folder / "checkpoint", stop_after=SLICE,
        )
        if result.finished:
            break
    assert result is not None and result.finished
    return result, time.monotonic() - started


def final_latents(engine: DiffusionEngine, lora: Path | None, seed: int) -> torch.Tensor:
    """A panel's latents before decoding: the engine's own LoRA switching, the pipeline asked for latents."""
    pipe = engine.pipeline
    engine.adapters.activate(pipe, (LoraUse("Mira", str(lora), 1.0),) if lora else ())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        latents = pipe(PROMPT, num_inference_steps=8, guidance_scale=5.0, height=64, width=64,
                       generator=generator, output_type="latent").images
    engine.adapters.activate(pipe, ())
    return latents[0]


def reference_latents(engine: DiffusionEngine) -> torch.Tensor:
    pipe = engine.pipeline
    pixels = torch.stack([
        torch.from_numpy(np.asarray(picture, np.float32) / 127.5 - 1.0).permute(2, 0, 1)
        for picture in pattern_pictures()
    ])
    with torch.no_grad():
        return (pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor).mean(0)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_the_loss_falls(trained: tuple[TrainingResult, float]) -> None:
    result, seconds = trained
    losses = np.asarray(result.losses)
    assert len(losses) == STEPS
    first, last = losses[:30].mean(), losses[-30:].mean()
    print(f"\ntrained {STEPS} steps in {seconds:.1f} s; loss {first:.3f} -> {last:.3f}")
    assert last < first * 0.97


def test_panels_move_toward_the_references(trainer: DiffusionEngine, trained: tuple[TrainingResult, float]) -> None:
    result, _ = trained
    target = reference_latents(trainer)
    before = [float((final_latents(trainer, None, seed) - target).pow(2).mean().sqrt()) for seed in SEEDS]
    after = [float((final_latents(trainer, result.lora_path, seed) - target).pow(2).mean().sqrt())
             for seed in SEEDS]
    print(f"\nlatent distance to the references, untrained {before} -> trained {after}")
    assert all(a < b for a, b in zip(after, before, strict=True))
    assert sum(after) < 0.98 * sum(before)


def test_the_lora_reloads_in_a_fresh_engine_and_applies_only_when_asked(
    tiny_model_dir: Path, trainer: DiffusionEngine, trained: tuple[TrainingResult, float]
) -> None:
    result, _ = trained
    assert result.lora_path is not None and result.lora_path.exists()
    named = PLAIN.replace(prompt=PROMPT, loras=(LoraUse("Mira", str(result.lora_path), 1.0),))
    in_trainer = pixels(trainer.run(named)[0])
    fresh = own_engine(tiny_model_dir)  # as after a restart: nothing in memory, the file alone
    plain_before = pixels(fresh.run(PLAIN.replace(prompt=PROMPT))[0])
    with_lora = pixels(fresh.run(named)[0])
    plain_after = pixels(fresh.run(PLAIN.replace(prompt=PROMPT))[0])
    assert np.abs(with_lora - in_trainer).max() <= 1
    assert np.abs(with_lora - plain_before).mean() > 0.05
    assert np.array_equal(plain_after, plain_before)


def test_sliced_training_gives_the_losses_of_one_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    engine = own_engine(tiny_model_dir)
    common = dict(token=TOKEN, steps=6, rank=4, learning_rate=1e-3, resolution=64)
    whole = train_character_lora(engine.pipeline, pattern_pictures(), output=tmp_path / "whole.safetensors",
                                 **common)  # type: ignore[arg-type]
    sliced = None
    for _ in range(3):
        sliced = train_character_lora(engine.pipeline, pattern_pictures(), output=tmp_path / "sliced.safetensors",
                                      checkpoint_dir=tmp_path / "checkpoint", stop_after=2,
                                      **common)  # type: ignore[arg-type]
    assert sliced is not None and sliced.finished
    assert sliced.losses == whole.losses
    assert not (tmp_path / "checkpoint" / CHECKPOINT_FILE).exists()  # removed once the LoRA is written


def test_generation_between_slices_equals_generation_before_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    engine = own_engine(tiny_model_dir)
    before = pixels(engine.run(PLAIN)[0])
    for _ in range(2):
        result = train_character_lora(engine.pipeline, pattern_pictures(), token=TOKEN, steps=4, rank=4,
                                      learning_rate=1e-2, resolution=64, output=tmp_path / "l.safetensors",
                                      checkpoint_dir=tmp_path / "checkpoint", stop_after=2)
        between = pixels(engine.run(PLAIN)[0])
        assert np.array_equal(between, before)
    assert result.finished


def training_request(tmp_path: Path, *, steps: int, slice_steps: int) -> GenerationRequest:
    references = []
    for index, picture in enumerate(pattern_pictures()):
        path = tmp_path / f"ref{index}.png"
        picture.save(path)
        references.append(str(path))
    spec = TrainingSpec(
        character="Mira", token=TOKEN, references=tuple(references), lora_path=str(tmp_path / "mira.safetensors"),
        checkpoint_dir=str(tmp_path / "checkpoint"), steps=steps, rank=4, learning_rate=1e-2, resolution=64,
        slice_steps=slice_steps,
    )
    return GenerationRequest(
        prompt=PROMPT, seed=1, steps=3, guidance=5.0, width=64, height=64,
        loras=(LoraUse("Mira", spec.lora_path, 1.0),), extra={TRAINING_KEY: spec.to_dict()},
    )


async def test_on_the_queue_training_yields_to_other_members_between_slices(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    engine = own_engine(tiny_model_dir)
    queue = JobQueue([engine])
    queue.register_work(TRAIN_KIND, run_training_job)
    starts: list[str] = []
    lines: list[str] = []
    training = QueuedJob(
        job_id=1, user_id=1, request=training_request(tmp_path, steps=6, slice_steps=2), work=TRAIN_KIND,
        cost_steps=2, on_start=lambda _: starts.append("train"),
        on_progress=lambda progress: lines.append(progress.text or ""),
    )
    others = [
        QueuedJob(job_id=2 + index, user_id=2, request=PLAIN.replace(seed=index),
                  on_start=lambda _: starts.append("generate"))
        for index in range(2)
    ]
    queue._loop = asyncio.get_running_loop()
    futures = [queue.submit(job) for job in (training, *others)]  # all wait before the worker starts
    queue.start()
    results = await asyncio.wait_for(asyncio.gather(*futures), timeout=240)
    await queue.close()
    # A slice is one turn: after the first, member 2 (no turn yet, then waiting longer at one turn each)
    # goes first; neither of their jobs waited for the whole training.
    assert starts == ["train", "generate", "generate", "train", "train"]
    assert training.turns == 3
    assert len(results[0]) == 1 and results[0][0].size == (64, 64)  # the sample image
    assert await asyncio.to_thread((tmp_path / "mira.safetensors").exists)
    assert "Training Mira: step 6/6, loss" in lines[-1]
    waits = [job.started_at - job.enqueued_at for job in others if job.started_at]
    print(f"\ngeneration jobs' waits while training ran: {[round(w, 2) for w in waits]} s")


async def test_a_training_job_cancelled_mid_slice_stops_at_its_next_step_and_drops_its_checkpoint(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    engine = own_engine(tiny_model_dir)
    queue = JobQueue([engine])
    queue.register_work(TRAIN_KIND, run_training_job)
    steps_seen: list[int] = []

    def progress(update) -> None:  # type: ignore[no-untyped-def]
        steps_seen.append(update.step)
        queue.cancel(1)

    training = QueuedJob(job_id=1, user_id=1, request=training_request(tmp_path, steps=400, slice_steps=200),
                         work=TRAIN_KIND, on_progress=progress)
    queue._loop = asyncio.get_running_loop()
    future = queue.submit(training)
    queue.start()
    with pytest.raises(JobCancelled):
        await asyncio.wait_for(future, timeout=120)
    await queue.close()
    assert training.turns == 0 and steps_seen  # it stopped inside its first slice
    assert not await asyncio.to_thread((tmp_path / "checkpoint").exists)
    assert not await asyncio.to_thread((tmp_path / "mira.safetensors").exists)
