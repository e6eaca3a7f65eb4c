"""Speed and memory switches applied to a loaded pipeline (the ``[performance]`` config section).

Each switch is independent; :func:`apply_performance` applies the chosen ones to the text-to-image
pipeline right after loading. The img2img, inpainting and upscale pipelines share that pipeline's
modules (``from_pipe``), so a switch applied to the shared UNet or VAE reaches all of them.

Attention always runs through PyTorch's scaled-dot-product attention (diffusers' default), so
there is no switch for it. The switches:

``channels_last``
    The UNet's weights and activations in NHWC layout: faster convolutions on tensor-core GPUs.
    Same arithmetic, so outputs match the default to float rounding.
``compile_unet``
    ``torch.compile`` of the UNet in place (every pipeline sharing it gets the compiled one). The
    first image of each new shape pays the compile (tens of seconds on a GPU); after the second
    distinct shape torch marks sizes dynamic, so later sizes and batch sizes do not recompile.
``vae_tiling``
    Decode (and encode) images larger than the VAE's tile in overlapping tiles: bounded memory at
    large sizes, seams blended. No effect at or below the model's native size.
``vae_slicing``
    Decode a batch one image at a time: lower peak memory for large batches, same pixels.
``step_cache``
    A training-free cache that reuses work between denoising steps, trading a little fidelity for
    speed. ``"none"`` (default); ``"tomesd"``: token merging (the ``tomesd`` package) in the
    attention blocks of the two highest resolutions, half the tokens merged; ``"pab"``: diffusers'
    own Pyramid Attention Broadcast, which reuses each self- and cross-attention output for every
    other step while the timestep is between 100 and 800 (noise still dominant at the start, fine
    detail at the end are always computed).
``cpu_offload``
    Keep the weights in CPU memory and move each model (text encoder, UNet, VAE) to the GPU only
    while it runs (``enable_model_cpu_offload``): fits a small GPU, at a cost per image. Ignored
    on a CPU-only engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

#: The step caches :attr:`PerformanceOptions.step_cache` accepts.
STEP_CACHES = ("none", "tomesd", "pab")
#: Token merging: the share of tokens merged, and the deepest downsampling it applies at.
TOME_RATIO = 0.5
TOME_MAX_DOWNSAMPLE = 2
#: Pyramid Attention Broadcast: compute attention every this many steps inside the timestep range.
PAB_SKIP_RANGE = 2
PAB_TIMESTEP_RANGE = (100, 800)


@dataclass(frozen=True)
class PerformanceOptions:
    """Which speed and memory switches to apply (see the module docstring for each)."""

    channels_last: bool = False
    compile_unet: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False
    step_cache: str = "none"
    cpu_offload: bool = False

    def __post_init__(self) -> None:
        if self.step_cache not in STEP_CACHES:
            raise ValueError(f"step_cache must be one of {', '.join(STEP_CACHES)}, not {self.step_cache!r}")

    def describe(self) -> str:
        """The switches that are on, for logs and benchmark tables ("default" when none)."""
        on = [name for name in ("channels_last", "compile_unet", "vae_tiling", "vae_slicing", "cpu_offload")
              if getattr(self, name)]
        if self.step_cache != "none":
            on.append(f"step_cache={self.step_cache}")
        return "+".join(on) or "default"


class _TimestepTracker:
    """Records the UNet's current timestep and resets stateful caches when a new denoising run starts.

    Within one run the timestep only falls (a repeated value, as PNDM's first steps have, is the
    same run); a timestep above the last one, or a different latent shape, is a new pipeline call,
    so no cached attention from an earlier image is ever reused.
    """

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet
        self.timestep = 1000
        self._shape: tuple[int, ...] | None = None
        #: The hook registries to reset (filled once the cache's hooks are in place).
        self.registries: list[Any] = []

    def __call__(self, _module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample = args[0] if args else kwargs["sample"]
        raw = args[1] if len(args) > 1 else kwargs["timestep"]
        timestep = int(raw.flatten()[0].item()) if isinstance(raw, torch.Tensor) else int(raw)
        shape = tuple(sample.shape)
        if timestep > self.timestep or shape != self._shape:
            for registry in self.registries:
                registry.reset_stateful_hooks(recurse=False)
        self.timestep, self._shape = timestep, shape

    def current(self) -> int:
        return self.timestep


def _apply_pab(unet: torch.nn.Module) -> int:
    """Pyramid Attention Broadcast on every attention layer of the UNet; returns how many."""
    from diffusers.hooks import PyramidAttentionBroadcastConfig, apply_pyramid_attention_broadcast

    tracker = _TimestepTracker(unet)
    unet.register_forward_pre_hook(tracker, with_kwargs=True)
    config = PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=PAB_SKIP_RANGE,
        cross_attention_block_skip_range=PAB_SKIP_RANGE,
        spatial_attention_timestep_skip_range=PAB_TIMESTEP_RANGE,
        cross_attention_timestep_skip_range=PAB_TIMESTEP_RANGE,
        current_timestep_callback=tracker.current,
    )
    apply_pyramid_attention_broadcast(unet, config)
    tracker.registries = [m._diffusers_hook for m in unet.modules() if hasattr(m, "_diffusers_hook")]
    return len(tracker.registries)


def _apply_tomesd(pipe: Any) -> int:
    """Token merging in the UNet's attention blocks; returns how many blocks were patched."""
    import tomesd

    tomesd.apply_patch(pipe, ratio=TOME_RATIO, max_downsample=TOME_MAX_DOWNSAMPLE)
    return sum(1 for m in pipe.unet.modules() if type(m).__name__.startswith("ToMe"))


def apply_performance(pipe: Any, options: PerformanceOptions, device: str) -> dict[str, Any]:
    """Apply ``options`` to a loaded pipeline (on ``device``) in place; returns what was done.

    Call it once, after the pipelines sharing ``pipe``'s modules are built and before the first
    image. The returned dict (switch -> detail) is for logs and benchmarks.
    """
    done: dict[str, Any] = {}
    on_gpu = not device.startswith("cpu")
    if options.step_cache == "tomesd":
        done["step_cache"] = f"tomesd: {_apply_tomesd(pipe)} blocks"
    elif options.step_cache == "pab":
        done["step_cache"] = f"pab: {_apply_pab(pipe.unet)} attention layers"
    if options.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        done["channels_last"] = True
    if options.vae_tiling:
        pipe.vae.enable_tiling()
        done["vae_tiling"] = True
    if options.vae_slicing:
        pipe.vae.enable_slicing()
        done["vae_slicing"] = True
    if options.cpu_offload:
        if on_gpu:
            pipe.enable_model_cpu_offload(device=device)
            done["cpu_offload"] = True
        else:
            log.warning("cpu_offload ignored: the model already runs on the CPU")
            done["cpu_offload"] = "ignored on the CPU"
    if options.compile_unet:
        pipe.unet.compile()
        done["compile_unet"] = True
    if done:
        log.info("performance switches applied: %s", done)
    return done
