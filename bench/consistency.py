"""Benchmark: how well each route keeps a comic character the same across panels.

A fixed set, 3 characters x 6 panel prompts, is drawn with each route:

* ``text``: each panel alone, the character's description woven into the prompt (the baseline);
* ``ip_adapter``: each panel alone, conditioned on a reference picture of the character (drawn
  first from its description) through IP-Adapter (``--ip-adapter``; built in-process with ``--tiny``);
* ``consistent_attention``: the 6 panels as one storyboard batch sharing self-attention;
* ``trained_lora``: a LoRA trained on the reference picture(s) by ``generation.training``'s
  ``train_character_lora`` when that module exists; otherwise reported as skipped, with the reason.

Two scores per route, in the spirit of ViStoryBench's metrics:

* **character similarity**: the mean pairwise cosine similarity of the CLIP image embeddings of a
  character's 6 panels (whole panels), averaged over the characters (higher: more alike);
* **prompt adherence**: the mean CLIP text-image cosine of each panel and its panel prompt
  (without the character description), so a route that copies one picture six times loses here.

Run from the repository root::

    python bench/consistency.py --tiny                      # CPU, tiny random model: checks it runs
    python bench/consistency.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --ip-adapter h94/IP-Adapter --clip openai/clip-vit-base-patch32 --steps 30   # a GPU

With the tiny model the numbers mean nothing (random weights); they only show the benchmark
works end to end. With real weights on a GPU they are the product's consistency claim.
Prints a table, then one JSON line (also written to ``--out`` when given).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py is named like the standard library's `queue`: take this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import importlib
import itertools
import json
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

CHARACTERS: tuple[tuple[str, str], ...] = (
    ("Mira", "a red-haired girl in a yellow raincoat"),
    ("Otto", "an old bearded fisherman in a blue knit cap"),
    ("Pip", "a small grey robot with one round green eye"),
)
PANELS: tuple[str, ...] = (
    "{who} standing on a pier at dawn",
    "{who} walking through a busy market",
    "{who} reading a map by candlelight",
    "{who} running in the rain",
    "{who} sitting on a boat at sea",
    "{who} waving goodbye at a train station",
)
ROUTES: tuple[str, ...] = ("text", "ip_adapter", "consistent_attention", "trained_lora")
SEED = 1234
IP_ADAPTER_SCALE = 0.6
SHARED_ATTENTION = 0.5


@dataclass
class RouteResult:
    """One route's scores (None when skipped) and what it cost."""

    route: str
    similarity: float | None = None
    adherence: float | None = None
    per_character: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    images: int = 0
    skipped: str | None = None


@dataclass
class Scorer:
    """CLIP image and text embeddings (unit length)."""

    model: Any
    processor: Any
    tokenizer: Any
    device: str

    def images(self, pictures: Sequence[Image.Image]) -> Any:
        import torch

        pixels = self.processor(images=list(pictures), return_tensors="pt").pixel_values.to(self.device)
        with torch.no_grad():
            embeds = self.model.get_image_features(pixel_values=pixels)
        embeds = getattr(embeds, "pooler_output", embeds)
        return torch.nn.functional.normalize(embeds.float(), dim=-1)

    def texts(self, prompts: Sequence[str]) -> Any:
        import torch

        tokens = self.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.no_grad():
            embeds = self.model.get_text_features(**tokens)
        embeds = getattr(embeds, "pooler_output", embeds)
        return torch.nn.functional.normalize(embeds.float(), dim=-1)


def similarity(scorer: Scorer, pictures: Sequence[Image.Image]) -> float:
    """The mean pairwise cosine of the pictures' image embeddings."""
    embeds = scorer.images(pictures)
    pairs = list(itertools.combinations(range(len(pictures)), 2))
    return float(sum(float(embeds[a] @ embeds[b]) for a, b in pairs) / len(pairs))


def adherence(scorer: Scorer, pictures: Sequence[Image.Image], prompts: Sequence[str]) -> float:
    """The mean cosine of each picture and its prompt."""
    return float((scorer.images(pictures) * scorer.texts(prompts)).sum(dim=-1).mean())


