"""LoRAs, /loras, and the parameters inside every PNG, through the real bot and the Discord emulator.

The bot runs on an engine of its own (it loads a tiny LoRA into it). Results are downloaded from the
emulator's attachment URLs, as a member's browser would, and read with the same reader /rerun uses.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from bot.cogs.imagine._cog import NO_PARAMETERS_TEXT
from generation.engine import DiffusionEngine
from generation.tiny_model import save_tiny_lora
from playground import DiscordEmulator, EmuMessage
from rules.png_parameters import PARAMETERS_KEY, lora_hash, read_parameters
from rules.request import GenerationRequest, LoraUse
from tests.harness import RunningBot, next_result, rows, settings_for, start_bot

WAIT = 20


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_lora(tmp_path_factory.mktemp("loras") / "ink", seed=3)


@pytest.fixture
def own_engine(tiny_model_dir: Path) -> DiffusionEngine:
    loaded = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32")
    loaded.load()
    return loaded


@pytest.fixture
async def bot(
    emulator: DiscordEmulator, own_engine: DiffusionEngine, lora_file: Path, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    settings = settings_for(
        emulator, tmp_path,
        loras={
            "ink": {"source": str(lora_file), "trigger_words": ["inkwash"], "default_weight": 0.8},
            "xl-pens": {"source": str(lora_file), "family": "sdxl"},
        },
        embeddings={"grain": {"source": str(tmp_path / "unused.safetensors"), "token": "<grain>"}},
    )
    running = await start_bot(emulator, own_engine, settings)
    try:
        yield running
    finally:
        await running.stop()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


async def download(message: EmuMessage) -> bytes:
    """The result's file, fetched from the emulator's CDN URL."""
    async with aiohttp.ClientSession() as session, session.get(message.attachments[0].url) as response:
        assert response.status == 200
        return await response.read()


def job_request(db: Path, job_id: int) -> dict[str, Any]:
    [(text,)] = rows(db, "SELECT request_json FROM jobs WHERE id = ?", job_id)
    return json.loads(text)  # type: ignore[no-any-return]


async def imagine(emu: DiscordEmulator, user: int, prompt: str, before: int) -> EmuMessage:
    await emu.send_slash_command("imagine", {"prompt": prompt}, user_id=user)
    return await next_result(emu, before)


async def ephemeral(emu: DiscordEmulator, name: str, options: dict[str, Any], user: int, **kw: Any) -> EmuMessage:
    interaction = await emu.send_slash_command(name, options, user_id=user, **kw)

    def private() -> Any:
        if interaction.original is not None and interaction.original.ephemeral:
            return interaction.original
        return next((m for m in interaction.followups if m.ephemeral), None)

    return await emu.wait_for(private, WAIT)  # type: ignore[no-any-return]


async def test_lora_flag_and_tag_apply_the_lora_and_the_png_carries_the_parameters(
    emulator: DiscordEmulator, bot: RunningBot, own_engine: DiffusionEngine, lora_file: Path, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    ann = emulator.add_member("ann")
    plain = await imagine(emulator, ann, "a red cat --seed 5 --n 1", 0)
    flagged = await imagine(emulator, ann, "a red cat --lora ink:0.9 --seed 5 --n 1", 1)
    tagged = await imagine(emulator, ann, "a red cat <lora:ink:0.9> --seed 5 --n 1", 2)
    defaulted = await imagine(emulator, ann, "a red cat <lora:INK> --seed 5 --n 1", 3)

    files = [await download(message) for message in (plain, flagged, tagged, defaulted)]
    images = [pixels(Image.open(io.BytesIO(data))) for data in files]
    # The tag is removed from what the encoder reads: flag and tag give the very same image.
    assert np.array_equal(images[1], images[2])
    assert np.abs(images[1] - images[0]).mean() > 1.0
    assert np.abs(images[3] - images[1]).mean() > 0  # the default weight (0.8) is another weight
    # The plain job equals the base model; the flagged one equals the LoRA at that weight.
    base = GenerationRequest(prompt="a red cat", seed=5, steps=3, guidance=5.0, width=64, height=64)
    assert np.array_equal(images[0], pixels(own_engine.run(base)[0]))
    with_lora = base.replace(prompt="a red cat, inkwash", loras=(LoraUse("ink", str(lora_file), 0.9),))
    assert np.array_equal(images[1], pixels(own_engine.run(with_lora)[0]))

    # Stored as written, trigger word appended; the embed shows the prompt as written.
    requests = [job_request(db, job) for job in (2, 3, 4)]
    assert requests[0]["prompt"] == "a red cat, inkwash"
    assert requests[1]["prompt"] == "a red cat <lora:ink:0.9>, inkwash"
    assert requests[2]["loras"] == [{"name": "ink", "source": str(lora_file), "weight": 0.8}]
    # (The embed breaks "<" with a zero-width space so Discord never reads it as a mention; it reads the same.)
    assert "<lora:ink:0.9>" in tagged.embeds[0]["description"].replace("\u200b", "")
    assert any(field["name"] == "LoRAs" and "ink 0.9" in field["value"] for field in tagged.embeds[0]["fields"])

    # Every PNG carries the web UI's parameters: the LoRA as a tag, with its file's hash; the model by the name
    # `--model` takes (the harness's [model] id is "tiny").
    digest = lora_hash(str(lora_file))
    texts = [Image.open(io.BytesIO(data)).info[PARAMETERS_KEY] for data in files]
    assert texts[0] == "a red cat\nSteps: 3, Sampler: DDIM, CFG scale: 5, Seed: 5, Size: 64x64, Model: tiny"
    assert texts[1] == (
        "a red cat, inkwash <lora:ink:0.9>\n"
        f'Steps: 3, Sampler: DDIM, CFG scale: 5, Seed: 5, Size: 64x64, Model: tiny, Lora hashes: "ink: {digest}"'
    )
    assert texts[2].startswith("a red cat <lora:ink:0.9>, inkwash\n")


async def test_rerun_from_a_downloaded_png_gives_the_same_pixels(
    emulator: DiscordEmulator, bot: RunningBot, tmp_path: Path
) -> None:
    bea = emulator.add_member("bea")
    original = await imagine(emulator, bea, "a (red:1.3) cat <lora:ink:0.6> --seed 77 --n 1 --no blur", 0)
    data = await download(original)
    params = read_parameters(Image.open(io.BytesIO(data)))
    assert params is not None and params.seed == 77 and params.negative_prompt == "blur"

    await emulator.send_slash_command(
        "rerun", {}, user_id=bea, attachments={"png": ("from-discord.png", data, "image/png")}
    )
    again = await next_result(emulator, 1)
    assert np.array_equal(pixels(Image.open(io.BytesIO(await download(again)))), pixels(Image.open(io.BytesIO(data))))
    rerun = job_request(tmp_path / "bot.sqlite3", 2)
    assert rerun["prompt"] == "a (red:1.3) cat <lora:ink:0.6>, inkwash"
    assert (rerun["seed"], rerun["count"], rerun["scheduler"], rerun["negative_prompt"]) == (77, 1, "DDIM", "blur")
    assert rerun["loras"] == [{"name": "ink", "source": job_request(tmp_path / "bot.sqlite3", 1)["loras"][0]["source"],
                               "weight": 0.6}]

    # A grid carries the first image's parameters.
    grid = await imagine(emulator, bea, "a blue dog --seed 9 --n 2", 2)
    grid_params = read_parameters(Image.open(io.BytesIO(await download(grid))))
    assert grid_params is not None and (grid_params.seed, grid_params.width) == (9, 64)


async def test_refusals_say_what_to_change(emulator: DiscordEmulator, bot: RunningBot) -> None:
    cy = emulator.add_member("cy")
    unknown = await ephemeral(emulator, "imagine", {"prompt": "a cat <lora:ghost:1>"}, cy)
    assert unknown.content == "`ghost` is not a LoRA I know. LoRAs: ink, xl-pens."
    wrong_family = await ephemeral(emulator, "imagine", {"prompt": "a cat --lora xl-pens"}, cy)
    assert wrong_family.content == (
        "`xl-pens` is made for sdxl models; this model is sd1. Pick a model of its family, or leave the LoRA out."
    )
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(buffer, format="PNG")
    bare = await ephemeral(
        emulator, "rerun", {}, cy, attachments={"png": ("screenshot.png", buffer.getvalue(), "image/png")}
    )
    assert bare.content == NO_PARAMETERS_TEXT


async def test_loras_lists_loras_and_embeddings(emulator: DiscordEmulator, bot: RunningBot) -> None:
    dee = emulator.add_member("dee")
    listing = await ephemeral(emulator, "loras", {}, dee)
    description = listing.embeds[0]["description"]
    assert "`ink`: weight 0.8, sd1, adds inkwash" in description
    assert "`xl-pens`: weight 1, sdxl (not for this sd1 model)" in description
    assert "`grain`: token `<grain>`, sd1" in description


async def test_a_prompt_past_77_tokens_is_drawn_not_refused(
    emulator: DiscordEmulator, bot: RunningBot, own_engine: DiffusionEngine
) -> None:
    eve = emulator.add_member("eve")
    long_prompt = ", ".join(["a castle on a hill"] * 30) + ", (a red cat:1.2)"
    assert own_engine.count_tokens(long_prompt) > 150
    result = await imagine(emulator, eve, long_prompt + " --seed 3 --n 1", 0)
    image = pixels(Image.open(io.BytesIO(await download(result))))
    request = GenerationRequest(prompt=long_prompt, seed=3, steps=3, guidance=5.0, width=64, height=64)
    assert np.array_equal(image, pixels(own_engine.run(request)[0]))


async def test_another_model_is_checked_for_the_lora_family_and_named_in_the_png(
    emulator: DiscordEmulator, tiny_model_dir: Path, tiny_sdxl_model_dir: Path, lora_file: Path, tmp_path: Path
) -> None:
    settings = settings_for(
        emulator, tmp_path, model={"id": str(tiny_model_dir)}, models={"xl": {"id": str(tiny_sdxl_model_dir)}},
        loras={"ink": {"source": str(lora_file)}},
    )
    engine = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32", models=settings.model_specs())
    engine.load()
    running = await start_bot(emulator, engine, settings)
    try:
        fay = emulator.add_member("fay")
        refused = await ephemeral(emulator, "imagine", {"prompt": "a cat --model xl --lora ink"}, fay)
        assert refused.content.startswith("`ink` is made for sd1 models; this model is sdxl.")
        original = await imagine(emulator, fay, "a (red:1.2) cat --model xl --seed 4 --n 1 --steps 2", 0)
        data = await download(original)
        text = Image.open(io.BytesIO(data)).info[PARAMETERS_KEY]
        assert text.endswith("Seed: 4, Size: 64x64, Model: xl") and "Sampler: " in text
        await emulator.send_slash_command(
            "rerun", {}, user_id=fay, attachments={"png": ("xl.png", data, "image/png")}
        )
        again = await next_result(emulator, 1)
        first, second = (pixels(Image.open(io.BytesIO(file))) for file in (data, await download(again)))
        assert np.array_equal(first, second)
        assert job_request(tmp_path / "bot.sqlite3", 2)["model"] == "xl"  # job 1 was the original
    finally:
        await running.stop()
