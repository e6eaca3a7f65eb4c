"""Consistent self-attention across the images of one batch (StoryDiffusion's training-free method).

A storyboard draws its panels as one batch. In the UNet's up blocks, each image's self-attention
reads its own tokens *plus* a sample of the other images' tokens (``rate`` of them, 0.5 in
StoryDiffusion), so a character's face, hair and clothes drift toward one shared look across the
panels without any training. The sample is drawn from a ``torch.Generator`` seeded from the
request's seed, in the fixed order the layers run, so the same storyboard with the same seeds
gives the same pixels. Classifier-free guidance doubles the batch (unconditional half, then the
conditional half): each half is coupled within itself, never across.

:func:`consistent_attention` installs the processor for one pipeline call and restores the
processors that were there before, whatever happens (the engine holds its lock around it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

#: StoryDiffusion's default share of the other images' tokens each image attends to.
DEFAULT_RATE = 0.5


class ConsistentSelfAttention:
    """A diffusers attention processor for a self-attention layer: each image of a group of
    ``images`` also attends to a seeded random sample of the other images' tokens.

    A batch that is not a whole number of groups (never the case under :func:`consistent_attention`)
    falls back to plain self-attention.
    """

    def __init__(self, images: int, rate: float, generator: torch.Generator) -> None:
        self.images = images
        self.rate = rate
        self.generator = generator

    def _sample(self, tokens: int, device: torch.device) -> list[torch.Tensor]:
        """For each image, which of the other images' tokens (indices into their concatenation) it reads."""
        pool = (self.images - 1) * tokens
        keep = round(self.rate * pool)
        return [
            torch.randperm(pool, generator=self.generator)[:keep].to(device) for _ in range(self.images)
        ]

    def _context(self, hidden: torch.Tensor) -> torch.Tensor:
        """Each image's own tokens followed by its sample of the others' (same sample for both CFG halves)."""
        batch, tokens, _ = hidden.shape
        picks = self._sample(tokens, hidden.device)
        contexts: list[torch.Tensor] = []
        for start in range(0, batch, self.images):
            group = hidden[start : start + self.images]
            for i in range(self.images):
                others = torch.cat([group[j] for j in range(self.images) if j != i], dim=0)
                contexts.append(torch.cat([group[i], others[picks[i]]], dim=0))
        return torch.stack(contexts)

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Self-attention whose keys and values also come from the sampled tokens of the other images."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        coupled = encoder_hidden_states is None and self.images > 1 and batch % self.images == 0
        source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        context = self._context(hidden_states) if coupled else source

        query = attn.to_q(hidden_states)
        key = attn.to_k(context)
        value = attn.to_v(context)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        mask = None
        if attention_mask is not None and not coupled:
            mask = attn.prepare_attention_mask(attention_mask, key.shape[2], batch)
            mask = mask.view(batch, attn.heads, -1, mask.shape[-1])
        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def coupled_layers(unet: Any) -> list[str]:
    """The processor names that get consistent attention: the self-attention layers of the up blocks."""
    return [name for name in unet.attn_processors if name.startswith("up_blocks") and ".attn1." in name]


@contextlib.contextmanager
def consistent_attention(unet: Any, *, images: int, rate: float, seed: int) -> Iterator[int]:
    """Couple the self-attention of ``images`` images for the calls made inside; yields the layer count.

    The processors in place before are put back on exit, even when the call fails or is cancelled.
    """
    saved = dict(unet.attn_processors)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    processor = ConsistentSelfAttention(images, rate, generator)
    names = coupled_layers(unet)
    unet.set_attn_processor({name: processor if name in names else current for name, current in saved.items()})
    log.debug("consistent attention on %d layers for %d images (rate %.2f)", len(names), images, rate)
    try:
        yield len(names)
    finally:
        unet.set_attn_processor(saved)