def tiny_scorer(tokenizer_source: Path) -> Scorer:
    """A tiny random CLIP (built in-process) and the tiny model's tokenizer."""
    from transformers import CLIPImageProcessor, CLIPTokenizer

    from generation.tiny_ip_adapter import CLIP_IMAGE_SIZE, build_tiny_clip

    size = CLIP_IMAGE_SIZE
    return Scorer(
        build_tiny_clip().eval(), CLIPImageProcessor(size=size, crop_size=size),
        CLIPTokenizer.from_pretrained(str(tokenizer_source / "tokenizer")), "cpu",
    )


def clip_scorer(name: str, device: str) -> Scorer:
    """A real CLIP model (hub id or folder) for the scores."""
    from transformers import CLIPModel, CLIPProcessor

    processor = CLIPProcessor.from_pretrained(name)
    return Scorer(CLIPModel.from_pretrained(name).to(device).eval(), processor.image_processor,
                  processor.tokenizer, device)


def train_lora_route() -> tuple[Callable[..., Any] | None, str | None]:
    """``generation.training.train_character_lora`` when it exists, else why the route is skipped.

    The one place the trained-LoRA route is wired (see :func:`train_character`).
    """
    try:
        module = importlib.import_module("generation.training")
    except ImportError as error:
        return None, f"generation.training is not available here ({error})"
    function = getattr(module, "train_character_lora", None)
    if not callable(function):
        return None, "generation.training has no train_character_lora"
    return function, None


#: Training steps per character: enough to move the tiny model, the DreamBooth-LoRA example's 500 otherwise.
TINY_TRAIN_STEPS, REAL_TRAIN_STEPS = 40, 500


def train_character(
    trainer: Callable[..., Any], engine: Any, reference: Path, *, number: int, work: Path, steps: int | None = None
) -> tuple[str, Any]:
    """Train a LoRA of one character on its reference picture; return its rare token and the ``LoraUse``."""
    from rules.request import LoraUse
    from rules.training import rare_token

    tiny = engine.native_size <= 64
    token = rare_token(number + 1)
    result = trainer(
        engine.pipeline, [reference], token=token, output=work / f"lora-{number}.safetensors",
        steps=steps or (TINY_TRAIN_STEPS if tiny else REAL_TRAIN_STEPS), learning_rate=2e-2 if tiny else 1e-4,
        resolution=engine.native_size, seed=SEED,
    )
    return token, LoraUse(f"character-{number}", str(result.lora_path), 1.0)


def _request(prompt: str, seed: int, size: int, steps: int, **changes: Any) -> Any:
    from rules.request import GenerationRequest

    return GenerationRequest(prompt=prompt, seed=seed, steps=steps, guidance=7.0, width=size, height=size,
                             **changes)


def run_route(
    route: str, engine: Any, *, steps: int, references: dict[str, str], scorer: Scorer, work: Path,
    has_ip_adapter: bool, characters: Sequence[tuple[str, str]] = CHARACTERS, panels: Sequence[str] = PANELS,
    reference_root: Path | None = None, train_steps: int | None = None,
) -> RouteResult:
    """Draw the set (the fixed 3 x 6 unless told) with one route and score it."""
    result = RouteResult(route)
    size = engine.native_size
    trainer, reason = train_lora_route() if route == "trained_lora" else (None, None)
    if route == "ip_adapter" and not has_ip_adapter:
        result.skipped = "no IP-Adapter weights (--ip-adapter)"
        return result
    if route == "trained_lora" and trainer is None:
        result.skipped = reason
        return result
    sims: list[float] = []
    adh: list[float] = []
    started = time.perf_counter()
    for number, (name, description) in enumerate(characters):
        who = f"{name} ({description})"
        prompts = [template.format(who=who) for template in panels]
        plain = [template.format(who=name) for template in panels]
        seed = SEED + 100 * number
        if route == "consistent_attention":
            board = _request(prompts[0], seed, size, steps, panel_prompts=prompts, count=len(prompts),
                             shared_attention=SHARED_ATTENTION)
            pictures = engine.run(board)
        else:
            extra: dict[str, Any] = {}
            if route == "ip_adapter":
                extra = {"ip_adapter_images": [references[name]], "ip_adapter_scale": IP_ADAPTER_SCALE}
            elif route == "trained_lora":
                assert trainer is not None
                root = reference_root if reference_root is not None else work / "references"
                token, lora = train_character(trainer, engine, root / references[name], number=number, work=work,
                                               steps=train_steps)
                extra = {"loras": (lora,)}
                prompts = [f"{token} character, {prompt}" for prompt in prompts]
            pictures = [engine.run(_request(p, seed + i, size, steps, **extra))[0] for i, p in enumerate(prompts)]
        result.images += len(pictures)
        sims.append(similarity(scorer, pictures))
        result.per_character[name] = round(sims[-1], 4)
        adh.append(adherence(scorer, pictures, plain))
    result.seconds = round(time.perf_counter() - started, 2)
    result.similarity = round(sum(sims) / len(sims), 4)
    result.adherence = round(sum(adh) / len(adh), 4)
    return result


