"""Benchmark several models on one worker with the tiny models: what a model switch costs, and each sampler.

    python bench/models.py            # the tiny SD and SDXL-shaped models on the CPU (about a minute)
    python bench/models.py --device cuda

Measures, on one :class:`~generation.engine.DiffusionEngine` with two models configured:

- ``first_load_s``: loading each model the first time (read, move to the device, build img2img
  and inpainting around it);
- ``switch_job_s`` vs ``same_model_job_s``: a job whose model must be loaded first (``[queue]
  max_loaded_models = 1``, alternating models) against a job on the loaded model; and
  ``kept_job_s``: alternating with ``max_loaded_models = 2`` (both stay loaded);
- ``sampler_s``: one job per sampler name on the SD model.

Medians over ``--rounds``; the last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

from generation.engine import DiffusionEngine
from generation.tiny_model import save_tiny_pipeline
from rules.models import ModelSpec
from rules.request import SCHEDULERS, GenerationRequest

REQUEST = GenerationRequest(prompt="a lighthouse at dusk", seed=3, steps=4, guidance=5.0, width=64, height=64)


def timed(run: Any) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def bench(folder: Path, device: str, rounds: int) -> dict[str, Any]:
    sd = save_tiny_pipeline(folder / "tiny-sd")
    xl = save_tiny_pipeline(folder / "tiny-xl", seed=1, sdxl=True)
    specs = [ModelSpec("tiny-sd", str(sd)), ModelSpec("tiny-xl", str(xl))]
    dtype = "float32" if device == "cpu" else "auto"
    out: dict[str, Any] = {"device": device, "rounds": rounds}

    engine = DiffusionEngine(str(sd), device=device, dtype=dtype, models=specs, max_loaded_models=1)
    out["first_load_s"] = {"tiny-sd": round(timed(engine.load), 3),
                           "tiny-xl": round(timed(lambda: engine.use_model("tiny-xl")), 3)}
    engine.run(REQUEST)  # warm-up: first calls pay for kernel selection and allocation
    engine.run(REQUEST.replace(model="tiny-xl"))
    same = [timed(lambda: engine.run(REQUEST.replace(model="tiny-xl"))) for _ in range(rounds)]
    switch = []
    for index in range(rounds):
        model = "tiny-sd" if index % 2 == 0 else "tiny-xl"
        switch.append(timed(lambda m=model: engine.run(REQUEST.replace(model=m))))
    out["same_model_job_s"] = round(statistics.median(same), 3)
    out["switch_job_s"] = round(statistics.median(switch), 3)

    kept_engine = DiffusionEngine(str(sd), device=device, dtype=dtype, models=specs, max_loaded_models=2)
    kept_engine.load()
    kept_engine.run(REQUEST.replace(model="tiny-xl"))
    kept = []
    for index in range(rounds):
        model = "tiny-sd" if index % 2 == 0 else "tiny-xl"
        kept.append(timed(lambda m=model: kept_engine.run(REQUEST.replace(model=m))))
    out["kept_job_s"] = round(statistics.median(kept), 3)
    out["loaded_with_room_for_two"] = list(kept_engine.loaded_models)

    samplers: dict[str, float] = {}
    for name in SCHEDULERS:
        kept_engine.run(REQUEST.replace(scheduler=name))
        samplers[name] = round(statistics.median(
            timed(lambda n=name: kept_engine.run(REQUEST.replace(scheduler=n))) for _ in range(3)
        ), 3)
    out["sampler_s"] = samplers
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python bench/models.py [--device cpu|cuda] [--rounds N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        result = bench(Path(tmp), args.device, args.rounds)
    print(f"first load: {result['first_load_s']}")
    print(f"job on the loaded model {result['same_model_job_s']} s; job that switches model "
          f"{result['switch_job_s']} s; alternating with both kept loaded {result['kept_job_s']} s")
    for name, seconds in result["sampler_s"].items():
        print(f"  {name:18s} {seconds:.3f} s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
