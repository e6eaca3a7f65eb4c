"""Benchmark the GPU queue through the whole bot, against the Discord emulator, with the tiny model.

    python bench/queue.py            # tiny model on the CPU (minutes on 2 cores)
    python bench/queue.py --sd15     # full-size SD 1.5 architecture, random weights, on a GPU

Prints a line per throughput round, a table, then as its last line one JSON object with:
throughput_ratio (the median over alternating rounds) with throughput_ratio_min and _max (their
spread), loop_lag_p99_ms, loop_lag_max_ms, ack_p99_ms, batch_gain, fairness_wait_ratio (and the
figures behind them). Every ratio is measured within this one run, on this machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's `queue`: take its folder off the import path
# before anything imports `queue`, and put the repository root there instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import gc
import itertools
import json
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from generation.engine import DiffusionEngine
from generation.queue import JobQueue, QueuedJob
from rules.request import GenerationRequest


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


class LoopLagSampler:
    """Measures how late the event loop wakes a 5 ms sleep: the lag a blocked loop would show."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.lags_ms.append((time.perf_counter() - start - self.interval_s) * 1000)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def request(prompt: str, seed: int, steps: int, size: int) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, seed=seed, steps=steps, guidance=5.0, width=size, height=size)


async def bench_through_bot(
    engine: DiffusionEngine, jobs: int, steps: int, rounds: int, workdir: Path
) -> dict[str, float]:
    """N /imagine through the whole bot vs the same N direct calls, in alternating rounds; loop lag.

    The two sides alternate (bot, direct, bot, direct ...) ``rounds`` times each, so a noisy moment on a
    shared machine lands on one round of one side, not on the whole figure: the ratio reported is the
    median of the rounds' ratios, with their spread (min and max) beside it.
    """
    from playground import DiscordEmulator
    from tests.harness import settings_for, start_bot

    size = engine.native_size

    def direct_round() -> float:
        """N direct pipeline calls, one after the other (in a thread, as the queue's worker runs them)."""
        start = time.perf_counter()
        for index in range(jobs):
            engine.run(request(f"direct {index}", index, steps, size))
        return time.perf_counter() - start

    engine.run(request("warm up", 0, steps, size))
    async with DiscordEmulator() as emu:
        settings = settings_for(
            emu, workdir, generation={"default_steps": steps},
            queue={"max_batch_images": 1, "preview_interval_s": 0, "max_pending_total": 500},
        )
        bot = await start_bot(emu, engine, settings)
        try:
            users = [emu.add_member(f"user{i}") for i in range(jobs)]

            def results() -> int:
                return sum(1 for m in emu.messages() if m.attachments and m.embeds)

            # One /imagine on an idle bot, slash command to posted image, beside one direct call.
            start = time.perf_counter()
            await asyncio.to_thread(engine.run, request("one direct", 999, steps, size))
            one_direct_s = time.perf_counter() - start
            start = time.perf_counter()
            await emu.send_slash_command("imagine", {"prompt": "one", "seed": 999, "count": 1}, user_id=users[0])
            await emu.wait_for(lambda: results() >= 1, timeout=600)
            one_imagine_s = time.perf_counter() - start

            sampler = LoopLagSampler()
            bot_times: list[float] = []
            direct_times: list[float] = []
            for round_index in range(rounds):
                posted = results()
                sampler.start()
                start = time.perf_counter()
                for index in range(jobs):
                    options = {"prompt": f"bot {index}", "seed": index, "count": 1}
                    await emu.send_slash_command("imagine", options, user_id=users[index])
                await emu.wait_for(lambda: results() >= posted + jobs, timeout=600)  # noqa: B023 - awaited here
                bot_times.append(time.perf_counter() - start)
                await sampler.stop()
                direct_times.append(await asyncio.to_thread(direct_round))
                print(f"round {round_index + 1}/{rounds}: bot {bot_times[-1]:.2f} s, direct {direct_times[-1]:.2f} s,"
                      f" ratio {direct_times[-1] / bot_times[-1]:.3f}", flush=True)
        finally:
            await bot.stop()
        assert not emu.problems, emu.problems
    ratios = [direct / through for direct, through in zip(direct_times, bot_times, strict=True)]
    return {
        "one_direct_s": one_direct_s,
        "one_imagine_s": one_imagine_s,
        "jobs": jobs,
        "steps": steps,
        "rounds": rounds,
        "direct_s_median": statistics.median(direct_times),
        "bot_s_median": statistics.median(bot_times),
        "throughput_ratio": statistics.median(ratios),
        "throughput_ratio_min": min(ratios),
        "throughput_ratio_max": max(ratios),
        "loop_lag_p99_ms": percentile(sampler.lags_ms, 99),
        "loop_lag_max_ms": max(sampler.lags_ms),
        "loop_lag_samples": len(sampler.lags_ms),
    }


