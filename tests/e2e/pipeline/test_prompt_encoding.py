"""compel on the tiny model: plain prompts unchanged, A1111 weights where and how expected, long prompts in full."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from generation.engine import DiffusionEngine
from rules.request import GenerationLimits, GenerationRequest, validate

BASE = GenerationRequest(prompt="a red cat on a hat", seed=11, steps=3, guidance=5.0, width=64, height=64)
#: Far past CLIP's 77 tokens on the tiny tokenizer (which splits words into many pieces).
HEAD = ", ".join(["a castle on a hill"] * 30)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def embeds(engine: DiffusionEngine, prompt: str) -> torch.Tensor:
    return engine.encode_prompts([prompt], [""])["prompt_embeds"][0]


def token_span(engine: DiffusionEngine, before: str, word: str) -> range:
    """Positions of ``word``'s tokens when it follows ``before`` (after the start token)."""
    tokenizer = engine.pipeline.tokenizer
    start = 1 + len(tokenizer(before, add_special_tokens=False).input_ids)
    return range(start, start + len(tokenizer(word, add_special_tokens=False).input_ids))


def test_a_plain_prompt_encodes_exactly_as_the_pipelines_own_string_path(engine: DiffusionEngine) -> None:
    pipe = engine.pipeline
    own, own_negative = pipe.encode_prompt(BASE.prompt, "cpu", 1, True, "")
    ours = engine.encode_prompts([BASE.prompt], [""])
    assert torch.equal(ours["prompt_embeds"], own)
    assert torch.equal(ours["negative_prompt_embeds"], own_negative)
    # And the same pixels as a run that hands the pipeline the strings (seeds stay reproducible).
    from_strings = pipe(
        prompt=BASE.prompt, negative_prompt="", num_inference_steps=BASE.steps, guidance_scale=BASE.guidance,
        width=64, height=64, generator=torch.Generator().manual_seed(BASE.seed), output_type="pil",
    ).images[0]
    assert np.array_equal(pixels(engine.run(BASE)[0]), pixels(from_strings))


def test_an_upweighted_word_is_scaled_at_its_own_positions_only(engine: DiffusionEngine) -> None:
    plain = embeds(engine, "a red cat")
    weighted = embeds(engine, "a (red:1.5) cat")
    empty = embeds(engine, "")
    span = token_span(engine, "a", "red")
    changed = [i for i in range(plain.shape[0]) if not torch.equal(plain[i], weighted[i])]
    assert changed == list(span)
    # compel scales the word's distance from the empty prompt's embedding by the weight.
    for i in span:
        torch.testing.assert_close(weighted[i] - empty[i], 1.5 * (plain[i] - empty[i]))
    # (red) is 1.1, ((red)) 1.21: the same direction, further each time.
    once, twice = embeds(engine, "a (red) cat"), embeds(engine, "a ((red)) cat")
    for i in span:
        torch.testing.assert_close(once[i] - empty[i], 1.1 * (plain[i] - empty[i]))
        torch.testing.assert_close(twice[i] - empty[i], 1.21 * (plain[i] - empty[i]))


def test_square_brackets_down_weight(engine: DiffusionEngine) -> None:
    plain = embeds(engine, "a red cat")
    down = embeds(engine, "a [red] cat")
    lower = embeds(engine, "a (red:0.5) cat")
    gone = embeds(engine, "a (red:0.0) cat")
    # Down-weighting moves the prompt towards one without the word: more the lower the weight.
    distances = [float((plain - other).norm()) for other in (down, lower, gone)]
    assert 0 < distances[0] < distances[1] < distances[2]
    # ...and not in the up-weight's way: [red] differs from (red) and from (red:1.1).
    assert not torch.allclose(down, embeds(engine, "a (red) cat"))


def test_weights_change_the_pixels(engine: DiffusionEngine) -> None:
    # The tiny random text encoder steers its UNet weakly: a high guidance makes the change visible
    # (measured: about 31% of the pixel values move at guidance 12, 15% at 5).
    strong = BASE.replace(guidance=12.0)
    plain = pixels(engine.run(strong)[0])
    weighted = pixels(engine.run(strong.replace(prompt="a (red:1.6) cat on a [hat]"))[0])
    assert (plain != weighted).mean() > 0.1


