"""Small previews of an image while it is being denoised, for the status message.

The default is a linear projection from the 4 latent channels to RGB: no extra weights, a few
microseconds per preview, good enough to see the composition emerge. An operator can configure a
tiny autoencoder (``AutoencoderTiny``, e.g. TAESD) for sharper previews at a small GPU cost.
These run in the GPU worker thread, never on the event loop.
"""

from __future__ import annotations

import io
from typing import Any, Protocol

import torch
from PIL import Image

#: Latent -> RGB factors for the SD 1.x/2.x VAE, and for the SDXL VAE (rows: latent channels).
SD_LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
SDXL_LATENT_RGB = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_LATENT_RGB_BIAS = (0.1084, -0.0175, -0.0011)


class Previewer(Protocol):
    """Turns the pipeline's current latents into a small PNG."""

    def render_png(self, latents: Any, *, max_side: int = 160) -> bytes: ...


def _to_png(rgb: torch.Tensor, max_side: int) -> bytes:
    """``rgb``: (3, H, W) in [0, 1] -> PNG bytes, scaled so the longer side is ``max_side``."""
    array = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    image = Image.fromarray(array, mode="RGB")
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class LatentProjection:
    """The cheap default: a fixed linear map from latent channels to RGB."""

    def __init__(self, *, sdxl: bool = False) -> None:
        factors = SDXL_LATENT_RGB if sdxl else SD_LATENT_RGB
        self.factors = torch.tensor(factors, dtype=torch.float32)
        self.bias = torch.tensor(SDXL_LATENT_RGB_BIAS if sdxl else (0.0, 0.0, 0.0), dtype=torch.float32)

    def render_png(self, latents: Any, *, max_side: int = 160) -> bytes:
        """Project the first image's latents to RGB and encode a small PNG."""
        first = latents[0].detach().to(device="cpu", dtype=torch.float32)  # (4, h, w)
        rgb = torch.einsum("chw,cr->rhw", first, self.factors) + self.bias[:, None, None]
        return _to_png((rgb + 1) / 2, max_side)


class TinyAutoencoderPreview:
    """Sharper previews through a tiny autoencoder (``AutoencoderTiny``) loaded beside the model."""

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder

    @classmethod
    def load(cls, source: str, *, device: str, dtype: torch.dtype) -> TinyAutoencoderPreview:
        """Load an AutoencoderTiny from a hub id or local folder."""
        from diffusers import AutoencoderTiny

        return cls(AutoencoderTiny.from_pretrained(source, torch_dtype=dtype).to(device))

    @torch.no_grad()
    def render_png(self, latents: Any, *, max_side: int = 160) -> bytes:
        """Decode the first image's latents with the tiny decoder."""
        first = latents[:1].to(device=self.decoder.device, dtype=self.decoder.dtype)
        decoded = self.decoder.decode(first).sample[0].float()
        return _to_png((decoded + 1) / 2, max_side)
