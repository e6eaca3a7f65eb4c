"""DreamBooth-LoRA training of a character on its reference pictures (diffusers + peft + accelerate).

:func:`train_character_lora` fine-tunes a LoRA on the UNet's attention projections
(``to_q``/``to_k``/``to_v``/``to_out.0``), and optionally on the text encoder's, with the DreamBooth
objective of diffusers' ``examples/dreambooth/train_dreambooth_lora.py``: the references are
encoded by the VAE once, and each step noises their latents at a random timestep and teaches the
UNet to predict that noise (or the velocity, for v-prediction models) given the prompt
``"a photo of <token> <class>"``, by mean squared error. AdamW updates the LoRA parameters only.
On CUDA it runs under accelerate's fp16 mixed precision with gradient checkpointing; on the CPU
in float32.

Training never touches the weights the bot serves: the UNet (and text encoder) are copied, the
copy gets the adapter, and the serving pipeline's own LoRAs are switched off while the prompt is
encoded. So a generation job run between two training slices is the same as before training.

Training runs in slices (``stop_after`` steps per call): each call resumes from the checkpoint
in ``checkpoint_dir`` (the LoRA parameters, the optimizer state, the step, the random state and
the losses so far), trains, and writes the checkpoint again, so a job can yield the GPU between
slices, and a restart resumes where the last checkpoint left off. Sliced training gives exactly
the losses an unsliced run gives. The final LoRA is written in diffusers' format (the file
:class:`generation.adapters.LoraAdapters` loads).

:func:`run_training_job` is the queue's ``"train"`` work (see :class:`generation.queue.JobQueue`):
one slice per turn, then the sample image once the last step is done.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps

from generation.errors import FailureForMember, JobCancelled, JobStopped
from rules.request import GenerationRequest
from rules.training import TRAINING_KEY, TrainingSpec, instance_prompt

log = logging.getLogger(__name__)

#: The UNet layers the LoRA adapts (as in diffusers' DreamBooth-LoRA example).
UNET_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
#: The text encoder layers it adapts when the text encoder is trained too.
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
ADAPTER = "character"
CHECKPOINT_FILE = "checkpoint.pt"

#: (step done, total steps, loss of that step).
StepReport = Callable[[int, int, float], None]


@dataclass
class TrainingResult:
    """Where a training call stopped."""

    step: int
    total: int
    #: Every step's loss from the first step (across slices).
    losses: list[float] = field(default_factory=list)
    #: The LoRA file, once every step is done.
    lora_path: Path | None = None

    @property
    def finished(self) -> bool:
        """Whether every step is done and the LoRA is written."""
        return self.lora_path is not None


def _prepare_image(image: Image.Image, resolution: int) -> torch.Tensor:
    """Resize the shorter side to ``resolution``, crop the centre, scale to [-1, 1] (CHW)."""
    fitted = ImageOps.fit(image.convert("RGB"), (resolution, resolution), Image.Resampling.BILINEAR)
    data = torch.frombuffer(bytearray(fitted.tobytes()), dtype=torch.uint8).reshape(resolution, resolution, 3)
    return data.permute(2, 0, 1).float() / 127.5 - 1.0


def _load_images(references: Sequence[Image.Image | str | Path]) -> list[Image.Image]:
    images = []
    for reference in references:
        if isinstance(reference, Image.Image):
            images.append(reference.convert("RGB"))
        else:
            with Image.open(reference) as opened:
                images.append(opened.convert("RGB"))
    return images


def _without_adapters(model: Any) -> Any:
    """A copy of ``model`` for training, without the LoRAs the serving pipeline loaded into it."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    copied = copy.deepcopy(model)
    for module in copied.modules():
        if isinstance(module, BaseTunerLayer):
            for name in list(getattr(module, "lora_A", {})):
                module.delete_adapter(name)
    if "peft_config" in vars(copied):  # the copy starts with no adapter config of its own
        del copied.peft_config
        copied._hf_peft_config_loaded = False
    copied.requires_grad_(False)
    return copied