def test_a_long_prompt_is_encoded_in_full_and_its_tail_counts(engine: DiffusionEngine) -> None:
    tokens = engine.count_tokens(HEAD + ", a red cat")
    assert tokens > 150
    # Validation no longer refuses it (only the character cap applies).
    validate(BASE.replace(prompt=HEAD + ", a red cat"), GenerationLimits())
    one, other = embeds(engine, HEAD + ", a red cat"), embeds(engine, HEAD + ", a blue dog")
    assert one.shape[0] >= 3 * 77 and one.shape[0] % 77 == 0
    assert not torch.equal(one, other)
    # The first chunk is the same: only the tail differs (the words past token 77).
    torch.testing.assert_close(one[:77], other[:77])
    # The pipeline's own string path cuts at 77 tokens: the tails would have made no difference.
    pipe = engine.pipeline
    cut_one = pipe.encode_prompt(HEAD + ", a red cat", "cpu", 1, False)[0]
    cut_other = pipe.encode_prompt(HEAD + ", a blue dog", "cpu", 1, False)[0]
    assert torch.equal(cut_one, cut_other)
    # And the images differ by their tails.
    long_one = pixels(engine.run(BASE.replace(prompt=HEAD + ", a red cat"))[0])
    long_other = pixels(engine.run(BASE.replace(prompt=HEAD + ", a blue dog"))[0])
    assert np.abs(long_one - long_other).mean() > 0.1


def test_a_long_prompt_next_to_a_short_one_in_a_batch_changes_neither(
    engine: DiffusionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = BASE
    long = BASE.replace(prompt=HEAD + ", a red cat", seed=12)
    alone = [pixels(engine.run(short)[0]), pixels(engine.run(long)[0])]
    calls: list[int] = []
    generate = engine._generate

    def counting(requests, *args):  # type: ignore[no-untyped-def]
        calls.append(len(requests))
        return generate(requests, *args)

    monkeypatch.setattr(engine, "_generate", counting)
    together = engine.run_batch([short, long], [None, None])
    # Padding the short prompt to the long one's length would change its image: one call per length.
    assert calls == [1, 1]
    assert [len(images) for images in together] == [1, 1]
    for images, expected in zip(together, alone, strict=True):
        assert np.abs(pixels(images[0]) - expected).max() <= 1


def test_two_prompts_of_one_length_still_share_a_call(engine: DiffusionEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    generate = engine._generate

    def counting(requests, *args):  # type: ignore[no-untyped-def]
        calls.append(len(requests))
        return generate(requests, *args)

    monkeypatch.setattr(engine, "_generate", counting)
    engine.run_batch([BASE, BASE.replace(prompt="a (blue:1.2) dog", seed=3)], [None, None])
    assert calls == [2]


def test_img2img_takes_the_embeddings_too(engine: DiffusionEngine, tmp_path: Path) -> None:
    source = Image.new("RGB", (64, 64), (200, 40, 40))
    request = BASE.replace(kind="img2img", init_image="x.png", strength=0.7)
    plain = pixels(engine.run(request, init_image=source)[0])
    weighted = pixels(engine.run(request.replace(prompt=HEAD + ", (red:1.5) cat"), init_image=source)[0])
    assert plain.shape == weighted.shape == (64, 64, 3)
    assert np.abs(plain - weighted).mean() > 0.1


@pytest.mark.parametrize(
    "prompt",
    ["(cat:-5)", "(cat:1000)", "(((((((((((cat)))))))))))", "(:1.2)", "()", "[]", "(cat:0)", "\\", ":",
     "((a:1.2):0.5)", "a (cat", "a cat]"],
)
def test_odd_syntax_encodes_to_finite_embeddings(engine: DiffusionEngine, prompt: str) -> None:
    out = engine.encode_prompts([prompt], [""])
    assert out["prompt_embeds"].shape == (1, 77, 32)
    assert bool(torch.isfinite(out["prompt_embeds"]).all())
