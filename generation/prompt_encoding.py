"""Prompts to text embeddings with compel: A1111 weights, prompts past 77 tokens, SDXL's two encoders.

:class:`PromptEncoder` wraps one pipeline's tokenizer(s) and text encoder(s) in compel
(``truncate_long_prompts=False``: a long prompt is encoded in 77-token chunks, none of it cut).
The text is first freed of ``<lora:...>`` tags (:func:`rules.loras.strip_lora_tags`), then split
into weighted runs (:func:`rules.prompt_weights.weighted_fragments`), which compel turns into
embeddings. Every image of a batch gets its own row; positive and negative rows are padded to one
length with the empty prompt's embedding, as compel's own padding does.

For SDXL both encoders run (penultimate hidden states, not normalised, concatenated), and the second
gives the pooled embedding. An empty negative prompt is the empty text's embedding, as the bot has
always passed ``""`` (the SDXL pipeline zeroes only a missing one, ``force_zeros_for_empty_prompt``).

Rows of different lengths would have to be padded, which changes the shorter prompt's image, so the
engine runs requests of different lengths (:meth:`PromptEncoder.length`) as separate pipeline calls.

A prompt without weights gives the same embedding as the pipeline's own string path: compel skips
weighting when every weight is 1 and pads the 77 tokens the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from rules.loras import strip_lora_tags
from rules.prompt_weights import weighted_fragments

log = logging.getLogger(__name__)


def encoder_text(prompt: str) -> list[tuple[str, float]]:
    """The weighted runs the encoder reads for ``prompt`` (tags removed)."""
    return weighted_fragments(strip_lora_tags(prompt))


class PromptEncoder:
    """compel over one pipeline's text encoder(s); pipelines made with ``from_pipe`` share it."""

    def __init__(self, pipe: Any) -> None:
        from compel import Compel, DiffusersTextualInversionManager, ReturnedEmbeddingsType

        self.sdxl = getattr(pipe, "text_encoder_2", None) is not None
        manager = DiffusersTextualInversionManager(pipe) if getattr(pipe, "tokenizer", None) is not None else None
        self._compels: list[Any] = []
        if self.sdxl:
            kind = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
            if getattr(pipe, "text_encoder", None) is not None:  # the refiner has only the second encoder
                self._compels.append(Compel(
                    tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, returned_embeddings_type=kind,
                    textual_inversion_manager=manager, truncate_long_prompts=False,
                ))
            self._compels.append(Compel(
                tokenizer=pipe.tokenizer_2, text_encoder=pipe.text_encoder_2, returned_embeddings_type=kind,
                truncate_long_prompts=False, requires_pooled=True,
            ))
        else:
            self._compels.append(Compel(
                tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, textual_inversion_manager=manager,
                truncate_long_prompts=False,
            ))
        self._empty: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def _one(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One prompt's embeddings ``[1, 77*k, dim]`` (and the pooled ``[1, dim2]`` for SDXL)."""
        from compel.prompt_parser import Conjunction, FlattenedPrompt

        runs = encoder_text(prompt)
        flat = FlattenedPrompt(list(runs))
        parts: list[torch.Tensor] = []
        pooled: torch.Tensor | None = None
        for compel in self._compels:
            conditioning, _ = compel.build_conditioning_tensor_for_conjunction(Conjunction([flat]))
            parts.append(conditioning)
            if compel.requires_pooled:
                words = " ".join(text for text, _ in runs)
                pooled = compel.conditioning_provider.get_pooled_embeddings([words], device=compel.device)
        if len(parts) > 1:
            parts = self._pad(parts, [self._empty_part(i) for i in range(len(parts))])
        return torch.cat(parts, dim=-1), pooled

    def token_ids(self, prompt: str, encoder: int = 0) -> list[int]:
        """The token ids one encoder reads for ``prompt``: start and end markers and padding in each
        77-token chunk, textual-inversion tokens expanded to one id per vector."""
        runs = encoder_text(prompt)
        texts, weights = [text for text, _ in runs], [weight for _, weight in runs]
        provider = self._compels[encoder].conditioning_provider
        ids = provider.get_token_ids_and_expand_weights(texts, weights, device="cpu")[0]
        return [int(i) for i in ids.tolist()]

    def length(self, prompt: str) -> int:
        """How many token positions ``prompt`` encodes to (77 per chunk), from its tokens alone."""
        return max(len(self.token_ids(prompt, index)) for index in range(len(self._compels)))

    def _empty_part(self, index: int) -> torch.Tensor:
        from compel.prompt_parser import Conjunction, FlattenedPrompt

        conditioning, _ = self._compels[index].build_conditioning_tensor_for_conjunction(
            Conjunction([FlattenedPrompt([("", 1.0)])])
        )
        return conditioning

    def _empty_prompt(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._empty is None:
            self._empty = self._one("")
        return self._empty

    @staticmethod
    def _pad(tensors: list[torch.Tensor], fillers: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Each tensor lengthened to the longest by repeating its filler (one empty 77-token chunk)."""
        longest = max(t.shape[1] for t in tensors)
        out = []
        for tensor, filler in zip(tensors, fillers, strict=True):
            missing = (longest - tensor.shape[1]) // filler.shape[1]
            if missing:
                tensor = torch.cat([tensor, filler.to(tensor.dtype).repeat(1, missing, 1)], dim=1)
            out.append(tensor)
        return out

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], negatives: Sequence[str]) -> dict[str, torch.Tensor]:
        """The pipeline arguments for one row per image: ``prompt_embeds``, ``negative_prompt_embeds``
        (and ``pooled_prompt_embeds``, ``negative_pooled_prompt_embeds`` for SDXL)."""
        if len(prompts) != len(negatives):
            raise ValueError("one negative prompt per prompt")
        cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

        def embed(text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
            if text not in cache:
                cache[text] = self._one(text)
            return cache[text]

        positive = [embed(text) for text in prompts]
        negative = [embed(text) for text in negatives]
        empty = self._empty_prompt()[0]
        rows = self._pad([p for p, _ in positive] + [n for n, _ in negative], [empty] * (2 * len(prompts)))
        count = len(prompts)
        embeds, negative_embeds = torch.cat(rows[:count]), torch.cat(rows[count:])
        out = {"prompt_embeds": embeds, "negative_prompt_embeds": negative_embeds}
        if self.sdxl:
            out["pooled_prompt_embeds"] = torch.cat([p for _, p in positive if p is not None])
            out["negative_pooled_prompt_embeds"] = torch.cat([p for _, p in negative if p is not None])
        return out
