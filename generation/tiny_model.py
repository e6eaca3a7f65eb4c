"""Build tiny, random-weight Stable Diffusion pipelines (SD 1.x- and SDXL-shaped) and save them as diffusers folders.

It uses the real diffusers and transformers classes (UNet2DConditionModel, AutoencoderKL,
CLIPTextModel, a CLIP tokenizer built in code, a scheduler), so everything the bot does with it
goes through the same code path as a real checkpoint, only at 64x64 and in well under a second
per image on a CPU. Tests build it at start; an operator can build it to check an install
without downloading gigabytes::

    python -m generation.tiny_model models/tiny-sd
    python -m generation.tiny_model --sdxl --seed 1 models/tiny-sdxl

and then set ``[model] id = "models/tiny-sd"`` (or ``[models.NAME] id = ...``) in ``config.toml``.
The SDXL-shaped one has SDXL's parts (two text encoders, the second with a projection, a UNet
conditioned on the pooled text and the image size: ``addition_embed_type = "text_time"``), so
diffusers loads it as a ``StableDiffusionXLPipeline``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

SEED = 0
TOKENIZER_MAX_LENGTH = 77


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table, which CLIP's BPE works on."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes, strict=True)}


def _vocabulary() -> tuple[dict[str, int], list[str]]:
    """A small byte-level BPE vocabulary: every single character, its end-of-word form, a few merges."""
    base = list(_bytes_to_unicode().values())
    tokens = base + [f"{ch}</w>" for ch in base]
    merges: list[str] = []
    for word in ("the", "cat", "dog", "and", "with", "ing"):
        for i in range(1, len(word)):
            left, right = word[:i], word[i]
            merged = left + right
            if merged not in tokens:
                merges.append(f"{left} {right}")
                tokens.append(merged)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    return vocab, merges


def build_tokenizer(folder: Path) -> Any:
    """Write a tiny CLIP tokenizer (vocab.json + merges.txt) into ``folder`` and load it."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocabulary()
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": TOKENIZER_MAX_LENGTH, "tokenizer_class": "CLIPTokenizer"}),
        encoding="utf-8",
    )
    return CLIPTokenizer.from_pretrained(str(folder))


def _tiny_vae(**extra: Any) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
        **extra,
    )


def _tiny_text_config(tokenizer: Any, **extra: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=TOKENIZER_MAX_LENGTH,
        **extra,
    )


def _tiny_scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_tiny_sdxl_pipeline(seed: int = SEED) -> Any:
    """Return a freshly built tiny StableDiffusionXLPipeline with random weights seeded by ``seed``."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    time_embed_dim = 8
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        transformer_layers_per_block=(1, 1),
        # Six size numbers (original size, crop, target size) embedded, plus the pooled text (32).
        projection_class_embeddings_input_dim=6 * time_embed_dim + 32,
        # The two text encoders' hidden states side by side (32 + 32).
        cross_attention_dim=64,
        norm_num_groups=32,
    )
    vae = _tiny_vae(scaling_factor=0.13025, force_upcast=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp) / "one")
        tokenizer_2 = build_tokenizer(Path(tmp) / "two")
    text_encoder = CLIPTextModel(_tiny_text_config(tokenizer))
    text_encoder_2 = CLIPTextModelWithProjection(_tiny_text_config(tokenizer_2, projection_dim=32))
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=_tiny_scheduler(),
    )


def build_tiny_pipeline(seed: int = SEED) -> Any:
    """Return a freshly built tiny StableDiffusionPipeline with random weights seeded by ``seed``."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=32,
    )
    vae = _tiny_vae()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp))
    text_encoder = CLIPTextModel(_tiny_text_config(tokenizer))
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=_tiny_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(folder: Path, seed: int = SEED, *, sdxl: bool = False) -> Path:
    """Build a tiny pipeline (SDXL-shaped with ``sdxl``) and save it as a diffusers folder at ``folder``."""
    folder = Path(folder)
    pipe = build_tiny_sdxl_pipeline(seed) if sdxl else build_tiny_pipeline(seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_lora(folder: Path, *, seed: int = 1, rank: int = 4, scale: float = 0.5) -> Path:
    """Write a random LoRA for the tiny UNet's attention layers (diffusers' LoRA format); return its file.

    For tests and the playground: a real peft adapter, as ``save_lora_weights`` writes it, whose
    weights are drawn from ``seed`` (``scale`` is their standard deviation, so it visibly changes images).
    """
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    pipe = build_tiny_pipeline()
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_k", "to_q", "to_v", "to_out.0"])
    pipe.unet.add_adapter(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in pipe.unet.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    folder = Path(folder)
    StableDiffusionPipeline.save_lora_weights(str(folder), unet_lora_layers=layers, safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m generation.tiny_model FOLDER``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folder", type=Path, help="where to write the diffusers folder")
    parser.add_argument("--sdxl", action="store_true", help="an SDXL-shaped pipeline (two text encoders)")
    parser.add_argument("--seed", type=int, default=SEED, help="seeds the random weights")
    args = parser.parse_args(argv)
    save_tiny_pipeline(args.folder, args.seed, sdxl=args.sdxl)
    print(f"tiny model written to {args.folder}; set [model] id = \"{args.folder}\" in config.toml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
