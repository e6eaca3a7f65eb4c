"""What the bot's messages look like: status lines and result embeds, within Discord's limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import discord
from discord.utils import escape_markdown

from bot.discord_limits import CONTENT_MAX, EMBED_DESCRIPTION_MAX, EMBED_FIELD_MAX, EMBED_TITLE_MAX
from bot.emojis import NUMBERS, REROLL, RESULT_REACTIONS, UPSCALE, VARY
from generation.queue import Progress
from rules.characters import CHARACTERS_KEY
from rules.loras import EmbeddingConfig, LoraConfig
from rules.png_parameters import prompt_with_lora_tags
from rules.prompt_flags import reproduce_line
from rules.request import GenerationRequest

KIND_LABELS = {
    "txt2img": "Image", "img2img": "Image from image", "inpaint": "Inpainting", "upscale": "Upscale",
}


def result_reactions(count: int, shown: Sequence[bool] | None = None) -> tuple[str, ...]:
    """The reactions seeded on a result: 🔄 🔍 🎨 on one image; 🔄 and 1️⃣-4️⃣ (shown images only) on a grid."""
    if count <= 1:
        return RESULT_REACTIONS if shown is None or all(shown) else (REROLL,)
    visible = shown if shown is not None else [True] * count
    return (REROLL, *(NUMBERS[i] for i in range(count) if visible[i]))


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def quote_prompt(text: str, limit: int) -> str:
    """A member's text shown under the bot's name: shortened, markdown-escaped, masked links broken.

    ``[text](https://…)`` would show as a link under the bot's name; after escaping, the brackets
    and the parenthesis are literal, so the address shows as it is.
    """
    escaped = discord.utils.escape_markdown(shorten(text, limit))
    return escaped.replace("](", "]\\(").replace("<", "<\u200b")


def shorten_lines(lines: Sequence[str], limit: int) -> str:
    """Lines joined with newlines, each whole line kept while they fit in ``limit``, then an ellipsis."""
    out: list[str] = []
    used = 0
    for line in lines:
        cost = len(line) + (1 if out else 0)
        if used + cost > limit - 2:
            out.append("…")
            break
        out.append(line)
        used += cost
    return "\n".join(out)[:limit]


#: What a waiting job's status says while no GPU worker is up (every worker of a cluster lost).
WAITING_FOR_WORKERS_TEXT = "waiting for a GPU worker to come back"


def queued_text(
    request: GenerationRequest,
    position: int | None,
    *,
    restarted: bool = False,
    eta_s: float | None = None,
    waiting_for_workers: bool = False,
) -> str:
    """The status line of a job waiting for the GPU: its place and, once measured, when it starts.

    ``waiting_for_workers``: no worker is up (a cluster's were all lost); the place is kept and
    the line says it waits for a worker to come back instead of promising a start time.
    """
    head = "♻️ Back after a restart" if restarted else "⏳ Queued"
    place = queue_place(position)
    if waiting_for_workers:
        place += f", {WAITING_FOR_WORKERS_TEXT}"
    elif eta_s is not None and position not in (None, 0):
        place += f", starts in about {_duration(eta_s)}"
    return shorten(f"{head}: **{quote_prompt(request.prompt, 200)}** ({place})", CONTENT_MAX)


def queue_place(position: int | None) -> str:
    """Where a job waits: "next up", or its place in the queue."""
    return "next up" if position is None or position <= 1 else f"position {position} in the queue"


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
        f"🎨 **{quote_prompt(request.prompt, 200)}**: step {progress.step}/{progress.total} ({percent}%), "
        f"about {eta:.0f} s left",
        CONTENT_MAX,
    )


def done_text(request: GenerationRequest, seconds: float) -> str:
    """The status line of a finished job."""
    return shorten(f"✅ Done in {seconds:.1f} s: **{quote_prompt(request.prompt, 200)}**", CONTENT_MAX)


def result_embed(
    request: GenerationRequest,
    *,
    model_name: str,
    job_id: int,
    requester_id: int,
    image_filename: str | None,
    note: str = "",
) -> discord.Embed:
    """The embed posted with a result: prompt, seed(s), steps, guidance, size and model.

    ``image_filename`` None: no image is shown (every image was withheld); ``note`` says why.
    Every part is cut to Discord's limits (6000 characters in all).
    """
    label = "Storyboard" if request.panel_prompts else KIND_LABELS.get(request.kind, "Image")
    if request.panel_prompts:  # one numbered line per panel
        per_panel = (EMBED_DESCRIPTION_MAX - 200) // len(request.panel_prompts)
        text = shorten_lines([f"{i}. {quote_prompt(p, per_panel)}" for i, p in enumerate(request.panel_prompts, 1)],
                             EMBED_DESCRIPTION_MAX)
    else:
        text = shorten(quote_prompt(request.prompt, EMBED_DESCRIPTION_MAX - 200), EMBED_DESCRIPTION_MAX)
    embed = discord.Embed(
        title=shorten(f"{label}: {quote_prompt(request.prompt, 250)}", EMBED_TITLE_MAX),
        description=text,
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
    if request.loras:
        used = ", ".join(f"{use.name} {use.weight:g}" for use in request.loras)
        embed.add_field(name="LoRAs", value=shorten(discord.utils.escape_markdown(used), EMBED_FIELD_MAX))
    if request.negative_prompt:
        negative = shorten(quote_prompt(request.negative_prompt, 900), EMBED_FIELD_MAX)
        embed.add_field(name="Negative", value=negative, inline=False)
    routes = request.extra.get(CHARACTERS_KEY)
    if isinstance(routes, list) and routes:
        # [[name, route], ...]: how each character was kept the same ("Mira — trained LoRA").
        drawn = ", ".join(
            " — ".join(map(str, item)) if isinstance(item, list | tuple) else str(item) for item in routes
        )
        embed.add_field(name="Character" if len(routes) == 1 else "Characters",
                        value=shorten(escape_markdown(drawn), EMBED_FIELD_MAX), inline=False)
    if note:
        embed.add_field(name="Note", value=shorten(note, EMBED_FIELD_MAX), inline=False)
    if image_filename is not None:
        embed.set_image(url=f"attachment://{image_filename}")
    if request.count > 1:
        hint = f"U1-U{request.count} upscale · V1-V{request.count} vary · {REROLL} re-roll"
    else:
        hint = f"{REROLL} re-roll · {UPSCALE} upscale · {VARY} vary"
    embed.set_footer(text=f"{job_footer_prefix(job_id)} {hint}")
    return embed


def loras_embed(
    loras: Mapping[str, LoraConfig], embeddings: Mapping[str, EmbeddingConfig], family: str | None
) -> discord.Embed:
    """/loras: each LoRA's name, trigger words, default weight and family, then the embeddings' tokens."""
    escape = discord.utils.escape_markdown
    lines = ["**LoRAs** (`--lora NAME:WEIGHT` or `<lora:NAME:WEIGHT>` in the prompt)"]
    for name, lora in sorted(loras.items()):
        usable = "" if family is None or lora.family == family else f" (not for this {family} model)"
        triggers = f", adds {escape(', '.join(lora.trigger_words))}" if lora.trigger_words else ""
        lines.append(f"• `{name}`: weight {lora.default_weight:g}, {lora.family}{triggers}{usable}")
    if not loras:
        lines.append("None are configured.")
    lines.append("**Embeddings** (write the token in the prompt)")
    for name, embedding in sorted(embeddings.items()):
        usable = "" if family is None or embedding.family == family else f" (not for this {family} model)"
        lines.append(f"• `{name}`: token `{embedding.token}`, {embedding.family}{usable}")
    if not embeddings:
        lines.append("None are configured.")
    return discord.Embed(
        title="LoRAs and embeddings", description=shorten_lines(lines, EMBED_DESCRIPTION_MAX),
        colour=discord.Colour.blurple(),
    )


def image_filename(job_id: int, index: int, seed: int) -> str:
    """The attachment name of one result image."""
    return f"job{job_id}_{index + 1}_seed{seed}.png"


def grid_filename(job_id: int, seed: int) -> str:
    """The attachment name of a grid of a job's images."""
    return f"job{job_id}_grid_seed{seed}.png"


def info_text(
    request: GenerationRequest,
    *,
    image_id: int,
    job_id: int,
    model_name: str,
    native: int,
    parent_image_id: int | None,
) -> str:
    """Every parameter of one image, and the exact /imagine line that makes it again (ephemeral)."""
    line = reproduce_line(
        # LoRAs given with --lora become <lora:...> tags, so the line applies them too.
        prompt=prompt_with_lora_tags(request.prompt, request.loras),
        negative_prompt=request.negative_prompt,
        seed=request.seed,
        steps=request.steps,
        guidance=request.guidance,
        width=request.width,
        height=request.height,
        native=native,
        model=request.model,
        sampler=request.scheduler,
    )
    parts = [
        f"**Image #{image_id}** (job {job_id}, {KIND_LABELS.get(request.kind, request.kind)})",
        f"Model: {model_name}",
        f"Seed: {request.seed} · Steps: {request.steps} · Guidance: {request.guidance:g} · "
        f"Size: {request.width}x{request.height}",
    ]
    if request.scheduler:
        parts.append(f"Sampler: {request.scheduler}")
    if request.strength is not None:
        parts.append(f"Strength: {request.strength:g}")
    if parent_image_id is not None:
        parts.append(f"Made from image #{parent_image_id}; the line below redraws it from the prompt alone.")
    budget = CONTENT_MAX - sum(len(p) + 1 for p in parts) - 10
    parts.append(f"```\n{shorten(line, max(budget, 100)).replace('```', '`')}\n```")
    return shorten("\n".join(parts), CONTENT_MAX) if len("\n".join(parts)) > CONTENT_MAX else "\n".join(parts)