def _activate(model: Any) -> None:
    """Make the training adapter the one active adapter of every adapted layer (switched on: the
    serving pipeline may have had its LoRAs switched off when the copy was made)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.enable_adapters(True)
            module.set_adapter(ADAPTER)


def _lora_parameters(model: Any) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]


def _write_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (CHECKPOINT_FILE + ".partial")
    torch.save(state, partial)
    os.replace(partial, folder / CHECKPOINT_FILE)


def read_checkpoint(checkpoint_dir: str | Path) -> dict[str, Any] | None:
    """A checkpoint's step, losses and the steps each slice started from (None: no checkpoint)."""
    path = Path(checkpoint_dir) / CHECKPOINT_FILE
    if not path.exists():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return {"step": int(saved["step"]), "losses": list(saved["losses"]), "starts": list(saved.get("starts", []))}


def train_character_lora(
    pipeline: Any,
    references: Sequence[Image.Image | str | Path],
    *,
    token: str,
    output: str | Path,
    class_word: str = "character",
    steps: int = 500,
    rank: int = 4,
    learning_rate: float = 1e-4,
    resolution: int = 512,
    batch_size: int = 1,
    seed: int = 0,
    train_text_encoder: bool = False,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    stop_after: int | None = None,
    should_stop: Callable[[], JobStopped | None] | None = None,
    on_step: StepReport | None = None,
    mixed_precision: str = "auto",
    gradient_checkpointing: str | bool = "auto",
) -> TrainingResult:
    """Train (or go on training) a DreamBooth LoRA of a character; see the module docstring.

    ``pipeline`` is a loaded Stable Diffusion pipeline (its weights are read, never changed).
    ``references`` are images or image files. ``output`` is the ``.safetensors`` file the LoRA
    is saved to once all ``steps`` are done. With ``checkpoint_dir``, training resumes from the
    checkpoint there and writes one every ``checkpoint_every`` steps, at the end of the call, and
    when ``should_stop`` stops it (its exception is then raised). ``stop_after`` ends the call
    after that many steps (a slice). ``mixed_precision``: ``auto`` (fp16 on CUDA, none on the
    CPU), ``fp16``, ``bf16`` or ``no``; ``gradient_checkpointing``: ``auto`` (on for CUDA), ``on``,
    ``off`` or a bool.
    """
    from accelerate import Accelerator
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from diffusers.training_utils import cast_training_params
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    images = _load_images(references)
    if not images:
        raise ValueError("training needs at least one reference image")
    device = torch.device(pipeline.device)
    on_cuda = device.type == "cuda"
    precision = ("fp16" if on_cuda else "no") if mixed_precision == "auto" else mixed_precision
    if precision == "fp16" and not on_cuda:
        precision = "no"  # fp16 autocast is a CUDA feature; the CPU trains in float32
    if isinstance(gradient_checkpointing, bool):
        checkpointing = gradient_checkpointing
    else:
        checkpointing = on_cuda if gradient_checkpointing == "auto" else gradient_checkpointing == "on"
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    saved: dict[str, Any] | None = None
    if folder is not None and (folder / CHECKPOINT_FILE).exists():
        saved = torch.load(folder / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    step = int(saved["step"]) if saved else 0
    losses: list[float] = list(saved["losses"]) if saved else []
    #: The step each call (slice) started from: a resumed job's list goes on, a restarted one's starts over.
    starts: list[int] = [*(saved.get("starts", []) if saved else []), step]
    generator = torch.Generator().manual_seed(seed)
    if saved:
        generator.set_state(saved["rng"])

    accelerator = Accelerator(mixed_precision=precision, cpu=not on_cuda, device_placement=False)
    vae, text_encoder, tokenizer = pipeline.vae, pipeline.text_encoder, pipeline.tokenizer
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    unet = _without_adapters(pipeline.unet)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(UNET_TARGETS)),
        adapter_name=ADAPTER,
    )
    _activate(unet)
    models = [unet]
    trained_encoder: Any = None
    if train_text_encoder:
        trained_encoder = _without_adapters(text_encoder)
        inject_adapter_in_model(
            LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                       target_modules=list(TEXT_ENCODER_TARGETS)),
            trained_encoder, adapter_name=ADAPTER,
        )
        _activate(trained_encoder)
        models.append(trained_encoder)
    # The adapter trains in float32 even where the frozen weights are float16 (the example's cast_training_params).
    cast_training_params(models, dtype=torch.float32)
    if checkpointing:
        unet.enable_gradient_checkpointing()
        if trained_encoder is not None:
            trained_encoder.gradient_checkpointing_enable()
    named = [item for model in models for item in _lora_parameters(model)]
    # peft's "gaussian" init draws from torch's global generator: draw it from the seed instead, so a
    # run is reproducible and the bot's other threads' random state is left alone. B starts at zero.
    init = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in named:
            if "lora_A" in name:
                values = torch.randn(parameter.shape, generator=init) / rank
                parameter.copy_(values.to(parameter.device, parameter.dtype))
    if saved:
        with torch.no_grad():
            for name, parameter in named:
                parameter.copy_(saved["lora"][name].to(parameter.device, parameter.dtype))
    optimizer = torch.optim.AdamW([parameter for _, parameter in named], lr=learning_rate,
                                  betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    if saved:
        optimizer.load_state_dict(saved["optimizer"])
    optimizer = accelerator.prepare_optimizer(optimizer)
    if saved and accelerator.scaler is not None and saved.get("scaler"):
        accelerator.scaler.load_state_dict(saved["scaler"])  # fp16's loss scale goes on from the last slice
    for model in models:
        model.train()

    dtype = vae.dtype
    prompt_ids = tokenizer(
        instance_prompt(token, class_word), padding="max_length", max_length=tokenizer.model_max_length,
        truncation=True, return_tensors="pt",
    ).input_ids.to(device)
    # The serving pipeline's LoRAs must not shape the prompt nor the latents (they are off while it trains).
    if hasattr(pipeline, "disable_lora") and getattr(pipeline.unet, "peft_config", None):
        pipeline.disable_lora()
    with torch.no_grad():
        pixels = torch.stack([_prepare_image(image, resolution) for image in images]).to(device, dtype)
        distribution = vae.encode(pixels).latent_dist
        means, stds = distribution.mean.float(), distribution.std.float()
        frozen_embeddings = None if trained_encoder is not None else text_encoder(prompt_ids)[0]
    scaling = float(vae.config.scaling_factor)
    prediction = scheduler.config.prediction_type

    def state() -> dict[str, Any]:
        return {
            "step": step,
            "losses": losses,
            "starts": starts,
            "rng": generator.get_state(),
            "lora": {name: parameter.detach().to("cpu", torch.float32).clone() for name, parameter in named},
            "optimizer": optimizer.state_dict(),
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
        }

    done_here = 0
    try:
        while step < steps and (stop_after is None or done_here < stop_after):
            if should_stop is not None and (stop := should_stop()) is not None:
                raise stop
            chosen = torch.randint(0, len(images), (batch_size,), generator=generator)
            noise_for_latents = torch.randn(means[chosen].shape, generator=generator)
            latents = (means[chosen] + stds[chosen] * noise_for_latents.to(device)) * scaling
            noise = torch.randn(latents.shape, generator=generator).to(device)
            timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
            timesteps = timesteps.to(device)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            target = scheduler.get_velocity(latents, noise, timesteps) if prediction == "v_prediction" else noise
            with accelerator.autocast():
                if trained_encoder is not None:
                    embeddings = trained_encoder(prompt_ids.expand(batch_size, -1))[0]
                else:
                    assert frozen_embeddings is not None
                    embeddings = frozen_embeddings.expand(batch_size, -1, -1)
                predicted = unet(noisy.to(unet.dtype), timesteps, embeddings.to(unet.dtype)).sample
                loss = torch.nn.functional.mse_loss(predicted.float(), target.float(), reduction="mean")
            accelerator.backward(loss)
            accelerator.clip_grad_norm_([parameter for _, parameter in named], 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            done_here += 1
            losses.append(float(loss.detach().item()))
            if on_step is not None:
                on_step(step, steps, losses[-1])
            if folder is not None and checkpoint_every and step % checkpoint_every == 0 and step < steps:
                _write_checkpoint(folder, state())
    except JobStopped:
        if folder is not None and step > 0:
            _write_checkpoint(folder, state())
        raise
    finally:
        for model in models:
            model.eval()

    if step < steps:
        if folder is not None:
            _write_checkpoint(folder, state())
        return TrainingResult(step=step, total=steps, losses=losses)
    target_file = Path(output)
    target_file.parent.mkdir(parents=True, exist_ok=True)
    unet_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name=ADAPTER))
    encoder_layers = None
    if trained_encoder is not None:
        encoder_layers = convert_state_dict_to_diffusers(
            get_peft_model_state_dict(trained_encoder, adapter_name=ADAPTER)
        )
    StableDiffusionPipeline.save_lora_weights(
        str(target_file.parent), unet_lora_layers=unet_layers, text_encoder_lora_layers=encoder_layers,
        weight_name=target_file.name, safe_serialization=True,
    )
    log.info("LoRA trained in %d steps (loss %.4f -> %.4f): %s", steps, losses[0], losses[-1], target_file)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return TrainingResult(step=step, total=steps, losses=losses, lora_path=target_file)


