"""Upload checks on real bad files: wrong types, damaged files, bombs, animations, masks, sizes."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from rules.image_checks import UploadError, check_mask_matches, check_upload, fit_size
from rules.request import RequestError

MB = 2**20


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = len(Image.new(mode, (1, 1)).getbands())
    shape = (height, width, channels) if channels > 1 else (height, width)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def png_header_only(width: int, height: int) -> bytes:
    """A valid-looking PNG that claims ``width x height`` but holds a few bytes of pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def check(data: bytes, *, content_type: str | None = "image/png", filename: str = "up.png",
          max_bytes: int = 8 * MB, max_pixels: int = 1024 * 1024, role: str = "image") -> Image.Image:
    return check_upload(
        data, content_type=content_type, filename=filename, max_bytes=max_bytes, max_pixels=max_pixels,
        role=role,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_good_images_come_back_decoded(fmt: str, mime: str) -> None:
    source = noise(96, 64)
    image = check(encode(source, fmt, quality=100) if fmt != "PNG" else encode(source, fmt), content_type=mime)
    assert image.mode == "RGB" and image.size == (96, 64)
    if fmt == "PNG":
        assert np.array_equal(np.asarray(image), np.asarray(source))


def test_content_type_parameters_and_missing_type_use_the_name() -> None:
    data = encode(noise(16, 16), "PNG")
    assert check(data, content_type="image/png; charset=binary").size == (16, 16)
    assert check(data, content_type=None, filename="photo.PNG").size == (16, 16)
    with pytest.raises(UploadError, match="isn't a PNG, JPEG or WebP file"):
        check(data, content_type=None, filename="photo.bmp")


def test_wrong_content_type_is_refused() -> None:
    with pytest.raises(UploadError, match=r"is `image/gif`; upload a PNG, JPEG or WebP"):
        check(encode(noise(8, 8), "GIF"), content_type="image/gif", filename="a.gif")


def test_gif_bytes_behind_a_png_name_are_recognised() -> None:
    with pytest.raises(UploadError, match="is a GIF file"):
        check(encode(noise(8, 8), "GIF"), content_type=None, filename="looks.png")


def test_text_file_named_png_is_unreadable() -> None:
    with pytest.raises(UploadError, match="couldn't be read") as caught:
        check(b"this is not an image at all\n", filename="notes.png")
    assert caught.value.field == "image"
    assert isinstance(caught.value, RequestError)


def test_truncated_png_is_unreadable() -> None:
    data = encode(noise(128, 128), "PNG")
    with pytest.raises(UploadError, match="it may be damaged"):
        check(data[: len(data) // 2])


def test_oversized_bytes_name_the_limit_in_mb() -> None:
    data = encode(noise(1024, 512), "PNG")  # noise does not compress: about 1.5 MB
    assert len(data) > MB
    with pytest.raises(UploadError, match=r"the limit is 1 MB\.$") as caught:
        check(data, max_bytes=MB)
    assert f"is {len(data) / MB:.3g} MB;" in str(caught.value)
    with pytest.raises(UploadError, match=r"the limit is 10 KB\.$"):
        check(encode(noise(64, 64), "PNG"), max_bytes=10 * 1024)


def test_empty_and_zero_dimension_files() -> None:
    with pytest.raises(UploadError, match="is empty"):
        check(b"")
    with pytest.raises(UploadError):
        check(png_header_only(0, 10))


@pytest.mark.parametrize("side", [50_000, 20_000, 10_000])
def test_header_bombs_are_refused_without_decoding(side: int) -> None:
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(UploadError, match=r"too many pixels|pixels\); the limit is"):
            check(png_header_only(side, side), max_pixels=2048 * 2048)
    assert before == Image.MAX_IMAGE_PIXELS  # the global guard is never touched


def test_too_many_pixels_names_size_and_limit() -> None:
    with pytest.raises(UploadError, match=r"300x300 \(90,000 pixels\); the limit is 65,536"):
        check(encode(noise(300, 300), "PNG"), max_pixels=256 * 256)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_are_refused(fmt: str) -> None:
    frames = [noise(32, 32, seed=i) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(UploadError, match="is animated"):
        check(buffer.getvalue(), content_type=f"image/{fmt.lower()}", filename=f"anim.{fmt.lower()}")


def test_phone_multi_picture_jpeg_uses_the_primary_photo() -> None:
    primary, preview = Image.new("RGB", (32, 16), (200, 10, 10)), Image.new("RGB", (32, 16), (10, 10, 200))
    data = encode(primary, "MPO", save_all=True, append_images=[preview])
    image = check(data, content_type="image/jpeg", filename="IMG_0001.jpg")
    red, _, blue = np.asarray(image)[8, 16]
    assert image.size == (32, 16) and red > 180 and blue < 40


def test_transparency_goes_over_white_for_images_and_black_for_masks() -> None:
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    data = encode(rgba, "PNG")
    image = check(data)
    assert image.getpixel((1, 1)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (10, 20, 30)
    mask = check(data, role="mask")
    assert mask.mode == "L" and mask.getpixel((1, 1)) == 0


def test_mask_is_greyscale_and_exif_orientation_is_applied() -> None:
    source = Image.new("RGB", (40, 20), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    mask = check(encode(source, "JPEG", exif=exif), content_type="image/jpeg", filename="m.jpg", role="mask")
    assert mask.mode == "L" and mask.size == (20, 40)
    assert np.asarray(mask)[10, 10] >= 250


def test_mask_must_match_the_image_shape_and_is_resized() -> None:
    image = Image.new("RGB", (512, 512))
    resized = check_mask_matches(image, Image.new("L", (256, 256), 255))
    assert resized.size == (512, 512) and resized.getpixel((100, 100)) == 255
    assert check_mask_matches(image, Image.new("RGB", (510, 512))).mode == "L"  # within 1%
    with pytest.raises(UploadError, match=r"mask is 512x256 but the image is 512x512") as caught:
        check_mask_matches(image, Image.new("L", (512, 256)))
    assert caught.value.field == "mask"


@pytest.mark.parametrize(
    ("size", "max_pixels", "expected"),
    [
        ((512, 512), 1024 * 1024, (512, 512)),
        ((1023, 769), 1024 * 1024, (1024, 768)),
        ((4000, 3000), 1024 * 1024, (1176, 880)),  # nearest multiples would pass the limit: rounded down
        ((3000, 4000), 512 * 512, (440, 592)),
    ],
)
def test_fit_size(size: tuple[int, int], max_pixels: int, expected: tuple[int, int]) -> None:
    width, height = fit_size(*size, max_pixels)
    assert (width, height) == expected
    assert width % 8 == 0 and height % 8 == 0 and width * height <= max_pixels
    assert abs(width / height - size[0] / size[1]) / (size[0] / size[1]) < 0.01


def test_fit_size_never_goes_below_one_multiple() -> None:
    assert fit_size(10, 3, 1024 * 1024) == (8, 8)
    with pytest.raises(ValueError):
        fit_size(0, 10, 1024)
