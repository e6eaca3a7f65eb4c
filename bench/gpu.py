"""The whole GPU benchmark set, with random weights in the real SD 1.5 and SDXL architectures (no download).

    python bench/gpu.py                       # on a CUDA machine: everything, SD 1.5 then SDXL
    python bench/gpu.py --only sd15 bot       # parts of it (each part's figures merge into the JSON)
    python bench/gpu.py --tiny --device cpu   # the same code path on tiny models, in a minute or two

What it measures, per model (SD 1.5 at 512x512, SDXL at 1024x1024; fp16 on CUDA, 30 steps):

- baseline: seconds per image, UNet iterations per second, peak memory at batch 1;
- batching: images per second at batch 1, 2, 4, 8, the gain over batch 1, and the largest batch
  that fits (doubling until the GPU runs out of memory);
- speed-ups, each a :class:`generation.performance.PerformanceOptions` switch, alone and together,
  with the pixel difference against the baseline at the same seed (PSNR and max difference; quality
  cannot be judged on random weights): SDPA against the classic attention, channels_last,
  ``torch.compile`` (its compile time, and whether later sizes and batch sizes recompile), the step
  caches, VAE tiling and slicing at large sizes, and the preview decoder's cost;
- model FLOPs utilization: the UNet's counted FLOPs times its iterations per second, against the
  GPU's dense fp16 peak;
- memory: the txt2img, img2img, inpaint and upscale pipelines (shared weights) against txt2img
  alone, two models resident at once, and CPU offload with its cost.

For SD 1.5 it also runs the queue benchmark through the whole bot (``bench/queue.py``'s functions):
throughput ratio, loop lag while the GPU is busy, and the acknowledgement p99 of a burst of
``/imagine`` while the GPU works.

Writes ``bench/results/gpu.json`` and rewrites the marked GPU section of ``docs/BENCHMARKS.md``
with the tables and the GPU, driver, torch and diffusers versions. ``--tiny`` writes
``bench/results/gpu-tiny.json`` and leaves the docs alone unless ``--docs`` names a file.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import torch

from generation.engine import DiffusionEngine
from generation.performance import PerformanceOptions
from rules.request import GenerationRequest

MARK_START = "<!-- gpu-bench:start -->"
MARK_END = "<!-- gpu-bench:end -->"
PARTS = ("sd15", "sdxl", "bot")
SECTIONS = ("baseline", "batching", "speedups", "vae", "memory")

#: Dense fp16 tensor-core peak (TFLOPS, fp32 accumulate, no sparsity) from the vendors' datasheets,
#: matched against the device name in this order; ``--peak-tflops`` overrides.
FP16_DENSE_PEAK_TFLOPS = (
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("A100", 312.0),
    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0), ("T4", 65.0),
    ("RTX 4090", 165.0), ("RTX 4080", 97.0), ("RTX 3090", 71.0), ("RTX 3080", 59.0), ("V100", 125.0),
)


# ---------------------------------------------------------------------------------------------- helpers


def load_queue_bench() -> ModuleType:
    """``bench/queue.py`` as a module (its file name shadows the standard library's ``queue``)."""
    spec = importlib.util.spec_from_file_location("bench_queue", REPO / "bench" / "queue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def allocated_gib(device: str) -> float | None:
    return torch.cuda.memory_allocated() / 2**30 if device.startswith("cuda") else None


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def timed(device: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def median_time(device: str, fn: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed(device, fn)[0] for _ in range(repeats))


def pixels(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """PSNR (dB, inf when equal) and the largest difference of one channel value (0-255)."""
    mse = float(((a - b) ** 2).mean())
    return {"psnr_db": math.inf if mse == 0 else 10 * math.log10(255**2 / mse),
            "max_diff": float(np.abs(a - b).max())}


def unique_bytes(modules: list[Any], device: str | None = None) -> int:
    """Bytes of the distinct parameter and buffer storages in ``modules`` (shared weights counted once)."""
    seen: dict[int, int] = {}
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            continue
        for tensor in list(module.parameters()) + list(module.buffers()):
            if device is None or str(tensor.device).startswith(device.split(":")[0]):
                seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
    return sum(seen.values())


def pipeline_modules(pipe: Any) -> list[Any]:
    return [value for value in pipe.components.values() if isinstance(value, torch.nn.Module)]


def request(prompt: str, seed: int, steps: int, size: int, count: int = 1) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, seed=seed, steps=steps, guidance=5.0, width=size, height=size,
                             count=count)


def environment(device: str) -> dict[str, Any]:
    """The GPU, driver, and library versions the figures belong to."""
    import diffusers
    import transformers

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "torch": torch.__version__,
        "diffusers": diffusers.__version__, "transformers": transformers.__version__, "device": device,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout.strip().splitlines()[0]
    else:
        info.update(gpu=None, driver=None)
    return info


def peak_tflops(gpu: str | None, override: float | None) -> float | None:
    if override:
        return override
    for name, value in FP16_DENSE_PEAK_TFLOPS:
        if gpu and name in gpu:
            return value
    return None


# ------------------------------------------------------------------------------------------- the models


class ModelSpec:
    """One model under test: how to build it and at which size it is measured."""

    def __init__(self, key: str, label: str, size: int, folder: Path) -> None:
        self.key, self.label, self.size, self.folder = key, label, size, folder


def build_sd15(folder: Path, tiny: bool) -> Path:
    """The SD 1.5 architecture with random weights (the tiny model with ``tiny``), saved to ``folder``."""
    if tiny:
        from generation.tiny_model import save_tiny_pipeline

        return save_tiny_pipeline(folder)
    queue_bench = load_queue_bench()
    engine = queue_bench.build_sd15_engine(folder.parent, "cpu")  # saves <parent>/sd15-random
    del engine
    return folder.parent / "sd15-random"


def build_sdxl(folder: Path, tiny: bool) -> Path:
    """The SDXL base architecture with random weights (UNet 2.57 B parameters, both CLIP text encoders,
    the SDXL VAE), or a tiny SDXL-shaped model with ``tiny``, saved to ``folder``."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from generation.tiny_model import build_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tokenizer(folder.parent / "sdxl-tok")
    if tiny:
        hidden = (32, 32)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=32, attention_head_dim=(2, 4),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=64, transformer_layers_per_block=(1, 2), use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
            norm_num_groups=32,
        )
        vae = AutoencoderKL(block_out_channels=(32, 32), latent_channels=4, sample_size=64, norm_num_groups=32,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
        layers, heads, inner, projection = (2, 2), (4, 4), (37, 37), 32
    else:
        hidden = (768, 1280)
        unet = UNet2DConditionModel(  # stabilityai/stable-diffusion-xl-base-1.0's UNet config
            sample_size=128, layers_per_block=2, block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048, use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
        )
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4, sample_size=1024,
                            scaling_factor=0.13025, layers_per_block=2,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
        layers, heads, inner, projection = (12, 32), (12, 20), (3072, 5120), 1280

    def text_config(index: int) -> CLIPTextConfig:
        return CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=hidden[index], intermediate_size=inner[index],
            num_hidden_layers=layers[index], num_attention_heads=heads[index], max_position_embeddings=77,
            projection_dim=projection, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )

    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(text_config(0)), text_encoder_2=CLIPTextModelWithProjection(text_config(1)),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
    )
    pipe.save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------ measurements


class Bench:
    """Runs the measurements for one model and collects them."""

    def __init__(
        self, spec: ModelSpec, device: str, steps: int, tiny: bool, peak: float | None, compile_unet: bool = True
    ) -> None:
        self.spec, self.device, self.steps, self.tiny, self.peak = spec, device, steps, tiny, peak
        self.compile_unet = compile_unet
        self.repeats = 2 if tiny else 3
        self.baseline_pixels: np.ndarray | None = None

    def engine(self, options: PerformanceOptions | None = None, preview_decoder: str = "") -> DiffusionEngine:
        engine = DiffusionEngine(str(self.spec.folder), device=self.device, dtype="auto", performance=options,
                                 preview_decoder=preview_decoder)
        engine.load()
        engine.configure(safety_checker="off")
        return engine

    def image(self, engine: DiffusionEngine, size: int | None = None, steps: int | None = None) -> np.ndarray:
        return pixels(engine.run(request("a lighthouse at dusk", 1234, steps or self.steps, size or self.spec.size))[0])

    def seconds_per_image(self, engine: DiffusionEngine, size: int | None = None) -> float:
        req = request("a lighthouse at dusk", 1234, self.steps, size or self.spec.size)
        return median_time(self.device, lambda: engine.run(req), self.repeats)

    def unet_its(self, engine: DiffusionEngine, batch: int = 1) -> float:
        """Denoising iterations per second (the UNet with classifier-free guidance, latents out)."""
        pipe, size = engine.pipeline, self.spec.size

        def denoise() -> None:
            pipe(["a lighthouse at dusk"] * batch, num_inference_steps=self.steps, guidance_scale=5.0,
                 width=size, height=size, output_type="latent",
                 generator=torch.Generator("cpu").manual_seed(1))

        denoise()
        return self.steps / median_time(self.device, denoise, self.repeats)

    def unet_flops_per_iteration(self, engine: DiffusionEngine, batch: int = 1) -> float:
        """FLOPs of one denoising iteration (the UNet at batch 2x``batch`` for guidance), counted by torch."""
        from torch.utils.flop_counter import FlopCounterMode

        pipe = engine.pipeline
        unet = pipe.unet
        latent = self.spec.size // pipe.vae_scale_factor
        dtype = engine.placement.dtype
        sample = torch.randn(2 * batch, unet.config.in_channels, latent, latent, device=self.device, dtype=dtype)
        context = torch.randn(2 * batch, 77, unet.config.cross_attention_dim, device=self.device, dtype=dtype)
        kwargs: dict[str, Any] = {}
        if unet.config.addition_embed_type == "text_time":
            pooled = pipe.text_encoder_2.config.projection_dim
            kwargs["added_cond_kwargs"] = {
                "text_embeds": torch.randn(2 * batch, pooled, device=self.device, dtype=dtype),
                "time_ids": torch.tensor([[self.spec.size, self.spec.size, 0, 0, self.spec.size, self.spec.size]]
                                         * 2 * batch, device=self.device, dtype=dtype),
            }
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            unet(sample, torch.tensor(500, device=self.device), encoder_hidden_states=context, **kwargs)
        return float(counter.get_total_flops())

    # -- 1. baseline and 4. utilization

    def baseline(self) -> dict[str, Any]:
        free(self.device)
        start = time.perf_counter()
        engine = self.engine()
        load_s = time.perf_counter() - start
        self.baseline_pixels = self.image(engine)  # warm-up, and the reference for pixel differences
        reset_peak(self.device)
        seconds = self.seconds_per_image(engine)
        peak = peak_gib(self.device)
        its = self.unet_its(engine)
        flops = self.unet_flops_per_iteration(engine)
        achieved = flops * its / 1e12
        out = {
            "size": self.spec.size, "steps": self.steps, "dtype": str(engine.placement.dtype).removeprefix("torch."),
            "load_s": load_s, "seconds_per_image": seconds, "images_per_minute": 60 / seconds,
            "unet_iterations_per_s": its, "peak_memory_gib": peak,
            "unet_parameters": sum(p.numel() for p in engine.pipeline.unet.parameters()),
            "unet_tflop_per_iteration": flops / 1e12, "achieved_tflops": achieved,
            "peak_fp16_dense_tflops": self.peak, "mfu": achieved / self.peak if self.peak else None,
        }
        del engine
        free(self.device)
        return out

    # -- 2. batching

    def batching(self) -> dict[str, Any]:
        engine = self.engine()
        rows: dict[str, Any] = {}
        base_rate = None
        for batch in (1, 2, 4, 8):
            req = request("batch", 7, self.steps, self.spec.size, count=batch)
            try:
                engine.run(req)  # warm-up at this shape
                reset_peak(self.device)
                seconds = median_time(self.device, lambda req=req, engine=engine: engine.run(req), self.repeats)
            except RuntimeError as error:
                if not is_oom(error):
                    raise
                rows[str(batch)] = {"oom": True}
                free(self.device)
                break
            rate = batch / seconds
            base_rate = base_rate or rate
            rows[str(batch)] = {"seconds": seconds, "images_per_s": rate, "gain": rate / base_rate,
                                "peak_memory_gib": peak_gib(self.device)}
        largest, limit = self.largest_batch(engine)
        del engine
        free(self.device)
        return {"batches": rows, "largest_batch": largest, "largest_batch_limit_tried": limit}

    def largest_batch(self, engine: DiffusionEngine) -> tuple[int | None, int]:
        """Double the batch (2 steps each: memory does not depend on steps) until it runs out of memory."""
        if not self.device.startswith("cuda"):
            return None, 0
        limit = 64 if self.spec.key == "sd15" else 32
        largest, batch = 0, 8
        while batch <= limit:
            try:
                engine.run(request("oom probe", 1, 2, self.spec.size, count=batch))
            except RuntimeError as error:
                if not is_oom(error):
                    raise
                free(self.device)
                return largest, limit
            largest, batch = batch, batch * 2
        return largest, limit

    # -- 3. speed-ups

    def variant(
        self, name: str, options: PerformanceOptions | None, *, eager_attention: bool = False
    ) -> dict[str, Any]:
        """One switch (or a set): load time, first image (compile), seconds per image, pixels vs baseline."""
        free(self.device)
        start = time.perf_counter()
        engine = self.engine(options)
        if eager_attention:
            from diffusers.models.attention_processor import AttnProcessor

            engine.pipeline.unet.set_attn_processor(AttnProcessor())
        load_s = time.perf_counter() - start
        first_s, first = timed(self.device, lambda engine=engine: self.image(engine))
        reset_peak(self.device)
        seconds = self.seconds_per_image(engine)
        out: dict[str, Any] = {"switches": options.describe() if options else "default", "load_s": load_s,
                               "first_image_s": first_s, "seconds_per_image": seconds,
                               "peak_memory_gib": peak_gib(self.device),
                               "resident_gib_after": allocated_gib(self.device)}
        if self.baseline_pixels is None:  # the speed-ups run without the baseline section: the default is first
            self.baseline_pixels = first
        out.update(compare(first, self.baseline_pixels))
        if name == "compile_unet":
            out["first_image_overhead_s"] = first_s - seconds
            out["shapes"] = self.recompiles(engine)
        del engine
        free(self.device)
        print(f"  {self.spec.key} {name}: {seconds:.3f} s/image, first {first_s:.1f} s, "
              f"PSNR {out['psnr_db']:.1f} dB", flush=True)
        return out

    def recompiles(self, engine: DiffusionEngine) -> list[dict[str, Any]]:
        """Other sizes and batch sizes on a compiled UNet: first-call time and graphs compiled for each."""
        from torch._dynamo.utils import counters

        size = self.spec.size
        step = max(8, size // 4 // 8 * 8)
        shapes = [(size, 2), (size, 4), (size + step, 1), (size - step, 1), (size + 2 * step, 2)]
        rows = []
        for side, batch in shapes:
            before = counters["stats"]["unique_graphs"]
            req = request("shape", 5, 4, side, count=batch)
            first_s, _ = timed(self.device, lambda req=req: engine.run(req))
            again_s, _ = timed(self.device, lambda req=req: engine.run(req))
            rows.append({"size": side, "batch": batch, "first_s": first_s, "again_s": again_s,
                         "graphs_compiled": counters["stats"]["unique_graphs"] - before})
        return rows

    def speedups(self) -> dict[str, Any]:
        variants: list[tuple[str, PerformanceOptions | None, bool]] = [
            ("default (SDPA)", None, False),
            ("classic attention (SDPA off)", None, True),
            ("channels_last", PerformanceOptions(channels_last=True), False),
            ("compile_unet", PerformanceOptions(compile_unet=True), False),
            ("step_cache=tomesd", PerformanceOptions(step_cache="tomesd"), False),
            ("step_cache=pab", PerformanceOptions(step_cache="pab"), False),
            ("channels_last+compile_unet", PerformanceOptions(channels_last=True, compile_unet=True), False),
            ("channels_last+compile_unet+tomesd",
             PerformanceOptions(channels_last=True, compile_unet=True, step_cache="tomesd"), False),
        ]
        if not self.compile_unet:
            variants = [v for v in variants if not (v[1] is not None and v[1].compile_unet)]
        rows: dict[str, Any] = {}
        for name, options, eager in variants:
            try:
                rows[name] = self.variant(name, options, eager_attention=eager)
            except Exception as error:  # one failing switch must not lose the others' figures
                traceback.print_exc()
                rows[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
                free(self.device)
            finally:
                torch._dynamo.reset()
        default = rows["default (SDPA)"].get("seconds_per_image")
        for row in rows.values():
            if default and "seconds_per_image" in row:
                row["speedup"] = default / row["seconds_per_image"]
        return rows

    def vae(self) -> dict[str, Any]:
        """VAE decode at large sizes with and without tiling, and a batch of 8 with and without slicing."""
        engine = self.engine()
        vae = engine.pipeline.vae
        factor = engine.pipeline.vae_scale_factor
        dtype = engine.placement.dtype
        out: dict[str, Any] = {}
        sides = (128, 256) if self.tiny else (self.spec.size * 2, self.spec.size * 4)
        cases = [(f"{side}x{side}", side, 1, tiling, False) for side in sides for tiling in (False, True)]
        batch_side = self.spec.size
        cases += [(f"{batch_side}x{batch_side} x8", batch_side, 8, False, slicing) for slicing in (False, True)]
        reference: dict[str, np.ndarray] = {}
        for label, side, batch, tiling, slicing in cases:
            generator = torch.Generator("cpu").manual_seed(3)
            latents = torch.randn(batch, 4, side // factor, side // factor, generator=generator).to(self.device, dtype)
            vae.enable_tiling() if tiling else vae.disable_tiling()
            vae.enable_slicing() if slicing else vae.disable_slicing()
            key = f"{label} {'tiled' if tiling else 'sliced' if slicing else 'plain'}"
            try:
                with torch.no_grad():
                    vae.decode(latents / vae.config.scaling_factor)
                    reset_peak(self.device)
                    seconds, image = timed(self.device, lambda latents=latents: vae.decode(
                        latents / vae.config.scaling_factor).sample)
            except RuntimeError as error:
                if not is_oom(error):
                    raise
                out[key] = {"oom": True}
                free(self.device)
                continue
            array = ((image[0].float().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).cpu().numpy()
            row: dict[str, Any] = {"seconds": seconds, "peak_memory_gib": peak_gib(self.device)}
            if label in reference:
                row.update(compare(array, reference[label]))
            else:
                reference[label] = array
            out[key] = row
            del image
        vae.disable_tiling()
        vae.disable_slicing()
        out["previews"] = self.previews(engine)
        del engine
        free(self.device)
        return out

    def previews(self, engine: DiffusionEngine) -> dict[str, Any]:
        """The cost of one progress preview: the default projection vs a TAESD-shaped tiny decoder."""
        from diffusers import AutoencoderTiny

        from generation.previews import LatentProjection, TinyAutoencoderPreview

        latent = self.spec.size // engine.pipeline.vae_scale_factor
        latents = torch.randn(1, 4, latent, latent, device=self.device, dtype=engine.placement.dtype)
        taesd = TinyAutoencoderPreview(AutoencoderTiny().to(self.device, engine.placement.dtype))
        out = {}
        for name, previewer in (("latent projection", LatentProjection()), ("tiny autoencoder", taesd)):
            previewer.render_png(latents)
            out[name] = {"ms": 1000 * median_time(self.device, lambda p=previewer: p.render_png(latents), 5)}
        return out

    # -- 5. memory

    def memory(self) -> dict[str, Any]:
        """Resident memory: txt2img alone, all four pipelines, two models, and CPU offload."""
        from generation.engine import load_text2image

        free(self.device)
        before = allocated_gib(self.device)
        alone = load_text2image(str(self.spec.folder), self.engine_placement())
        alone_bytes = unique_bytes(pipeline_modules(alone))
        alone_gib = (allocated_gib(self.device) or 0) - (before or 0) if before is not None else None
        del alone
        free(self.device)
        before = allocated_gib(self.device)
        engine = self.engine()
        pipes = engine.pipelines()
        all_bytes = unique_bytes([m for p in pipes.values() for m in pipeline_modules(p)])
        all_gib = (allocated_gib(self.device) or 0) - (before or 0) if before is not None else None
        second = self.engine()
        two_gib = (allocated_gib(self.device) or 0) - (before or 0) if before is not None else None
        reset_peak(self.device)
        for each in (engine, second):
            each.run(request("two models", 1, 2, self.spec.size))
        two_peak = peak_gib(self.device)
        del engine, second, pipes
        free(self.device)
        out: dict[str, Any] = {
            "txt2img_weights_gib": alone_bytes / 2**30, "four_pipelines_weights_gib": all_bytes / 2**30,
            "txt2img_resident_gib": alone_gib, "four_pipelines_resident_gib": all_gib,
            "two_models_resident_gib": two_gib, "two_models_peak_gib": two_peak,
        }
        if self.device.startswith("cuda"):
            out["cpu_offload"] = self.variant("cpu_offload", PerformanceOptions(cpu_offload=True))
        return out

    def engine_placement(self) -> Any:
        from generation.engine import resolve_placement

        return resolve_placement(self.device, "auto")

    def run(self, chosen: list[str]) -> dict[str, Any]:
        """The chosen sections (in their fixed order), each failing alone."""
        sections: dict[str, Any] = {"label": self.spec.label}
        for name, fn in (("baseline", self.baseline), ("batching", self.batching), ("speedups", self.speedups),
                         ("vae", self.vae), ("memory", self.memory)):
            if name not in chosen:
                continue
            print(f"{self.spec.key}: {name}", flush=True)
            start = time.perf_counter()
            try:
                sections[name] = fn()
            except Exception as error:
                traceback.print_exc()
                sections[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
                free(self.device)
            print(f"{self.spec.key}: {name} done in {time.perf_counter() - start:.1f} s", flush=True)
        return sections


async def through_bot(folder: Path, device: str, tiny: bool, steps: int, workdir: Path) -> dict[str, Any]:
    """``bench/queue.py``'s whole-bot figures on this model and device (the bot process on the same device)."""
    import tests.harness as harness

    queue_bench = load_queue_bench()
    engine = DiffusionEngine(str(folder), device=device, dtype="auto")
    engine.load()
    jobs, rounds = (2, 2) if tiny else (8, 5)
    out: dict[str, Any] = dict(await queue_bench.bench_through_bot(engine, jobs, steps, rounds, workdir))
    del engine
    free(device)
    original = harness.write_config_file

    def on_device(path: Path, *args: Any, **kwargs: Any) -> None:
        original(path, *args, **kwargs)  # the harness writes device = "cpu": run the bot process here instead
        path.write_text(path.read_text().replace('device = "cpu"', f'device = "{device}"'))

    harness.write_config_file = on_device
    try:
        out.update(await queue_bench.bench_acks(folder, workdir, steps, burst=10 if tiny else 50))
    finally:
        harness.write_config_file = original
    return out


# ----------------------------------------------------------------------------------------------- report


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return str(value)


def markdown(results: dict[str, Any]) -> str:
    """The GPU section of docs/BENCHMARKS.md, from the JSON."""
    env = results.get("environment", {})
    lines = [MARK_START, "", f"Generated by `python bench/gpu.py{' --tiny' if results.get('tiny') else ''}` "
             f"on {env.get('date', '?')}: GPU {env.get('gpu') or 'none (CPU)'}, driver {env.get('driver') or 'n/a'}, "
             f"CUDA {env.get('cuda') or 'n/a'}, torch {env.get('torch')}, diffusers {env.get('diffusers')}, "
             f"transformers {env.get('transformers')}, Python {env.get('python')}. Random weights in the real "
             "architectures: speed and memory are real, pixels only compare like with like.", ""]
    for key in ("sd15", "sdxl"):
        model = results.get("models", {}).get(key)
        if not model:
            continue
        lines += [f"#### {model.get('label', key)}", ""]
        base = model.get("baseline", {})
        if "error" in base:
            lines += [f"baseline failed: {base['error']}", ""]
        elif base:
            lines += ["| baseline (batch 1) | value |", "| --- | --- |"]
            for label, field, digits in (
                ("seconds per image", "seconds_per_image", 3), ("images per minute", "images_per_minute", 1),
                ("UNet iterations per second (with guidance)", "unet_iterations_per_s", 2),
                ("peak memory (GiB)", "peak_memory_gib", 2),
                ("UNet TFLOP per iteration", "unet_tflop_per_iteration", 3),
                ("achieved TFLOPS (UNet)", "achieved_tflops", 1),
                ("GPU dense fp16 peak (TFLOPS)", "peak_fp16_dense_tflops", 0),
                ("model FLOPs utilization", "mfu", 3), ("load time (s)", "load_s", 1),
            ):
                lines.append(f"| {label} | {fmt(base.get(field), digits)} |")
            lines.append(f"| size, steps, dtype | {base.get('size')}x{base.get('size')}, {base.get('steps')}, "
                         f"{base.get('dtype')} |")
            lines.append("")
        batching = model.get("batching", {})
        if batching.get("batches"):
            lines += ["| batch | images/s | gain over batch 1 | peak memory (GiB) |", "| --- | --- | --- | --- |"]
            for batch, row in batching["batches"].items():
                if row.get("oom"):
                    lines.append(f"| {batch} | out of memory | | |")
                else:
                    lines.append(f"| {batch} | {fmt(row['images_per_s'], 3)} | {fmt(row['gain'])}x | "
                                 f"{fmt(row['peak_memory_gib'])} |")
            if batching.get("largest_batch") is None:
                lines += ["", "Largest batch: probed on a GPU only.", ""]
            else:
                lines += ["", f"Largest batch that fits (doubling from 8, up to "
                          f"{batching.get('largest_batch_limit_tried')}): {batching['largest_batch']}.", ""]
        speedups = model.get("speedups", {})
        if speedups:
            lines += ["| switches | s/image | speed-up | first image (s) | PSNR vs baseline (dB) | max diff |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for name, row in speedups.items():
                if "error" in row:
                    lines.append(f"| {name} | failed: {row['error'][:80]} | | | | |")
                    continue
                lines.append(f"| {name} | {fmt(row['seconds_per_image'], 3)} | {fmt(row.get('speedup'))}x | "
                             f"{fmt(row['first_image_s'], 1)} | {fmt(row['psnr_db'], 1)} | {fmt(row['max_diff'], 0)} |")
            lines.append("")
            for name, row in speedups.items():
                if row.get("shapes"):
                    shapes = ", ".join(f"{s['size']}px x{s['batch']}: {fmt(s['first_s'], 1)} s first, "
                                       f"{s['graphs_compiled']} graphs" for s in row["shapes"])
                    lines += [f"`{name}` on other shapes (4 steps): {shapes}.", ""]
        vae = model.get("vae", {})
        if vae:
            lines += ["| VAE decode | s | peak memory (GiB) | PSNR vs plain (dB) |", "| --- | --- | --- | --- |"]
            for name, row in vae.items():
                if name == "previews":
                    continue
                if row.get("oom"):
                    lines.append(f"| {name} | out of memory | | |")
                else:
                    lines.append(f"| {name} | {fmt(row['seconds'], 3)} | {fmt(row['peak_memory_gib'])} | "
                                 f"{fmt(row.get('psnr_db'), 1) if 'psnr_db' in row else ''} |")
            previews = vae.get("previews", {})
            if previews:
                lines += ["", "One progress preview: " + ", ".join(
                    f"{name} {fmt(row['ms'], 1)} ms" for name, row in previews.items()) + "."]
            lines.append("")
        memory = model.get("memory", {})
        if memory and "error" not in memory:
            lines += ["| memory | GiB |", "| --- | --- |"]
            for label, field in (("txt2img weights", "txt2img_weights_gib"),
                                 ("txt2img + img2img + inpaint + upscale weights (shared)",
                                  "four_pipelines_weights_gib"),
                                 ("txt2img resident on the GPU", "txt2img_resident_gib"),
                                 ("four pipelines resident on the GPU", "four_pipelines_resident_gib"),
                                 ("two models resident", "two_models_resident_gib"),
                                 ("two models, peak while each makes an image", "two_models_peak_gib")):
                lines.append(f"| {label} | {fmt(memory.get(field), 3)} |")
            offload = memory.get("cpu_offload")
            if offload and "error" not in offload:
                lines.append(f"| CPU offload: peak while generating ({fmt(offload['seconds_per_image'], 2)} s/image) "
                             f"| {fmt(offload['peak_memory_gib'])} |")
            lines.append("")
    bot = results.get("bot")
    if bot and "error" not in bot:
        lines += ["#### Through the whole bot (SD 1.5 architecture)", "",
                  "| figure | value | goal |", "| --- | --- | --- |",
                  f"| throughput_ratio ({bot['jobs']} jobs, {bot['steps']} steps) | "
                  f"{fmt(bot['throughput_ratio'], 3)} | >= 0.95 |",
                  f"| loop_lag_p99_ms while the GPU works | {fmt(bot['loop_lag_p99_ms'])} | < 20 |",
                  f"| loop_lag_max_ms | {fmt(bot['loop_lag_max_ms'])} | < 100 |",
                  f"| ack_p99_ms (burst while the GPU works) | {fmt(bot['ack_p99_ms'], 1)} | < 250 |",
                  f"| one /imagine, slash command to posted image (s) | {fmt(bot['one_imagine_s'], 3)} | |",
                  f"| one direct call (s) | {fmt(bot['one_direct_s'], 3)} | |", ""]
    elif bot:
        lines += [f"Through the whole bot: failed: {bot['error']}", ""]
    lines.append(MARK_END)
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    """Replace the marked section of ``path`` (or append it under a heading)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if MARK_START in text and MARK_END in text:
        head, _, rest = text.partition(MARK_START)
        _, _, tail = rest.partition(MARK_END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n## GPU set: `python bench/gpu.py`\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    return value


# ------------------------------------------------------------------------------------------------- main


@contextlib.contextmanager
def workspace(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tiny", action="store_true", help="tiny random models (checks the script on a CPU)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cuda:1 or cpu")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 30; 4 with --tiny)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="run only these sections of each model")
    parser.add_argument("--out", type=Path, default=None, help="the JSON (merged with an earlier run's parts)")
    parser.add_argument("--docs", type=Path, default=None, help="the Markdown file whose GPU section to rewrite")
    parser.add_argument("--models", type=Path, default=None, help="keep the built models in this folder")
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out the torch.compile variants (the default with --tiny on a CPU, where "
                        "Inductor's C++ build takes minutes)")
    parser.add_argument("--with-compile", action="store_true", help="include them with --tiny on a CPU")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense fp16 peak, if not listed")
    args = parser.parse_args()

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    steps = args.steps or (4 if args.tiny else 30)
    out_path = args.out or REPO / "bench" / "results" / ("gpu-tiny.json" if args.tiny else "gpu.json")
    docs = args.docs or (None if args.tiny else REPO / "docs" / "BENCHMARKS.md")
    if not args.tiny and not device.startswith("cuda"):
        print("warning: the full-size models on a CPU take hours; use a GPU or --tiny", file=sys.stderr)
    if device == "cpu":
        torch.set_num_threads(1 if args.tiny else torch.get_num_threads())
    compile_unet = not args.no_compile and (args.with_compile or not (args.tiny and device == "cpu"))
    torch.backends.cuda.matmul.allow_tf32 = True
    env = environment(device)
    peak = peak_tflops(env.get("gpu"), args.peak_tflops)
    results: dict[str, Any] = {}
    if out_path.exists():
        with contextlib.suppress(ValueError):
            results = json.loads(out_path.read_text())
    if results.get("tiny") != args.tiny:
        results = {}
    results.update(tiny=args.tiny, environment=env)
    results.setdefault("models", {})
    results["defaults"] = asdict(PerformanceOptions())
    total = time.perf_counter()
    with workspace(args.models) as workdir:
        sd15_folder = workdir / ("tiny-sd" if args.tiny else "sd15-random")
        if ("sd15" in args.only or "bot" in args.only) and not (sd15_folder / "model_index.json").exists():
            print("building the SD 1.5 architecture", flush=True)
            sd15_folder = build_sd15(sd15_folder, args.tiny)
        if "sd15" in args.only:
            spec = ModelSpec("sd15", "Stable Diffusion 1.5 architecture" + (" (tiny)" if args.tiny else ""),
                             64 if args.tiny else 512, sd15_folder)
            figures = Bench(spec, device, steps, args.tiny, peak, compile_unet).run(args.sections)
            results["models"].setdefault("sd15", {}).update(figures)
        if "sdxl" in args.only:
            folder = workdir / ("tiny-sdxl" if args.tiny else "sdxl-random")
            if not (folder / "model_index.json").exists():
                print("building the SDXL architecture", flush=True)
                build_sdxl(folder, args.tiny)
            spec = ModelSpec("sdxl", "SDXL architecture" + (" (tiny)" if args.tiny else ""),
                             64 if args.tiny else 1024, folder)
            figures = Bench(spec, device, steps, args.tiny, peak, compile_unet).run(args.sections)
            results["models"].setdefault("sdxl", {}).update(figures)
        if "bot" in args.only:
            print("bot: through the whole bot", flush=True)
            try:
                results["bot"] = asyncio.run(through_bot(sd15_folder, device, args.tiny, steps, workdir))
            except Exception as error:
                traceback.print_exc()
                results["bot"] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    results["elapsed_s"] = time.perf_counter() - total
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(json_safe(results), indent=2) + "\n")
    section = markdown(results)
    print(section)
    if docs is not None:
        write_docs(docs, section)
        print(f"wrote {out_path} and the GPU section of {docs}")
    else:
        print(f"wrote {out_path}")
    failed = [f"{m}.{s}" for m, model in results["models"].items() for s, v in model.items()
              if isinstance(v, dict) and "error" in v]
    if isinstance(results.get("bot"), dict) and "error" in results["bot"]:
        failed.append("bot")
    if failed:
        print("failed parts: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
