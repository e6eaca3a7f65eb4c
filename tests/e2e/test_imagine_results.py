"""Results at Midjourney's level, end to end: grids, U/V/🔄/ℹ️/🗑️/📖 buttons, reactions, restarts, lineage.

Everything goes through the real bot and the Discord emulator; the database is read directly to
check what each job made and where it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from playground import DiscordEmulator, EmuMessage
from tests.harness import RunningBot, next_result, results, rows, settings_for, start_bot

NUMBERS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣")


async def imagine(emu: DiscordEmulator, user: int, **options: object) -> EmuMessage:
    before = len(results(emu))
    await emu.send_slash_command("imagine", {"prompt": "a lighthouse at dusk", **options}, user_id=user)
    return await next_result(emu, before)


def image_ids_of(db: Path, message_id: int) -> list[int]:
    return [int(r[0]) for r in rows(db, "SELECT image_id FROM message_images WHERE message_id = ? ORDER BY position",
                                    message_id)]


def job_of(db: Path, message_id: int) -> int:
    [(job_id,)] = rows(db, "SELECT job_id FROM messages WHERE message_id = ?", message_id)
    return int(job_id)  # type: ignore[call-overload]


def request_of_job(db: Path, job_id: int) -> dict[str, object]:
    [(text,)] = rows(db, "SELECT request_json FROM jobs WHERE id = ?", job_id)
    return json.loads(str(text))  # type: ignore[no-any-return]


def ids(message: EmuMessage) -> list[str]:
    return [c for c, _, _ in message.buttons() if c]


async def test_default_request_is_a_2x2_grid_with_u_v_reroll_info_delete(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    alice = emulator.add_member("alice")
    grid = await imagine(emulator, alice, seed=500)
    [attachment] = grid.attachments
    assert attachment.image().size == (128, 128)  # four 64x64 images, 2x2
    assert grid.embeds[0]["image"]["url"] == f"attachment://{attachment.filename}"
    images = image_ids_of(db, grid.id)
    assert len(images) == 4
    assert [r[0] for r in rows(db, "SELECT seed FROM images ORDER BY idx")] == [500, 501, 502, 503]
    labels = {label for _, label, _ in grid.buttons()}
    assert {"U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4"} <= labels
    job_id = job_of(db, grid.id)
    assert {f"img:up:{images[1]}", f"img:vary:strong:{images[2]}", f"job:reroll:{job_id}",
            f"img:info:{images[0]}", f"job:delete:{job_id}"} <= set(ids(grid))
    await emulator.wait_for(lambda: set(grid.reactions) == {"🔄", *NUMBERS}, 10)

    # U2: a 2x upscale of the second image, recorded as its child.
    await emulator.click_button(grid.id, f"img:up:{images[1]}", user_id=alice)
    upscale = await next_result(emulator, 1)
    assert upscale.attachments[0].image().size == (128, 128)
    up_job = job_of(emulator_db := db, upscale.id)
    assert request_of_job(emulator_db, up_job)["kind"] == "upscale"
    [(parent,)] = rows(db, "SELECT parent_image_id FROM images WHERE job_id = ?", up_job)
    assert parent == images[1]
    # A single-image result has 🔍, 🎨 subtle and strong, 🔄, ℹ️, 🗑️, 📖 and Add as reference.
    [up_image] = image_ids_of(db, upscale.id)
    assert {f"img:up:{up_image}", f"img:vary:subtle:{up_image}", f"img:vary:strong:{up_image}",
            f"job:reroll:{up_job}", f"img:info:{up_image}", f"job:delete:{up_job}",
            f"img:comic:{up_image}", f"img:ref:{up_image}"} == set(ids(upscale))

    # V3: img2img from the third image, same prompt, strong strength, a new seed, child of image 3.
    await emulator.click_button(grid.id, f"img:vary:strong:{images[2]}", user_id=alice)
    variation = await next_result(emulator, 2)
    var_job = job_of(db, variation.id)
    request = request_of_job(db, var_job)
    assert request["kind"] == "img2img" and request["strength"] == 0.65 and request["count"] == 1
    assert request["prompt"] == "a lighthouse at dusk" and request["seed"] != 502
    [(parent, seed)] = rows(db, "SELECT parent_image_id, seed FROM images WHERE job_id = ?", var_job)
    assert parent == images[2] and seed == request["seed"]

    # 🔄: the whole request again with a new seed, as a new grid.
    await emulator.click_button(grid.id, f"job:reroll:{job_id}", user_id=alice)
    reroll = await next_result(emulator, 3)
    assert reroll.attachments[0].image().size == (128, 128)
    rerolled = request_of_job(db, job_of(db, reroll.id))
    assert rerolled["count"] == 4 and rerolled["seed"] != 500

    # ℹ️: every parameter and the exact line that makes the image again, to the clicker only.
    info = await emulator.click_button(grid.id, f"img:info:{images[0]}", user_id=alice)
    reply = await emulator.wait_for(lambda: info.original, 10)
    assert reply.ephemeral
    line = "/imagine prompt: a lighthouse at dusk --ar 1:1 --seed 500 --steps 3 --cfg 5"
    assert line in reply.content
    # Pasting the line back (the `/imagine prompt:` start included) makes the very same image.
    before = len(results(emulator))
    await emulator.send_slash_command("imagine", {"prompt": line, "count": 1}, user_id=alice)
    again = await next_result(emulator, before)
    [(path_again,)] = rows(db, "SELECT path FROM images WHERE id = ?", image_ids_of(db, again.id)[0])
    [(path_first,)] = rows(db, "SELECT path FROM images WHERE id = ?", images[0])
    pixels = [np.asarray(Image.open(tmp_path / "images" / str(p)), dtype=np.int16) for p in (path_first, path_again)]
    assert np.abs(pixels[0] - pixels[1]).max() <= 1  # alone vs. in a batch of four: equal up to rounding


async def test_single_image_buttons_subtle_variation_comic_and_delete_permissions(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    bea, stranger = emulator.add_member("bea"), emulator.add_member("stranger")
    moderator = emulator.add_member("mod", moderator=True)
    single = await imagine(emulator, bea, seed=11, count=1)
    await emulator.wait_for(lambda: set(single.reactions) == {"🔄", "🔍", "🎨"}, 10)
    [image] = image_ids_of(db, single.id)
    job_id = job_of(db, single.id)

    await emulator.click_button(single.id, f"img:vary:subtle:{image}", user_id=bea)
    subtle = await next_result(emulator, 1)
    assert request_of_job(db, job_of(db, subtle.id))["strength"] == 0.35

    comic = await emulator.click_button(single.id, f"img:comic:{image}", user_id=bea)
    note = await emulator.wait_for(lambda: comic.original, 10)
    assert note.ephemeral and "no active comic" in note.content
    await emulator.send_slash_command("comic", {"title": "Strip"}, subcommand="new", user_id=bea)
    comic = await emulator.click_button(single.id, f"img:comic:{image}", user_id=bea)
    note = await emulator.wait_for(lambda: comic.original, 10)
    assert "Added as panel 1" in note.content
    assert rows(db, "SELECT image_id FROM comic_panels") == [(image,)]

    # 🗑️ by a stranger: told no, privately; the result stays.
    refused = await emulator.click_button(single.id, f"job:delete:{job_id}", user_id=stranger)
    no = await emulator.wait_for(lambda: refused.original, 10)
    assert no.ephemeral and "Only the member who asked" in no.content
    assert not emulator.message(single.id).deleted
    # ... by the requester: gone. A moderator may delete anyone's.
    await emulator.click_button(single.id, f"job:delete:{job_id}", user_id=bea)
    await emulator.wait_for(lambda: emulator.message(single.id).deleted, 10)
    await emulator.click_button(subtle.id, f"job:delete:{job_of(db, subtle.id)}", user_id=moderator)
    await emulator.wait_for(lambda: emulator.message(subtle.id).deleted, 10)


async def test_reactions_upscale_vary_reroll_and_delete(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    cal, stranger = emulator.add_member("cal"), emulator.add_member("stranger")
    grid = await imagine(emulator, cal, seed=40)
    await emulator.wait_for(lambda: set(grid.reactions) == {"🔄", *NUMBERS}, 10)
    images = image_ids_of(db, grid.id)

    await emulator.add_reaction(grid.id, "3️⃣", user_id=cal)
    upscale = await next_result(emulator, 1)
    [(parent, width)] = rows(db, "SELECT parent_image_id, width FROM images WHERE job_id = ?", job_of(db, upscale.id))
    assert parent == images[2] and width == 128

    await emulator.add_reaction(upscale.id, "🎨", user_id=stranger)  # anyone may vary; the job is theirs
    variation = await next_result(emulator, 2)
    var_job = job_of(db, variation.id)
    assert request_of_job(db, var_job)["strength"] == 0.35
    [(requester,)] = rows(db, "SELECT requester_id FROM jobs WHERE id = ?", var_job)
    assert requester == stranger

    await emulator.add_reaction(grid.id, "🔄", user_id=cal)
    reroll = await next_result(emulator, 3)
    assert len(image_ids_of(db, reroll.id)) == 4

    # ❌ from a stranger does nothing (the reaction is taken away); from the requester it deletes.
    await emulator.add_reaction(grid.id, "❌", user_id=stranger)
    await emulator.wait_for(lambda: stranger not in grid.reactions.get("❌", set()), 10)
    assert not emulator.message(grid.id).deleted
    await emulator.add_reaction(grid.id, "❌", user_id=cal)
    await emulator.wait_for(lambda: emulator.message(grid.id).deleted, 10)


async def test_buttons_and_reactions_work_after_a_restart(
    emulator: DiscordEmulator, engine: object, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    settings = settings_for(emulator, tmp_path)
    first = await start_bot(emulator, engine, settings)
    dana = emulator.add_member("dana")
    try:
        grid = await imagine(emulator, dana, seed=77)
        single = await imagine(emulator, dana, seed=78, count=1)
    finally:
        await first.stop()
    images = image_ids_of(db, grid.id)
    [single_image] = image_ids_of(db, single.id)

    second = await start_bot(emulator, engine, settings)
    try:
        await emulator.click_button(grid.id, f"img:up:{images[0]}", user_id=dana)
        upscale = await next_result(emulator, 2)
        assert rows(db, "SELECT parent_image_id FROM images WHERE job_id = ?", job_of(db, upscale.id)) == [
            (images[0],)
        ]
        await emulator.click_button(single.id, f"img:vary:strong:{single_image}", user_id=dana)
        variation = await next_result(emulator, 3)
        assert request_of_job(db, job_of(db, variation.id))["init_image"]
        await emulator.add_reaction(grid.id, "2️⃣", user_id=dana)
        reaction_upscale = await next_result(emulator, 4)
        assert rows(db, "SELECT parent_image_id FROM images WHERE job_id = ?", job_of(db, reaction_upscale.id)) == [
            (images[1],)
        ]
        await emulator.add_reaction(single.id, "❌", user_id=dana)
        await emulator.wait_for(lambda: emulator.message(single.id).deleted, 10)
        info = await emulator.click_button(grid.id, f"img:info:{images[0]}", user_id=dana)
        reply = await emulator.wait_for(lambda: info.original, 10)
        assert "--seed 77" in reply.content
    finally:
        await second.stop()


async def test_upscales_of_upscales_stop_at_the_configured_size(
    emulator: DiscordEmulator, engine: object, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    settings = settings_for(
        emulator, tmp_path, generation={"max_pixels": 128 * 128, "max_upscaled_pixels": 128 * 128}
    )
    bot = await start_bot(emulator, engine, settings)
    try:
        eve = emulator.add_member("eve")
        single = await imagine(emulator, eve, seed=5, count=1)
        [image] = image_ids_of(db, single.id)
        await emulator.click_button(single.id, f"img:up:{image}", user_id=eve)
        upscale = await next_result(emulator, 1)
        assert upscale.attachments[0].image().size == (128, 128)
        [up_image] = image_ids_of(db, upscale.id)
        refused = await emulator.click_button(upscale.id, f"img:up:{up_image}", user_id=eve)
        reply = await emulator.wait_for(lambda: refused.original, 10)
        assert reply.ephemeral and "limit" in reply.content
        assert rows(db, "SELECT COUNT(*) FROM jobs") == [(2,)]
    finally:
        await bot.stop()