async def bench_acks(model_dir: Path, workdir: Path, steps: int, burst: int = 50) -> dict[str, float]:
    """``burst`` concurrent /imagine: time from INTERACTION_CREATE to the bot's first response.

    The bot runs as its own ``run_bot.py`` process, as in production, so the emulator's work
    (parsing, checking every body against Discord's spec) is not counted against the bot.
    """
    import signal

    from playground import DiscordEmulator
    from tests.harness import launch_bot_process, write_config_file

    async with DiscordEmulator() as emu:
        config = workdir / "acks.toml"
        write_config_file(config, emu, model_dir, workdir / "acks", extra="max_pending_total = 500")
        process = await launch_bot_process(config, workdir / "acks.log")
        try:
            await emu.wait_for(lambda: emu.gateway.ready, timeout=120)
            users = [emu.add_member(f"burst{i}") for i in range(burst)]
            # A bot that has been running a while: one request first, so first-use costs (imports,
            # the HTTP connection to Discord) are not counted as the burst's.
            await emu.send_slash_command("imagine", {"prompt": "warm up", "steps": 1, "count": 1}, user_id=users[0])
            await emu.wait_for(lambda: sum(1 for m in emu.messages() if m.attachments) >= 1, timeout=120)
            before = len(emu.interactions)
            # This process (the emulator: Discord's side) holds the earlier runs' model and images;
            # keep its garbage collector from pausing it mid-burst and charging that to the bot.
            gc.collect()
            gc.freeze()
            await asyncio.gather(*(
                emu.send_slash_command("imagine", {"prompt": f"burst {i}", "steps": steps, "count": 1},
                                       user_id=users[i], ack_timeout=10)
                for i in range(burst)
            ))
            acks = [i.ack_ms for i in emu.interactions[before:] if i.ack_ms is not None]
            # The GPU works through the burst meanwhile; the bot then stops (Ctrl-C) with the rest
            # still queued in its database, as a restart would find them.
        finally:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 60)
        assert not emu.problems, emu.problems
    return {"ack_p50_ms": percentile(acks, 50), "ack_p99_ms": percentile(acks, 99), "ack_max_ms": max(acks)}


def bench_batch(engine: DiffusionEngine, steps: int, size: int, count: int = 4) -> dict[str, float]:
    """4 compatible jobs as one pipeline call vs one by one."""
    requests = [request(f"batch {i}", 100 + i, steps, size) for i in range(count)]
    engine.run_batch(requests, [None] * count)  # warm-up
    start = time.perf_counter()
    for item in requests:
        engine.run(item)
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    engine.run_batch(requests, [None] * count)
    batch_s = time.perf_counter() - start
    return {"batch_single_s": single_s, "batch_batched_s": batch_s, "batch_gain": single_s / batch_s}


async def bench_fairness(engine: DiffusionEngine, steps: int, size: int) -> dict[str, float]:
    """A light user's one job behind a heavy user's ten: its wait divided by one job's run time."""
    queue = JobQueue([engine], max_pending_per_user=20)
    queue.start()
    heavy = [QueuedJob(job_id=i, user_id=1, request=request("heavy", i, steps, size)) for i in range(10)]
    light = QueuedJob(job_id=99, user_id=2, request=request("light", 99, steps, size))
    futures = [queue.submit(job) for job in heavy]
    await asyncio.sleep(0.05)  # the heavy user's first job is running
    light_submitted = time.monotonic()
    futures.append(queue.submit(light))
    await asyncio.gather(*futures)
    await queue.close()
    runs = [
        (b.started_at or 0) - (a.started_at or 0)
        for a, b in itertools.pairwise(heavy)
        if a.started_at and b.started_at and b.started_at > a.started_at
    ]
    one_job_s = statistics.median(runs) if runs else float("nan")
    wait_s = (light.started_at or light_submitted) - light_submitted
    return {"fairness_wait_s": wait_s, "one_job_s": one_job_s, "fairness_wait_ratio": wait_s / one_job_s}


def build_sd15_engine(folder: Path, device: str) -> DiffusionEngine:
    """The full SD 1.5 architecture with random weights (same compute as the real model, no download)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from generation.tiny_model import build_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # the SD 1.5 defaults
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), latent_channels=4, sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2,
    )
    tokenizer = build_tokenizer(folder / "tok")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder / "sd15-random")
    engine = DiffusionEngine(str(folder / "sd15-random"), device=device, dtype="auto")
    engine.load()
    return engine


def print_table(figures: dict[str, Any], goals: dict[str, str]) -> None:
    print(f"{'figure':<24}{'value':>14}  goal")
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<24}{shown:>14}  {goals.get(key, '')}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd15", action="store_true", help="full-size SD 1.5 architecture (use a GPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--jobs", type=int, default=8, help="jobs in each round of each side")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each side, alternating")
    args = parser.parse_args()
    torch.set_num_threads(1 if not args.sd15 else torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.sd15:
            engine = build_sd15_engine(workdir, args.device)
        else:
            from generation.tiny_model import save_tiny_pipeline

            model_dir = save_tiny_pipeline(workdir / "tiny-sd")
            engine = DiffusionEngine(str(model_dir), device="cpu", dtype="float32")
            engine.load()
        size = engine.native_size
        figures: dict[str, Any] = {"model": "sd15-random" if args.sd15 else "tiny", "device": engine.device,
                                   "size": size}
        figures.update(await bench_through_bot(engine, args.jobs, args.steps, args.rounds, workdir))
        if not args.sd15:
            figures.update(await bench_acks(model_dir, workdir, args.steps))
        figures.update(bench_batch(engine, args.steps, size))
        figures.update(await bench_fairness(engine, args.steps, size))
    goals = {"throughput_ratio": ">= 0.95", "loop_lag_p99_ms": "< 20", "loop_lag_max_ms": "< 100",
             "ack_p99_ms": "< 250 (Discord: 3000)", "fairness_wait_ratio": "<= 2", "batch_gain": "> 1 on GPUs"}
    print_table(figures, goals)
    keys = ("throughput_ratio", "throughput_ratio_min", "throughput_ratio_max", "loop_lag_p99_ms", "loop_lag_max_ms",
            "ack_p99_ms", "batch_gain", "fairness_wait_ratio")
    print(json.dumps({key: round(figures[key], 4) for key in keys}))


if __name__ == "__main__":
    asyncio.run(main())
