"""Fitting images under Discord's upload limit, and grouping files into messages."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from composition.upload_fit import MIN_MAX_BYTES, QUALITY_LADDER, EncodedImage, fit_upload, split_into_uploads

KB = 1024


def decode(encoded: EncodedImage) -> Image.Image:
    image = Image.open(io.BytesIO(encoded.data))
    image.load()
    return image


@pytest.fixture(scope="module")
def noisy() -> Image.Image:
    """1024x1024 of smooth gradients plus strong noise: PNG can't get it anywhere near 300 KB."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:1024, 0:1024]
    base = np.stack([x / 4, y / 4, (x + y) / 8], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def test_small_flat_image_stays_png_and_lossless() -> None:
    image = Image.new("RGB", (256, 256), (30, 60, 90))
    encoded = fit_upload(image, 300 * KB, filename_stem="cat 1/2")
    assert encoded.format == "PNG" and encoded.quality is None
    assert encoded.filename == "cat_1_2.png" and encoded.content_type == "image/png"
    assert np.array_equal(np.asarray(decode(encoded)), np.asarray(image))


def test_noisy_image_is_reencoded_under_the_limit(noisy: Image.Image) -> None:
    png = io.BytesIO()
    noisy.save(png, format="PNG")
    assert len(png.getvalue()) > 300 * KB * 5
    encoded = fit_upload(noisy, 300 * KB, filename_stem="result")
    assert len(encoded.data) <= 300 * KB
    assert encoded.format in ("WEBP", "JPEG") and encoded.quality in QUALITY_LADDER
    assert encoded.filename == f"result.{'webp' if encoded.format == 'WEBP' else 'jpg'}"
    image = decode(encoded)
    assert image.format == encoded.format and image.size == (1024, 1024) == (encoded.width, encoded.height)
    # Still the same picture: the mean error is far below the noise amplitude.
    error = np.abs(np.asarray(image.convert("RGB"), dtype=np.int16) - np.asarray(noisy, dtype=np.int16))
    assert error.mean() < 20


def test_tiny_limit_downsizes_but_fits(noisy: Image.Image) -> None:
    encoded = fit_upload(noisy, MIN_MAX_BYTES, filename_stem="tiny")
    assert len(encoded.data) <= MIN_MAX_BYTES
    image = decode(encoded)
    assert image.size == (encoded.width, encoded.height)
    assert encoded.width < 1024 and encoded.width == encoded.height  # aspect kept


def test_transparent_image_survives_lossy_encoding() -> None:
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (256, 256, 4), dtype=np.uint8)
    encoded = fit_upload(Image.fromarray(rgba, "RGBA"), 40 * KB, filename_stem="alpha")
    assert len(encoded.data) <= 40 * KB
    decode(encoded)


def test_limit_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="smallest supported"):
        fit_upload(Image.new("RGB", (8, 8)), MIN_MAX_BYTES - 1, filename_stem="x")


def test_split_into_uploads_respects_bytes_and_count() -> None:
    files = [(f"{i}.png", b"x" * size) for i, size in enumerate([400, 400, 300, 900, 100, 100, 100])]
    groups = split_into_uploads(files, max_bytes_per_message=1000, max_files_per_message=3)
    assert [[name for name, _ in group] for group in groups] == [
        ["0.png", "1.png"],
        ["2.png"],
        ["3.png", "4.png"],
        ["5.png", "6.png"],
    ]
    assert [name for group in groups for name, _ in group] == [name for name, _ in files]
    assert split_into_uploads([], 1000) == []
    many = [(f"{i}", b"") for i in range(23)]
    assert [len(group) for group in split_into_uploads(many, 1000)] == [10, 10, 3]
    with pytest.raises(ValueError, match=r"big\.png"):
        split_into_uploads([("big.png", b"x" * 1001)], 1000)
