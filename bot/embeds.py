"""What the bot's messages look like: status lines and result embeds, within Discord's limits."""

from __future__ import annotations

import discord

from generation.queue import Progress
from generation.request import GenerationRequest

EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELD_MAX = 1024
CONTENT_MAX = 2000
REROLL = "🔄"
UPSCALE = "🔍"
RESULT_REACTIONS: tuple[str, ...] = (REROLL, UPSCALE)

KIND_LABELS = {"txt2img": "Image", "img2img": "Image from image", "upscale": "Upscale"}


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def queued_text(
    request: GenerationRequest, position: int | None, *, restarted: bool = False, eta_s: float | None = None
) -> str:
    """The status line of a job waiting for the GPU: its place and, once measured, when it starts."""
    head = "♻️ Back after a restart" if restarted else "⏳ Queued"
    place = "next up" if position in (None, 0, 1) else f"position {position} in the queue"
    if eta_s is not None and position not in (None, 0):
        place += f", starts in about {_duration(eta_s)}"
    return shorten(f"{head}: **{shorten(request.prompt, 200)}** ({place})", CONTENT_MAX)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def job_footer_prefix(job_id: int) -> str:
    """How a result's embed footer starts; a restart finds already-posted results by it."""
    return f"Job {job_id} ·"


def progress_text(request: GenerationRequest, progress: Progress) -> str:
    """The status line of a running job: step n/N and an estimate of the time left."""
    percent = int(100 * progress.step / max(progress.total, 1))
    per_step = progress.elapsed_s / max(progress.step, 1)
    eta = per_step * (progress.total - progress.step)
    return shorten(
        f"🎨 **{shorten(request.prompt, 200)}**: step {progress.step}/{progress.total} ({percent}%), "
        f"about {eta:.0f} s left",
        CONTENT_MAX,
    )


def done_text(request: GenerationRequest, seconds: float) -> str:
    """The status line of a finished job."""
    return shorten(f"✅ Done in {seconds:.1f} s: **{shorten(request.prompt, 200)}**", CONTENT_MAX)


def result_embed(
    request: GenerationRequest, *, model_name: str, job_id: int, requester_id: int, image_filename: str
) -> discord.Embed:
    """The embed posted with a result: prompt, seed(s), steps, guidance, size and model."""
    embed = discord.Embed(
        title=shorten(f"{KIND_LABELS.get(request.kind, 'Image')}: {request.prompt}", EMBED_TITLE_MAX),
        description=shorten(request.prompt, EMBED_DESCRIPTION_MAX),
        colour=discord.Colour.blurple(),
    )
    seeds = request.seeds()
    embed.add_field(name="Seed" if len(seeds) == 1 else "Seeds", value=", ".join(map(str, seeds)))
    embed.add_field(name="Steps", value=str(request.steps))
    embed.add_field(name="Guidance", value=f"{request.guidance:g}")
    embed.add_field(name="Size", value=f"{request.width}x{request.height}")
    embed.add_field(name="Model", value=shorten(model_name, EMBED_FIELD_MAX))
    if request.strength is not None:
        embed.add_field(name="Strength", value=f"{request.strength:g}")
    if request.negative_prompt:
        embed.add_field(name="Negative", value=shorten(request.negative_prompt, EMBED_FIELD_MAX), inline=False)
    embed.set_image(url=f"attachment://{image_filename}")
    embed.set_footer(text=f"{job_footer_prefix(job_id)} {REROLL} re-roll · {UPSCALE} upscale 2x")
    return embed


def image_filename(job_id: int, index: int, seed: int) -> str:
    """The attachment name of one result image."""
    return f"job{job_id}_{index + 1}_seed{seed}.png"
