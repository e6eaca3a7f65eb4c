"""Reference pictures and training of comic characters: the work behind the ``/comic character`` commands.

References are uploads checked like any other (:mod:`bot.cogs.imagine._uploads`), stored
content-addressed as PNG. Training a character records a job of kind ``train`` whose request
carries the training spec (:class:`rules.training.TrainingSpec`): it runs on the GPU queue in
slices like any job, is shown, cancelled and recovered by :class:`bot.job_runner.JobRunner`, and
its sample image is posted as its result. The comic cog's result hook then records the LoRA.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import logging
import time
from pathlib import Path

import discord
from PIL import Image

from bot.cogs.comic._context import ComicContext, quote
from bot.cogs.imagine._uploads import read_sources
from bot.config import TrainingSettings
from bot.errors import UserFacingError
from bot.jobs import JobOrigin
from composition.strip import strip_png
from generation.errors import QueueFull
from rules.image_checks import UploadError
from rules.request import GenerationRequest, LoraUse, RequestError, random_seed
from rules.training import TRAIN_KIND, TRAINING_KEY, TrainingSpec, instance_prompt, rare_token
from storage.comics import CharacterRecord, ComicRecord
from storage.jobs import JobRecord

log = logging.getLogger(__name__)

#: Training jobs are checked against the per-server cap and recorded one at a time.
_TRAINING_LOCK = asyncio.Lock()


async def find_character(context: ComicContext, comic: ComicRecord, name: str) -> CharacterRecord:
    """The comic's character with this name (any case), or a message listing the ones it has."""
    characters = await context.storage.comics.characters(comic.id)
    wanted = " ".join(name.split()).casefold()
    for character in characters:
        if character.name.casefold() == wanted:
            return character
    listing = ", ".join(quote(c.name, 40) for c in characters) or "none yet"
    raise UserFacingError(f"This comic has no character called **{quote(name, 40)}** (characters: {listing}).")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def read_reference(context: ComicContext, attachment: discord.Attachment) -> Image.Image:
    """Download and check an uploaded picture as any upload is checked (nothing stored yet)."""
    limits = context.services.settings.generation
    try:
        decoded = await read_sources(attachment, None, limits=limits)
    except (UploadError, RequestError) as error:
        raise UserFacingError(str(error)) from None
    return decoded.image


async def add_reference_image(
    context: ComicContext, character: CharacterRecord, image: Image.Image
) -> tuple[int, bool]:
    """Store ``image`` (PNG, content-addressed) as a reference of ``character``: (how many it has, whether new)."""
    from storage.characters import TooManyReferences

    data = await asyncio.to_thread(_png, image.convert("RGB"))
    digest = hashlib.sha256(data).hexdigest()
    existing = await context.storage.characters.references(character.id)
    limit = context.services.settings.training.max_references
    if all(reference.sha256 != digest for reference in existing) and len(existing) >= limit:
        raise UserFacingError(
            f"**{quote(character.name, 40)}** already has {len(existing)} reference pictures (the most is {limit})."
        )
    stored = await asyncio.to_thread(context.storage.files.write, data)
    try:
        _, created = await context.storage.characters.add_reference(
            character.id, stored.relative_path, stored.sha256, max_references=limit
        )
    except TooManyReferences as error:
        raise UserFacingError(str(error)) from None
    return len(existing) + (1 if created else 0), created


async def reference_strips(context: ComicContext, characters: list[CharacterRecord]) -> dict[int, bytes]:
    """A thumbnail strip PNG per character that has reference pictures."""
    references = await context.storage.characters.references_of([c.id for c in characters])
    files = context.storage.files

    def render() -> dict[int, bytes]:
        strips = {}
        for character_id, found in references.items():
            paths = [files.path_of(reference.file) for reference in found]
            present = [path for path in paths if path.exists()]
            if present:
                strips[character_id] = strip_png(present)
        return strips

    return await asyncio.to_thread(render)


def data_folder(context: ComicContext) -> Path:
    """Where LoRAs and training checkpoints go: ``[training] data_dir``, else next to the database."""
    training = context.services.settings.training
    if training.data_dir is not None:
        return Path(training.data_dir)
    return Path(context.services.settings.storage.database).resolve().parent


