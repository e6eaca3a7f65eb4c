"""Textual-inversion embeddings on the tiny model: loaded once at start, used by their token, nothing else changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from generation.engine import DiffusionEngine
from generation.errors import ModelLoadError
from generation.prompt_encoding import PromptEncoder
from rules.loras import EmbeddingConfig
from rules.request import GenerationRequest

BASE = GenerationRequest(prompt="a red cat on a hat", seed=9, steps=3, guidance=12.0, width=64, height=64)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def save_embedding(path: Path, vectors: int, seed: int) -> tuple[Path, torch.Tensor]:
    """A textual-inversion file as the web UI saves it (``emb_params``: one 32-wide row per vector)."""
    vector = torch.randn(vectors, 32, generator=torch.Generator().manual_seed(seed)) * 2.0
    save_file({"emb_params": vector}, str(path))
    return path, vector


@pytest.fixture
def own_engine(tiny_model_dir: Path) -> DiffusionEngine:
    """An engine of its own: embeddings add tokens to its tokenizer, and the shared one stays untouched."""
    loaded = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32")
    loaded.load()
    return loaded


def test_the_token_changes_the_image_and_a_prompt_without_it_is_unchanged(
    own_engine: DiffusionEngine, tmp_path: Path
) -> None:
    before_embeds = own_engine.encode_prompts([BASE.prompt], [""])["prompt_embeds"]
    before = pixels(own_engine.run(BASE)[0])
    path, vector = save_embedding(tmp_path / "grain.safetensors", 1, seed=4)
    own_engine.load_embeddings({
        "grain": EmbeddingConfig(source=str(path), token="<grain>"),
        "xl-grain": EmbeddingConfig(source=str(tmp_path / "absent.safetensors"), token="<xl>", family="sdxl"),
    })
    assert own_engine.embeddings == {"grain": "<grain>"}  # the SDXL one is not for this model
    pipe = own_engine.pipeline
    token_id = pipe.tokenizer.convert_tokens_to_ids("<grain>")
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[token_id], vector[0])
    # Without the token: the same embeddings and pixels as before it was loaded.
    assert torch.equal(own_engine.encode_prompts([BASE.prompt], [""])["prompt_embeds"], before_embeds)
    assert np.array_equal(pixels(own_engine.run(BASE)[0]), before)
    # With it: other conditioning, another image.
    with_token = BASE.replace(prompt="a red cat on a hat, <grain>")
    assert not torch.equal(own_engine.encode_prompts([with_token.prompt], [""])["prompt_embeds"], before_embeds)
    assert (pixels(own_engine.run(with_token)[0]) != before).mean() > 0.1


def test_a_multi_vector_embedding_takes_one_position_per_vector(own_engine: DiffusionEngine, tmp_path: Path) -> None:
    path, vectors = save_embedding(tmp_path / "wide.safetensors", 3, seed=5)
    own_engine.load_embeddings({"wide": EmbeddingConfig(source=str(path), token="<wide>")})
    tokenizer = own_engine.pipeline.tokenizer
    ids = tokenizer.convert_tokens_to_ids(["<wide>", "<wide>_1", "<wide>_2"])
    rows = own_engine.pipeline.text_encoder.get_input_embeddings().weight
    assert torch.equal(rows[ids], vectors)
    # compel's textual-inversion manager expands <wide> into its 3 tokens, one position per vector.
    words = tokenizer("a cat", add_special_tokens=False).input_ids
    read = PromptEncoder(own_engine.pipeline).token_ids("a cat <wide>")
    assert read[: 1 + len(words) + 4] == [tokenizer.bos_token_id, *words, *ids, tokenizer.eos_token_id]
    plain = own_engine.encode_prompts(["a cat"], [""])["prompt_embeds"][0]
    widened = own_engine.encode_prompts(["a cat <wide>"], [""])["prompt_embeds"][0]
    # The text encoder is causal: the words before the token keep their embeddings, the token's differ.
    assert torch.equal(plain[: 1 + len(words)], widened[: 1 + len(words)])
    assert not torch.equal(plain[1 + len(words)], widened[1 + len(words)])


def test_a_file_that_cannot_be_loaded_names_its_table(own_engine: DiffusionEngine, tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match=r"embeddings\.broken"):
        own_engine.load_embeddings({"broken": EmbeddingConfig(source=str(broken), token="<broken>")})
