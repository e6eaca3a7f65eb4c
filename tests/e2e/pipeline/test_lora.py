"""LoRAs on the tiny model: loaded once, switched on per job, never leaking into another job's image."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.engine import DiffusionEngine
from generation.errors import AdapterLoadError
from generation.queue import JobQueue, QueuedJob
from generation.tiny_model import save_tiny_lora
from rules.request import GenerationRequest, LoraUse

BASE = GenerationRequest(prompt="a red cat", seed=7, steps=3, guidance=5.0, width=64, height=64)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_lora(tmp_path_factory.mktemp("loras") / "ink", seed=3)


@pytest.fixture
def own_engine(tiny_model_dir: Path) -> DiffusionEngine:
    """An engine of its own: these tests load LoRAs into it, and the shared one stays untouched."""
    loaded = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32")
    loaded.load()
    return loaded


def with_lora(source: Path, weight: float) -> GenerationRequest:
    return BASE.replace(loras=(LoraUse("ink", str(source), weight),))


def test_weight_changes_pixels_and_the_next_job_without_it_is_the_base_model(
    own_engine: DiffusionEngine, lora_file: Path
) -> None:
    before = pixels(own_engine.run(BASE)[0])
    half = pixels(own_engine.run(with_lora(lora_file, 0.5))[0])
    full = pixels(own_engine.run(with_lora(lora_file, 1.0))[0])
    after = pixels(own_engine.run(BASE)[0])
    assert np.abs(half - before).mean() > 1.0
    assert np.abs(full - half).mean() > 1.0
    # Further from the base the stronger it is applied.
    assert np.abs(full - before).mean() > np.abs(half - before).mean()
    assert np.array_equal(after, before)
    assert list(own_engine.adapters.loaded) == [str(lora_file)]


def test_a_folder_source_and_a_file_source_give_the_same_weights(
    own_engine: DiffusionEngine, lora_file: Path
) -> None:
    from_file = pixels(own_engine.run(with_lora(lora_file, 0.8))[0])
    from_folder = pixels(own_engine.run(with_lora(lora_file.parent, 0.8))[0])
    assert np.array_equal(from_file, from_folder)


def test_a_missing_lora_fails_its_job_only(own_engine: DiffusionEngine, tmp_path: Path) -> None:
    with pytest.raises(AdapterLoadError, match="'ghost' could not be loaded"):
        own_engine.run(BASE.replace(loras=(LoraUse("ghost", str(tmp_path / "ghost.safetensors"), 1.0),)))
    before = pixels(own_engine.run(BASE)[0])
    assert before.shape == (64, 64, 3)


def test_loras_survive_the_json_round_trip_and_split_batches(lora_file: Path) -> None:
    request = with_lora(lora_file, 0.7)
    again = GenerationRequest.from_json(request.to_json())
    assert again == request and again.loras == (LoraUse("ink", str(lora_file), 0.7),)
    assert again.batch_key() == request.batch_key()
    assert BASE.batch_key() != request.batch_key()
    assert with_lora(lora_file, 0.5).batch_key() != request.batch_key()


async def test_jobs_with_and_without_it_in_one_burst_are_not_mixed(
    own_engine: DiffusionEngine, lora_file: Path
) -> None:
    alone_plain = pixels(own_engine.run(BASE)[0])
    alone_lora = pixels(own_engine.run(with_lora(lora_file, 1.0))[0])
    queue = JobQueue([own_engine], max_batch_images=8)
    calls: list[list[tuple[LoraUse, ...]]] = []
    run_batch = own_engine.run_batch

    def recording_run_batch(requests, init_images, **kwargs):  # type: ignore[no-untyped-def]
        calls.append([request.loras for request in requests])
        return run_batch(requests, init_images, **kwargs)

    own_engine.run_batch = recording_run_batch  # type: ignore[method-assign]
    jobs = [
        QueuedJob(job_id=1, user_id=1, request=BASE),
        QueuedJob(job_id=2, user_id=2, request=with_lora(lora_file, 1.0)),
        QueuedJob(job_id=3, user_id=3, request=BASE),
        QueuedJob(job_id=4, user_id=4, request=with_lora(lora_file, 1.0)),
    ]
    queue._loop = asyncio.get_running_loop()
    futures = [queue.submit(queued) for queued in jobs]  # all wait before any worker starts
    queue.start()
    results = await asyncio.wait_for(asyncio.gather(*futures), timeout=120)
    await queue.close()
    for queued, images in zip(jobs, results, strict=True):
        expected = alone_lora if queued.request.loras else alone_plain
        assert np.abs(pixels(images[0]) - expected).max() <= 1, f"job {queued.job_id} was mixed"
    # Compatible jobs still share a pipeline call: the two plain ones, then the two with the LoRA.
    assert calls == [[(), ()], [jobs[1].request.loras, jobs[1].request.loras]]
