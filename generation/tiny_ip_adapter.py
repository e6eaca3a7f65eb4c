"""A tiny random-weight IP-Adapter and CLIP model, shaped for :mod:`generation.tiny_model`'s UNet.

Tests and ``bench/consistency.py --tiny`` build them in-process (nothing is downloaded): the
IP-Adapter is saved in the layout diffusers' ``load_ip_adapter`` reads (``FOLDER/SUBFOLDER/WEIGHTS``
with ``image_proj.*`` and ``ip_adapter.*`` keys, the CLIP vision encoder in
``FOLDER/SUBFOLDER/image_encoder``), so the engine loads it exactly as it loads a real one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generation.ip_adapter import IpAdapterSource

SEED = 1
#: The tiny CLIP's image side and its embedding width.
CLIP_IMAGE_SIZE = 32
PROJECTION_DIM = 16


def _clip_configs() -> tuple[Any, Any]:
    from transformers import CLIPTextConfig, CLIPVisionConfig

    from generation.tiny_model import TOKENIZER_MAX_LENGTH, _vocabulary

    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        image_size=CLIP_IMAGE_SIZE, patch_size=4, projection_dim=PROJECTION_DIM,
    )
    vocab, _ = _vocabulary()
    text = CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=len(vocab), max_position_embeddings=TOKENIZER_MAX_LENGTH, projection_dim=PROJECTION_DIM,
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    return vision, text


def build_tiny_image_encoder() -> Any:
    """A tiny ``CLIPVisionModelWithProjection`` with seeded random weights."""
    import torch
    from transformers import CLIPVisionModelWithProjection

    torch.manual_seed(SEED)
    return CLIPVisionModelWithProjection(_clip_configs()[0])


def build_tiny_clip() -> Any:
    """A tiny ``CLIPModel`` (text and vision, seeded random weights) for the benchmark's scores."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(SEED)
    vision, text = _clip_configs()
    return CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                projection_dim=PROJECTION_DIM))


def tiny_ip_adapter_state(unet: Any, *, image_embed_dim: int = PROJECTION_DIM, std: float = 0.5) -> dict[str, Any]:
    """IP-Adapter weights for ``unet``: the image projection and each cross-attention layer's
    ``to_k_ip``/``to_v_ip``, numbered as diffusers numbers them (1, 3, 5, ... in processor order)."""
    import torch

    generator = torch.Generator().manual_seed(SEED)
    cross = int(unet.config.cross_attention_dim)
    channels = list(unet.config.block_out_channels)

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * std

    state: dict[str, Any] = {
        "image_proj": {
            "proj.weight": random(4 * cross, image_embed_dim),
            "proj.bias": random(4 * cross),
            "norm.weight": torch.ones(cross),
            "norm.bias": torch.zeros(cross),
        },
        "ip_adapter": {},
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        state["ip_adapter"][f"{key_id}.to_k_ip.weight"] = random(hidden, cross)
        state["ip_adapter"][f"{key_id}.to_v_ip.weight"] = random(hidden, cross)
        key_id += 2
    return state


def save_tiny_ip_adapter(folder: Path, unet: Any) -> IpAdapterSource:
    """Write a tiny IP-Adapter for ``unet`` (and its image encoder) under ``folder``; return its source."""
    from safetensors.torch import save_file

    source = IpAdapterSource(location=str(folder), subfolder="models", weight_name="ip-adapter_tiny.safetensors")
    target = Path(folder) / source.subfolder
    target.mkdir(parents=True, exist_ok=True)
    state = tiny_ip_adapter_state(unet)
    flat = {
        f"{group}.{key}": tensor.contiguous() for group, tensors in state.items() for key, tensor in tensors.items()
    }
    save_file(flat, str(target / source.weight_name))
    build_tiny_image_encoder().save_pretrained(str(target / source.image_encoder))
    return source