def draw_references(
    engine: Any, folder: Path, steps: int, characters: Sequence[tuple[str, str]] = CHARACTERS
) -> dict[str, str]:
    """One reference picture per character, drawn from its description (paths relative to ``folder``)."""
    paths: dict[str, str] = {}
    for number, (name, description) in enumerate(characters):
        picture = engine.run(_request(f"portrait of {description}, plain background", SEED + 7 + number,
                                      engine.native_size, steps))[0]
        picture.save(folder / f"{name}.png")
        paths[name] = f"{name}.png"
    return paths


def table(results: Sequence[RouteResult]) -> str:
    lines = [f"{'route':<22}{'similarity':>12}{'adherence':>12}{'images':>8}{'seconds':>9}"]
    for r in results:
        if r.skipped:
            lines.append(f"{r.route:<22}  skipped: {r.skipped}")
        else:
            lines.append(f"{r.route:<22}{r.similarity:>12.4f}{r.adherence:>12.4f}{r.images:>8}{r.seconds:>9.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="", help="hub id or folder; empty: --tiny")
    parser.add_argument("--tiny", action="store_true", help="the tiny random model on the CPU (the default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=0, help="steps per image (default: 3 tiny, 30 real)")
    parser.add_argument("--ip-adapter", default="", help="IP-Adapter weights (hub id or folder)")
    parser.add_argument("--ip-adapter-subfolder", default="models")
    parser.add_argument("--ip-adapter-weight-name", default="ip-adapter_sd15.safetensors")
    parser.add_argument("--clip", default="openai/clip-vit-base-patch32", help="CLIP model for the scores (real runs)")
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"comma-separated, of {', '.join(ROUTES)}")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    tiny = args.tiny or not args.model
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    unknown = set(routes) - set(ROUTES)
    if unknown:
        parser.error(f"unknown routes: {', '.join(sorted(unknown))}")


    from generation.engine import DiffusionEngine

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if tiny:
            from generation.tiny_model import save_tiny_pipeline

            model = str(save_tiny_pipeline(work / "tiny-sd"))
            engine = DiffusionEngine(model, device="cpu", dtype="float32")
            steps = args.steps or 3
        else:
            engine = DiffusionEngine(args.model, device=args.device)
            steps = args.steps or 30
        engine.load()
        engine.configure(safety_checker="off")
        references_dir = work / "references"
        references_dir.mkdir()
        has_ip_adapter = False
        if tiny:
            from generation.tiny_ip_adapter import save_tiny_ip_adapter

            source = save_tiny_ip_adapter(work / "ip-adapter", engine.pipeline.unet)
            engine.configure_ip_adapter(source.location, reference_root=references_dir, subfolder=source.subfolder,
                                        weight_name=source.weight_name, image_encoder=source.image_encoder)
            has_ip_adapter = True
            scorer = tiny_scorer(Path(model))
        else:
            if args.ip_adapter:
                engine.configure_ip_adapter(args.ip_adapter, reference_root=references_dir,
                                            subfolder=args.ip_adapter_subfolder,
                                            weight_name=args.ip_adapter_weight_name)
                has_ip_adapter = True
            scorer = clip_scorer(args.clip, engine.device)
        references = draw_references(engine, references_dir, steps)
        results = [
            run_route(route, engine, steps=steps, references=references, scorer=scorer, work=work,
                      has_ip_adapter=has_ip_adapter)
            for route in routes
        ]
    print(f"consistency: {len(CHARACTERS)} characters x {len(PANELS)} panels, model "
          f"{'tiny (random weights: the numbers mean nothing)' if tiny else args.model}, {steps} steps")
    print(table(results))
    summary = {
        "model": "tiny" if tiny else args.model,
        "device": engine.device,
        "steps": steps,
        "python": platform.python_version(),
        "routes": {r.route: {k: v for k, v in r.__dict__.items() if k != "route"} for r in results},
    }
    line = json.dumps(summary, sort_keys=True)
    print(line)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
