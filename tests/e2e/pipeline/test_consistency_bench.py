"""bench/consistency.py stays working: each route draws and is scored with the tiny model and a tiny CLIP."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from generation.engine import DiffusionEngine
from generation.tiny_ip_adapter import save_tiny_ip_adapter

REPO = Path(__file__).resolve().parents[3]


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_consistency", REPO / "bench" / "consistency.py")
    assert spec is not None and spec.loader is not None
    saved = list(sys.path)
    try:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved  # the bench adjusts the import path for itself
    return module


def test_every_route_runs_and_is_scored_or_skipped_with_a_reason(tiny_model_dir: Path, tmp_path: Path) -> None:
    bench = load_bench()
    engine = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32")
    engine.load()
    references_dir = tmp_path / "references"
    references_dir.mkdir()
    source = save_tiny_ip_adapter(tmp_path / "ip-adapter", engine.pipeline.unet)
    engine.configure_ip_adapter(source.location, reference_root=references_dir, subfolder=source.subfolder,
                                weight_name=source.weight_name, image_encoder=source.image_encoder)
    characters, panels = bench.CHARACTERS[:2], bench.PANELS[:3]
    references = bench.draw_references(engine, references_dir, 2, characters)
    assert sorted(references) == ["Mira", "Otto"] and all((references_dir / p).is_file() for p in references.values())
    scorer = bench.tiny_scorer(tiny_model_dir)
    results = {
        route: bench.run_route(route, engine, steps=2, references=references, scorer=scorer, work=tmp_path,
                               has_ip_adapter=True, characters=characters, panels=panels,
                               train_steps=3)
        for route in bench.ROUTES
    }
    for route in ("text", "ip_adapter", "consistent_attention", "trained_lora"):
        result = results[route]
        assert result.skipped is None and result.images == 6 and sorted(result.per_character) == ["Mira", "Otto"]
        assert -1.0 <= result.adherence <= 1.0 and -1.0 <= result.similarity <= 1.0
        assert math.isclose(result.similarity, sum(result.per_character.values()) / 2, abs_tol=1e-3)
    table = bench.table(list(results.values()))
    assert "consistent_attention" in table and "similarity" in table


def test_identical_pictures_score_one_and_the_routes_are_the_four_of_the_issue() -> None:
    from PIL import Image

    bench = load_bench()
    assert bench.ROUTES == ("text", "ip_adapter", "consistent_attention", "trained_lora")
    assert len(bench.CHARACTERS) == 3 and len(bench.PANELS) == 6
    scorer = bench.tiny_scorer(_tiny_tokenizer_dir())
    red = Image.new("RGB", (64, 64), (200, 30, 30))
    assert bench.similarity(scorer, [red, red.copy(), red.copy()]) == pytest.approx(1.0, abs=1e-5)


def _tiny_tokenizer_dir() -> Path:
    import tempfile

    from generation.tiny_model import build_tokenizer

    folder = Path(tempfile.mkdtemp()) / "tokenizer"
    build_tokenizer(folder)
    return folder.parent
