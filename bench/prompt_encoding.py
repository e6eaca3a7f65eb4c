"""Benchmark prompt encoding: the pipeline's own string path against compel (plain, weighted, long prompts).

    python bench/prompt_encoding.py             # the tiny model's text encoder (32 wide, 2 layers)
    python bench/prompt_encoding.py --sd15      # an SD 1.5-sized CLIP text encoder (768 wide, 12 layers),
                                                # random weights, over the tiny tokenizer

Runs on the CPU (one thread) unless --device is given. Prints one JSON object: the median
milliseconds per encode (prompt and negative, as a job does) for each case, and the largest
difference between compel's embedding of a plain prompt and the pipeline's own (0.0: identical).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# bench/queue.py is named like the standard library's `queue`: take this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from generation.prompt_encoding import PromptEncoder
from generation.tiny_model import build_tiny_pipeline

PLAIN = "a lighthouse at dusk, fog rolling over the rocks, oil painting"
WEIGHTED = "a (lighthouse:1.3) at dusk, [fog] rolling over the ((rocks)), oil painting"
LONG = ", ".join(["a lighthouse at dusk with fog rolling over the rocks"] * 8)


def sd15_sized(pipe: Any) -> Any:
    """The tiny pipeline with an SD 1.5-sized text encoder (random weights; timing only)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = pipe.tokenizer
    pipe.text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
        vocab_size=len(tokenizer), max_position_embeddings=77,
    )).eval()
    return pipe


def median_ms(call: Any, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sd15", action="store_true", help="an SD 1.5-sized text encoder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    pipe = build_tiny_pipeline()
    if args.sd15:
        pipe = sd15_sized(pipe)
    pipe = pipe.to(args.device)
    encoder = PromptEncoder(pipe)
    tokens = {name: len(pipe.tokenizer(text).input_ids) for name, text in (("plain", PLAIN), ("long", LONG))}

    def own(text: str) -> Any:
        with torch.no_grad():
            return pipe.encode_prompt(text, args.device, 1, True, "")

    own_embeds = own(PLAIN)[0]
    ours = encoder.encode([PLAIN], [""])["prompt_embeds"]
    result = {
        "text_encoder": "sd15-sized" if args.sd15 else "tiny",
        "device": args.device,
        "tokens": tokens,
        "pipeline_plain_ms": median_ms(lambda: own(PLAIN), args.repeats),
        "compel_plain_ms": median_ms(lambda: encoder.encode([PLAIN], [""]), args.repeats),
        "compel_weighted_ms": median_ms(lambda: encoder.encode([WEIGHTED], [""]), args.repeats),
        "compel_long_ms": median_ms(lambda: encoder.encode([LONG], [""]), args.repeats),
        "long_positions": int(encoder.encode([LONG], [""])["prompt_embeds"].shape[1]),
        "plain_max_abs_difference": float((ours - own_embeds).abs().max()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