def training_request(
    settings: TrainingSettings,
    *,
    character: CharacterRecord,
    references: list[str],
    folder: Path,
    native_size: int,
    steps: int,
    weight: float,
    sample_steps: int,
    guidance: float,
) -> GenerationRequest:
    """The request of a training job: its sample image's prompt, with the spec in ``extra``."""
    token = rare_token(character.id)
    stamp = f"{character.id}-{int(time.time() * 1000)}"
    resolution = settings.resolution or native_size
    spec = TrainingSpec(
        character=character.name,
        character_id=character.id,
        token=token,
        references=tuple(references),
        lora_path=str(folder / "loras" / f"character-{stamp}.safetensors"),
        checkpoint_dir=str(folder / "training" / f"character-{stamp}"),
        class_word=settings.class_word,
        steps=steps,
        rank=settings.rank,
        learning_rate=settings.learning_rate,
        resolution=resolution,
        batch_size=settings.batch_size,
        slice_steps=settings.slice_steps,
        checkpoint_every=settings.checkpoint_every,
        train_text_encoder=settings.train_text_encoder,
        seed=character.id,
        mixed_precision=settings.mixed_precision,
        gradient_checkpointing=settings.gradient_checkpointing,
    )
    return GenerationRequest(
        prompt=instance_prompt(token, settings.class_word),
        seed=random_seed(),
        steps=sample_steps,
        guidance=guidance,
        width=resolution,
        height=resolution,
        count=1,
        loras=(LoraUse(character.name, spec.lora_path, weight),),
        extra={TRAINING_KEY: spec.to_dict()},
    )


async def start_training(
    context: ComicContext, interaction: discord.Interaction, character: CharacterRecord, steps: int | None
) -> None:
    """Queue a training job for ``character`` (checked: references, steps, caps) and answer with its status."""
    services = context.services
    settings = services.settings.training
    if not settings.enabled:
        raise UserFacingError("Training characters is switched off on this bot.")
    steps = settings.steps if steps is None else steps
    if not 1 <= steps <= settings.max_steps:
        raise UserFacingError(f"`steps` must be between 1 and {settings.max_steps}; you gave {steps}.")
    references = await context.storage.characters.references(character.id)
    if not references:
        raise UserFacingError(
            f"**{quote(character.name, 40)}** has no reference pictures yet; add some with "
            "`/comic character reference` (or an `image` on `/comic character add`)."
        )
    paths = [str(context.storage.files.path_of(reference.file).resolve()) for reference in references]
    limits = services.settings.generation
    request = training_request(
        settings, character=character, references=paths, folder=data_folder(context),
        native_size=services.model.native_size, steps=steps,
        weight=await context.storage.characters.weight(character.id),
        sample_steps=limits.default_steps, guidance=limits.default_guidance,
    )
    try:
        request = services.runner.validate(request)
    except RequestError as error:
        raise UserFacingError(str(error)) from None
    origin = JobOrigin.of(interaction)
    async with _TRAINING_LOCK:
        running = services.runner.count_active(TRAIN_KIND, interaction.guild_id)
        if running >= settings.max_jobs_per_server:
            raise UserFacingError(
                f"This server already has {running} training job{'s' if running != 1 else ''} in the queue "
                f"(the most is {settings.max_jobs_per_server}); try again when it has finished."
            )
        try:
            services.queue.check_capacity(origin.user_id, origin.guild_id)
        except QueueFull as error:
            raise UserFacingError(str(error)) from None
        record = await context.storage.jobs.create(dataclasses.replace(origin.new_job(request), kind=TRAIN_KIND))
        await services.runner.start_job(
            origin, record,
            headline=f"🧠 Training **{quote(character.name, 40)}** on {len(references)} picture"
                     f"{'s' if len(references) != 1 else ''} ({steps} steps)",
        )


async def record_trained(context: ComicContext, record: JobRecord) -> None:
    """Result hook: a finished training job's LoRA becomes its character's."""
    if record.kind != TRAIN_KIND:
        return
    request = GenerationRequest.from_json(record.request_json)
    spec = TrainingSpec.from_dict(request.extra[TRAINING_KEY])
    if not await asyncio.to_thread(Path(spec.lora_path).exists):
        log.warning("training job %s finished without its LoRA file %s", record.id, spec.lora_path)
        return
    await context.storage.characters.set_lora(
        spec.character_id, path=spec.lora_path, token=f"{spec.token} {spec.class_word}", steps=spec.steps,
        job_id=record.id,
    )
    log.info("character %s (%s) now has its trained LoRA %s", spec.character, spec.character_id, spec.lora_path)