def run_training_job(engine: Any, request: GenerationRequest, context: Any) -> list[Image.Image] | None:
    """The queue's ``"train"`` work: one slice of a training job on ``engine``'s model.

    Returns None when the slice is done and steps are left (the job goes back in line), or the
    sample image (the request's prompt with the new LoRA) once the LoRA is written. A cancelled
    job's checkpoint is removed; an interrupted one's is kept for the next start.
    """
    from generation.engine import DiffusionEngine

    spec = TrainingSpec.from_dict(request.extra[TRAINING_KEY])
    if not isinstance(engine, DiffusionEngine):
        raise FailureForMember("Training runs on the bot's own GPU only, and this worker is a remote one.")
    missing = [path for path in spec.references if not Path(path).exists()]
    if missing:
        raise FailureForMember(f"{len(missing)} reference picture(s) of {spec.character} are missing from disk.")
    lora = Path(spec.lora_path)
    checkpoint = Path(spec.checkpoint_dir) / CHECKPOINT_FILE
    if not (lora.exists() and not checkpoint.exists()):
        def report(step: int, total: int, loss: float) -> None:
            context.report(step, total, f"Training {spec.character}: step {step}/{total}, loss {loss:.3f}")

        try:
            with engine.exclusive():
                result = train_character_lora(
                    engine.pipeline, spec.references, token=spec.token, output=lora, class_word=spec.class_word,
                    steps=spec.steps, rank=spec.rank, learning_rate=spec.learning_rate,
                    resolution=spec.resolution, batch_size=spec.batch_size, seed=spec.seed,
                    train_text_encoder=spec.train_text_encoder, checkpoint_dir=spec.checkpoint_dir,
                    checkpoint_every=spec.checkpoint_every, stop_after=spec.slice_steps,
                    should_stop=context.should_stop, on_step=report, mixed_precision=spec.mixed_precision,
                    gradient_checkpointing=spec.gradient_checkpointing,
                )
        except JobCancelled:
            shutil.rmtree(spec.checkpoint_dir, ignore_errors=True)
            raise
        finally:
            engine.release_memory()
        if not result.finished:
            return None
    sample = request.replace(extra={key: value for key, value in request.extra.items() if key != TRAINING_KEY})
    return engine.run(sample, should_stop=context.should_stop)
