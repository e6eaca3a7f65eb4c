"""Benchmark: train a character LoRA on the tiny model (DreamBooth-LoRA, generation.training).

Run from the repository root::

    python bench/training.py [--steps 200] [--slice 50] [--threads 1] [--device cpu]

Builds the tiny random-weight model, trains a LoRA on four synthetic pictures of one pattern in
slices (each resuming from the last checkpoint, as on the bot's queue), and prints one JSON line:
steps per second, total seconds, peak resident memory (the process's high-water mark, so the
model's weights included) and its growth during training, and the loss first -> last (means of
the first and last 20 steps). On CUDA it also gives the peak GPU memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py is named like the standard library's `queue`: take this folder off the import
# path before anything imports `queue`, and put the repository root there instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import platform
import resource
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--slice", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--learning-rate", type=float, default=2e-2)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    from generation.engine import DiffusionEngine
    from generation.tiny_model import save_tiny_pipeline
    from generation.training import train_character_lora

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine = DiffusionEngine(str(save_tiny_pipeline(folder / "tiny")), device=args.device, dtype="auto")
        engine.load()
        pictures = []
        for index in range(4):
            data = np.zeros((64, 64, 3), np.uint8)
            data[...] = (230, 30 + 10 * index, 210)
            data[:: 8 - index % 2, :, :] = 15
            pictures.append(Image.fromarray(data))
        rss_before = _peak_rss_mb()
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = None
        slices = 0
        while result is None or not result.finished:
            result = train_character_lora(
                engine.pipeline, pictures, token="zwoq", output=folder / "lora.safetensors", steps=args.steps,
                rank=args.rank, learning_rate=args.learning_rate, resolution=64,
                checkpoint_dir=folder / "checkpoint", stop_after=args.slice,
            )
            slices += 1
        seconds = time.perf_counter() - started
        losses = result.losses
        report = {
            "model": "tiny (random weights), 64x64",
            "device": args.device,
            "threads": args.threads,
            "steps": args.steps,
            "slices": slices,
            "rank": args.rank,
            "total_s": round(seconds, 2),
            "steps_per_s": round(args.steps / seconds, 2),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "rss_growth_mb": round(_peak_rss_mb() - rss_before, 1),
            "loss_first": round(float(np.mean(losses[:20])), 4),
            "loss_last": round(float(np.mean(losses[-20:])), 4),
            "lora_bytes": (folder / "lora.safetensors").stat().st_size,
            "python": platform.python_version(),
            "torch": torch.__version__,
        }
        if args.device.startswith("cuda"):
            report["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
