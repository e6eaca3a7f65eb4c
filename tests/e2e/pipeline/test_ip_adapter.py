"""IP-Adapter on the tiny model: a tiny adapter built here changes pixels with its scale, reference
requests are not batched with others, and a request without references draws exactly what it drew
before any adapter was loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.engine import DiffusionEngine
from generation.tiny_ip_adapter import save_tiny_ip_adapter
from rules.request import GenerationRequest


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def tiny(**changes: object) -> GenerationRequest:
    base = GenerationRequest(prompt="a girl in a yellow raincoat", seed=5, steps=3, guidance=5.0, width=64, height=64)
    return base.replace(**changes)


@pytest.fixture(scope="module")
def adapted(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DiffusionEngine:
    """An engine of its own (the shared one stays untouched), with a tiny IP-Adapter and two references."""
    engine = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32")
    engine.load()
    root = tmp_path_factory.mktemp("references")
    source = save_tiny_ip_adapter(root / "ip-adapter", engine.pipeline.unet)
    rng = np.random.default_rng(0)
    for name in ("mira-1.png", "mira-2.png"):
        Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(root / name)
    Image.new("RGB", (48, 48), (240, 200, 20)).save(root / "yellow.png")
    engine.configure_ip_adapter(
        source.location, reference_root=root, subfolder=source.subfolder, weight_name=source.weight_name,
        image_encoder=source.image_encoder,
    )
    return engine


def test_scale_changes_pixels_and_the_same_scale_is_reproducible(adapted: DiffusionEngine) -> None:
    plain = adapted.run(tiny())[0]
    refs = ["mira-1.png", "mira-2.png"]
    zero = adapted.run(tiny(ip_adapter_images=refs, ip_adapter_scale=0.0))[0]
    half = adapted.run(tiny(ip_adapter_images=refs, ip_adapter_scale=0.5))[0]
    full = adapted.run(tiny(ip_adapter_images=refs, ip_adapter_scale=1.0))[0]
    again = adapted.run(tiny(ip_adapter_images=refs, ip_adapter_scale=1.0))[0]
    assert np.abs(pixels(zero) - pixels(plain)).max() <= 1  # scale 0: the image tokens weigh nothing
    assert np.abs(pixels(half) - pixels(zero)).mean() > 0.5
    assert np.abs(pixels(full) - pixels(half)).mean() > 0.5
    assert np.array_equal(pixels(full), pixels(again))
    other = adapted.run(tiny(ip_adapter_images=["yellow.png"], ip_adapter_scale=1.0))[0]
    assert np.abs(pixels(other) - pixels(full)).mean() > 0.5  # the references matter, not just the scale


def test_a_request_without_references_draws_what_it_drew_before_loading(
    tiny_model_dir: Path, adapted: DiffusionEngine
) -> None:
    fresh = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32")
    fresh.load()
    before = fresh.run(tiny(seed=21))[0]
    adapted.run(tiny(ip_adapter_images=["mira-1.png"], ip_adapter_scale=1.0))
    after = adapted.run(tiny(seed=21))[0]
    assert np.array_equal(pixels(before), pixels(after))
    unet = adapted.pipeline.unet
    assert unet.encoder_hid_proj is None
    assert not any("IPAdapter" in type(p).__name__ for p in unet.attn_processors.values())
    assert getattr(adapted.pipeline, "image_encoder", None) is None


def test_reference_requests_do_not_batch_with_others(adapted: DiffusionEngine) -> None:
    with_refs = tiny(ip_adapter_images=["mira-1.png"], ip_adapter_scale=1.0)
    assert with_refs.batch_key() != tiny().batch_key()
    assert with_refs.batch_key() != tiny(ip_adapter_images=["mira-2.png"], ip_adapter_scale=1.0).batch_key()
    with pytest.raises(ValueError, match="share"):
        adapted.run_batch([with_refs, tiny()], [None, None])


def test_references_without_a_configured_adapter_fail_with_the_setting_named(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"\[model\] ip_adapter"):
        engine.run(tiny(ip_adapter_images=["mira-1.png"], ip_adapter_scale=1.0))
