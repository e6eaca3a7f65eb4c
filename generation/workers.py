"""Building the GPU side from settings: one engine per device (each with every configured model), and the queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from generation.engine import DiffusionEngine
from generation.performance import PerformanceOptions
from generation.queue import Engine, JobQueue
from generation.training import run_training_job
from rules.loras import EmbeddingConfig
from rules.models import ModelSpec
from rules.training import TRAIN_KIND

log = logging.getLogger(__name__)


async def load_engines(
    model_id: str,
    devices: Sequence[str],
    *,
    dtype: str = "auto",
    preview_decoder: str = "",
    performance: PerformanceOptions | None = None,
    models: Sequence[ModelSpec] = (),
    max_loaded_models: int = 1,
    embeddings: Mapping[str, EmbeddingConfig] | None = None,
) -> list[DiffusionEngine]:
    """Load the default model once per device, off the event loop, one device after the other.

    ``models`` (the default one first, as :meth:`bot.config.Settings.model_specs` lists them) are
    the models each engine may load later, when a job asks for one; up to ``max_loaded_models``
    stay loaded per device. ``embeddings`` are the configured textual-inversion embeddings: each
    model gets those made for its family when it is loaded.
    """
    engines: list[DiffusionEngine] = []
    for device in devices:
        engine = DiffusionEngine(
            model_id, device=device, dtype=dtype, preview_decoder=preview_decoder, performance=performance,
            models=models, max_loaded_models=max_loaded_models,
        )
        log.info("loading model %s on %s...", model_id, engine.device)
        await asyncio.to_thread(engine.load)
        if embeddings:
            await asyncio.to_thread(engine.load_embeddings, embeddings)
        log.info("model loaded on %s: %s, native size %d px", engine.device, engine.model_name, engine.native_size)
        engines.append(engine)
    return engines


def build_queue(
    engines: Sequence[Engine],
    *,
    max_pending_per_user: int,
    max_pending_total: int,
    job_timeout_s: float,
    max_batch_images: int,
    preview_interval_s: float,
    max_attempts: int = 3,
    max_worker_losses: int = 3,
    allow_no_workers: bool = False,
    max_pending_per_guild: int = 0,
    max_loaded_models: int = 1,
) -> JobQueue:
    """The job queue over these engines, with the configured caps, timeout, batching and previews.

    ``allow_no_workers``: the engines come later (:meth:`JobQueue.add_engine`, a cluster's workers).
    ``max_loaded_models`` is the engines' (see :func:`load_engines`); it is accepted here so the
    whole ``[queue]`` section can be passed.
    """
    del max_loaded_models
    queue = JobQueue(
        engines,
        max_pending_per_user=max_pending_per_user,
        max_pending_total=max_pending_total,
        max_pending_per_guild=max_pending_per_guild,
        job_timeout_s=job_timeout_s,
        max_batch_images=max_batch_images,
        preview_interval_s=preview_interval_s or None,
        max_attempts=max_attempts,
        max_worker_losses=max_worker_losses,
        allow_no_workers=allow_no_workers,
    )
    # Training a character's LoRA is a job on the same queue, run in slices (see generation.training).
    queue.register_work(TRAIN_KIND, run_training_job)
    return queue
