"""Characters' reference pictures and trained LoRAs end to end: the real bot, the emulator, the tiny model.

References come as attachments, ``/comic character train`` runs on the GPU queue in slices while
other members' jobs keep flowing, its sample is posted and its LoRA recorded, and panels naming
the character (and ``/imagine --cref``) apply it. A training job survives a restart by resuming
from its checkpoint, and its Cancel button stops it.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from generation.training import read_checkpoint
from playground import DiscordEmulator, EmuInteraction, EmuMessage
from rules.training import TRAINING_KEY
from tests.harness import RunningBot, rows, settings_for, start_bot
from tests.harness import image_posts as results

WAIT = 120.0


def picture(index: int) -> bytes:
    """A reference picture: magenta with dark stripes, a little different each time."""
    data = np.zeros((64, 64, 3), np.uint8)
    data[...] = (230, 30 + 10 * index, 210)
    data[:: 8 - index % 2, :, :] = 15
    buffer = io.BytesIO()
    Image.fromarray(data).save(buffer, format="PNG")
    return buffer.getvalue()


def training_settings(emulator: DiscordEmulator, data: Path, **training: Any) -> Any:
    return settings_for(
        emulator, data,
        training={"steps": 6, "slice_steps": 2, "rank": 4, "learning_rate": 1e-2, **training},
    )


async def command(emu: DiscordEmulator, sub: str, user: int, *, group: str | None = "character",
                  attachments: dict[str, tuple[str, bytes, str]] | None = None, **options: object) -> EmuInteraction:
    return await emu.send_slash_command("comic", options, user_id=user, subcommand=sub, group=group,
                                        attachments=attachments)


async def answer(emu: DiscordEmulator, inter: EmuInteraction) -> EmuMessage:
    return await emu.wait_for(
        lambda: inter.original if inter.original is not None and not inter.original.loading else None, WAIT
    )


async def refusal(emu: DiscordEmulator, inter: EmuInteraction) -> EmuMessage:
    """The private refusal: the response itself, or (after a defer for an upload) an ephemeral followup."""

    def private() -> EmuMessage | None:
        if inter.original is not None and inter.original.ephemeral:
            return inter.original
        return next((m for m in inter.followups if m.ephemeral), None)

    return await emu.wait_for(private, WAIT)


async def setup_character(emu: DiscordEmulator, user: int) -> None:
    """A comic with Mira, who has two reference pictures (one from ``add``, one from ``reference``)."""
    await answer(emu, await command(emu, "new", user, group=None, title="Mira's Day"))
    added = await answer(emu, await command(
        emu, "add", user, name="Mira", description="a girl with a yellow raincoat",
        attachments={"image": ("mira1.png", picture(0), "image/png")},
    ))
    assert "Mira" in added.content and "1 reference picture" in added.content, added.content
    more = await answer(emu, await command(
        emu, "reference", user, name="Mira", attachments={"image": ("mira2.png", picture(1), "image/png")},
    ))
    assert "2 in all" in more.content, more.content


def request_of(db: Path, job_id: int) -> dict[str, Any]:
    return json.loads(rows(db, "SELECT request_json FROM jobs WHERE id = ?", job_id)[0][0])


async def test_references_training_and_panels_that_name_the_character(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    # 30 steps in slices of 2: bob's job, asked right after, comes well before the last slice.
    running = await start_bot(emulator, engine, training_settings(emulator, tmp_path, steps=30))
    try:
        alice, bob = emulator.add_member("alice"), emulator.add_member("bob")
        await setup_character(emulator, alice)
        bad = await refusal(emulator, await command(
            emulator, "reference", alice, name="Mira", attachments={"image": ("x.gif", b"GIF89a" + b"\0" * 20,
                                                                                 "image/gif")},
        ))
        assert bad.ephemeral and "PNG, JPEG or WebP" in bad.content, bad.content
        listing = await answer(emulator, await command(emulator, "list", alice))
        assert "2 reference pictures" in listing.content and listing.attachments, listing.content
        assert listing.attachments[0].image().size == (2 * 96 + 4, 96)  # the thumbnail strip

        untrained = await answer(emulator, await command(emulator, "train", alice, name="Nobody"))
        assert untrained.ephemeral and "no character called" in untrained.content
        status = await answer(emulator, await command(emulator, "train", alice, name="Mira"))
        assert "Training **Mira** on 2 pictures (30 steps)" in status.content, status.content
        second = await answer(emulator, await command(emulator, "train", alice, name="Mira"))
        assert second.ephemeral and "already has 1 training job" in second.content, second.content

        # Another member's job while the training runs: it runs between two slices, not after all of them.
        before = len(results(emulator))
        asked = time.monotonic()
        await emulator.send_slash_command("imagine", {"prompt": "a lighthouse", "count": 1}, user_id=bob)
        posted = await emulator.wait_for(
            lambda: [m for m in results(emulator) if m.embeds[0]["footer"]["text"].startswith("Job 2 ·")] or None, WAIT
        )
        waited = time.monotonic() - asked
        await emulator.wait_for(lambda: len(results(emulator)) >= before + 2, WAIT)
        sample = next(m for m in results(emulator) if "a photo of" in m.embeds[0]["title"])
        [(path, token, steps)] = await emulator.wait_for(
            lambda: rows(db, "SELECT path, token, steps FROM character_loras") or None, WAIT
        )
        assert await asyncio.to_thread(Path(path).exists) and steps == 30 and token.endswith(" character")
        assert sample.attachments[0].image().size == (64, 64)
        kinds = rows(db, "SELECT kind, status FROM jobs ORDER BY id")
        assert kinds == [("train", "done"), ("txt2img", "done")]
        # The training job's slices around bob's job: bob's started before the training finished.
        [(train_finished,)] = rows(db, "SELECT finished_at FROM jobs WHERE kind = 'train'")
        [(bob_started,)] = rows(db, "SELECT started_at FROM jobs WHERE kind = 'txt2img'")
        assert bob_started < train_finished
        print(f"\nbob's job waited {waited:.1f} s for its result while a 30-step training ran (posted {posted[0].id})")

        # "Add as reference" on bob's single result: alice picks Mira from a menu of her comic's characters.
        [(bob_image,)] = rows(db, "SELECT id FROM images WHERE job_id = 2")
        click = await emulator.click_button(posted[0].id, f"img:ref:{bob_image}", user_id=alice)
        picker = await answer(emulator, click)
        assert picker.ephemeral and "Which character" in picker.content, picker.content
        await emulator.choose_option(picker.id, f"img:refto:{bob_image}", ["1"], user_id=alice)
        await emulator.wait_for(lambda: "3 in all" in emulator.world.messages[picker.id].content or None, WAIT)
        assert rows(db, "SELECT COUNT(*) FROM character_references") == [(3,)]

        # A panel naming Mira applies her LoRA and token; one that does not name her, neither.
        before = len(results(emulator))
        await answer(emulator, await command(emulator, "panel", alice, group=None, prompt="Mira waves hello"))
        await answer(emulator, await command(emulator, "panel", alice, group=None, prompt="an empty street"))
        await emulator.wait_for(lambda: len(results(emulator)) >= before + 2, WAIT)
        named, plain = (request_of(db, job_id) for (job_id,) in rows(
            db, "SELECT job_id FROM comic_panels ORDER BY position"))
        assert named["loras"] == [{"name": "Mira", "source": path, "weight": 1.0}]
        assert token in named["prompt"] and plain["loras"] == [] and token not in plain["prompt"]
        embeds = [m.embeds[0] for m in results(emulator)[before:]]
        fields = [{f["name"]: f["value"] for f in embed.get("fields", [])} for embed in embeds]
        assert "Mira — trained LoRA" in [f.get("Character") for f in fields]

        # A weight, then /imagine --cref draws her outside the comic at that weight.
        weighted = await answer(emulator, await command(emulator, "weight", alice, name="Mira", weight=0.6))
        assert "0.6" in weighted.content
        before = len(results(emulator))
        await emulator.send_slash_command("imagine", {"prompt": "a portrait --cref mira", "count": 1}, user_id=alice)
        await emulator.wait_for(lambda: results(emulator)[before:] or None, WAIT)
        [(cref_json,)] = rows(db, "SELECT request_json FROM jobs ORDER BY id DESC LIMIT 1")
        cref = json.loads(cref_json)
        assert cref["loras"] == [{"name": "Mira", "source": path, "weight": 0.6}] and token in cref["prompt"]
        unknown = await emulator.send_slash_command("imagine", {"prompt": "x --cref Zed"}, user_id=alice)
        reply = await answer(emulator, unknown)
        assert reply.ephemeral and "no character called `Zed`" in reply.content
    finally:
        await running.stop()


async def test_training_resumes_after_a_restart_and_its_cancel_button_stops_it(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    settings = training_settings(emulator, tmp_path, steps=400)
    running: RunningBot | None = await start_bot(emulator, engine, settings)
    try:
        alice = emulator.add_member("alice")
        await setup_character(emulator, alice)
        status = await answer(emulator, await command(emulator, "train", alice, name="Mira"))
        [(job_id,)] = rows(db, "SELECT id FROM jobs WHERE kind = 'train'")
        folder = request_of(db, job_id)["extra"][TRAINING_KEY]["checkpoint_dir"]
        first = await emulator.wait_for(lambda: (read_checkpoint(folder) or {}).get("step", 0) >= 4 or None, WAIT)
        assert first
        assert running is not None
        await running.stop()  # a clean shutdown: the running slice stops at its next step and checkpoints
        running = None
        stopped = read_checkpoint(folder)
        assert stopped is not None and 0 < stopped["step"] < 400
        assert rows(db, "SELECT status FROM jobs WHERE id = ?", job_id) == [("queued",)]

        running = await start_bot(emulator, engine, settings)
        resumed = await emulator.wait_for(
            lambda: ((c := read_checkpoint(folder)) is not None and c["step"] > stopped["step"] and c) or None, WAIT
        )
        # It went on from where it stopped (a restart from scratch would start its slices at 0 again).
        assert resumed["starts"][: len(stopped["starts"])] == stopped["starts"]
        assert resumed["starts"][len(stopped["starts"])] == stopped["step"]
        assert resumed["losses"][: stopped["step"]] == stopped["losses"]

        message = emulator.world.messages[status.id]
        assert any(custom_id == f"job:cancel:{job_id}" for custom_id, _, _ in message.buttons())
        await emulator.click_button(status.id, f"job:cancel:{job_id}", user_id=alice)
        await emulator.wait_for(
            lambda: rows(db, "SELECT status FROM jobs WHERE id = ?", job_id) == [("cancelled",)] or None, WAIT
        )
        await emulator.wait_for(lambda: not Path(folder).exists() or None, WAIT)
        assert rows(db, "SELECT COUNT(*) FROM character_loras") == [(0,)]
    finally:
        if running is not None:
            await running.stop()
