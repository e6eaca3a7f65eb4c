"""What goes into /imagine and what may come out: flags, styles, uploads, safety, upload limits, mentions."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from playground import DiscordEmulator
from tests.harness import RunningBot, next_result, results, rows, settings_for, start_bot

WAIT = 60
CHECKER = "tests.safety_checkers:flag_keyword"


def last_request(db: Path) -> dict[str, Any]:
    [(text,)] = rows(db, "SELECT request_json FROM jobs ORDER BY id DESC LIMIT 1")
    return json.loads(text)  # type: ignore[no-any-return]


async def ephemeral_reply(emu: DiscordEmulator, name: str, options: dict[str, Any], user: int, **kw: Any) -> str:
    """The private refusal: the response itself, or (after a defer for uploads) an ephemeral followup
    with the public "thinking…" placeholder removed."""
    interaction = await emu.send_slash_command(name, options, user_id=user, **kw)

    def refusal() -> Any:
        if interaction.original is not None and interaction.original.ephemeral:
            return interaction.original
        return next((m for m in interaction.followups if m.ephemeral), None)

    reply = await emu.wait_for(refusal, 10)
    assert reply.ephemeral
    assert all(m.ephemeral or m.deleted for m in [interaction.original, *interaction.followups] if m is not None)
    return reply.content


def png(size: tuple[int, int] = (64, 64), colour: tuple[int, ...] = (200, 30, 30), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


class NativeSize:
    """The tiny engine reporting another native size, as a 512 or 1024 px model would (sizes only)."""

    def __init__(self, engine: Any, native: int) -> None:
        self._engine = engine
        self.native_size = native

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


# -- flags and options -------------------------------------------------------------------------------


async def test_flags_fill_the_request_and_explicit_options_win(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    fay = emulator.add_member("fay")
    prompt = "a red fox --seed 42 --steps 4 --cfg 6 --n 2 --no text, watermark"
    await emulator.send_slash_command("imagine", {"prompt": prompt}, user_id=fay)
    result = await next_result(emulator, 0)
    request = last_request(db)
    assert (request["prompt"], request["seed"], request["steps"], request["guidance"], request["count"]) == (
        "a red fox", 42, 4, 6.0, 2
    )
    assert request["negative_prompt"] == "text, watermark"
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    assert fields["Seeds"] == "42, 43" and fields["Negative"] == "text, watermark"

    # Options given explicitly win over the same flags; the rest of the flags still apply.
    options = {"prompt": prompt, "seed": 7, "steps": 3, "negative": "blur", "count": 1}
    await emulator.send_slash_command("imagine", options, user_id=fay)
    await next_result(emulator, 1)
    request = last_request(db)
    assert (request["seed"], request["steps"], request["guidance"], request["count"]) == (7, 3, 6.0, 1)
    assert request["negative_prompt"] == "blur"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a fox --colour red", "`--colour` is not a flag I know. Flags: `--ar`"),
        ("a fox --ar 16x9", "`--ar` needs a ratio like `16:9`"),
        ("a fox --ar 9:1", "too stretched"),
        ("a fox --seed -3", "`--seed` needs a whole number"),
        ("a fox --steps many", "`--steps` needs a whole number"),
        ("a fox --seed 1 --seed 2", "given twice"),
        ("a fox --style nonsense", "not a style I know"),
        ("a fox --steps 500", "`steps` must be between 1 and 100"),
        ("--seed 3", "`prompt` is empty"),
    ],
)
async def test_bad_flags_get_a_short_ephemeral_error_and_queue_nothing(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path, prompt: str, expected: str
) -> None:
    gus = emulator.add_member("gus")
    content = await ephemeral_reply(emulator, "imagine", {"prompt": prompt}, gus)
    assert expected in content
    assert rows(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM jobs") == [(0,)]


@pytest.mark.parametrize(
    ("flags", "size"),
    [("--ar 1:1", (128, 128)), ("--ar 2:1", (128, 64)), ("--ar 1:2", (64, 128)), ("--ar 16:9", (128, 64)),
     ("--size 192x64", (192, 64))],
)
async def test_aspect_ratio_keeps_about_the_native_pixel_count_in_multiples_of_64(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path, flags: str, size: tuple[int, int]
) -> None:
    bot = await start_bot(emulator, NativeSize(engine, 128), settings_for(emulator, tmp_path))
    try:
        hal = emulator.add_member("hal")
        await emulator.send_slash_command("imagine", {"prompt": f"a ship {flags}", "count": 1}, user_id=hal)
        result = await next_result(emulator, 0)
        assert result.attachments[0].image().size == size
        request = last_request(tmp_path / "bot.sqlite3")
        assert (request["width"], request["height"]) == size
        # An explicit width or height overrides --ar entirely.
        await emulator.send_slash_command(
            "imagine", {"prompt": f"a ship {flags}", "width": 64, "count": 1}, user_id=hal
        )
        await next_result(emulator, 1)
        assert (last_request(tmp_path / "bot.sqlite3")["width"], last_request(tmp_path / "bot.sqlite3")["height"]) == (
            64, 128
        )
    finally:
        await bot.stop()


# -- styles ------------------------------------------------------------------------------------------


async def test_styles_from_config_wrap_the_prompt_and_autocomplete(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    settings = settings_for(
        emulator, tmp_path, generation={"default_count": 1},
        styles={"noir": {"prefix": "film noir still", "negative": "color", "steps": 4, "description": "1940s"},
                "anime": {"enabled": False},
                # The tiny model reads 77 characters at most: shorten the shipped comic style's text.
                "comic": {"suffix": "bold ink", "negative": "text"}},
    )
    bot = await start_bot(emulator, engine, settings)
    try:
        ivy = emulator.add_member("ivy")
        choices = await emulator.autocomplete("imagine", {"prompt": "x", "style": ""}, "style", user_id=ivy)
        names = [c["value"] for c in choices]
        assert "noir" in names and "comic" in names and "anime" not in names
        typed = await emulator.autocomplete("imagine", {"prompt": "x", "style": "man"}, "style", user_id=ivy)
        assert [c["value"] for c in typed] == ["manga"]

        await emulator.send_slash_command("imagine", {"prompt": "a detective", "style": "noir"}, user_id=ivy)
        await next_result(emulator, 0)
        request = last_request(db)
        assert request["prompt"] == "film noir still, a detective" and request["negative_prompt"] == "color"
        assert request["steps"] == 4  # the style's default ...
        await emulator.send_slash_command("imagine", {"prompt": "a robot --style comic --steps 3"}, user_id=ivy)
        await next_result(emulator, 1)
        request = last_request(db)
        assert request["prompt"] == "comic book panel, a robot, bold ink" and request["negative_prompt"] == "text"
        assert request["guidance"] == 7.5 and request["steps"] == 3  # ... never a value the member gave
        content = await ephemeral_reply(emulator, "imagine", {"prompt": "a cat", "style": "anime"}, ivy)
        assert "not a style I know" in content and "noir" in content
    finally:
        await bot.stop()


# -- img2img and inpainting from attachments -------------------------------------------------------


async def test_img2img_and_inpaint_from_uploaded_image_and_mask(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    jo = emulator.add_member("jo")
    source = png((96, 64), (220, 40, 40))
    await emulator.send_slash_command(
        "imagine", {"prompt": "a red sunset", "strength": 0.5, "count": 1}, user_id=jo,
        attachments={"image": ("photo.png", source, "image/png")},
    )
    img2img = await next_result(emulator, 0)
    request = last_request(db)
    assert request["kind"] == "img2img" and request["strength"] == 0.5 and request["init_image"]
    # The upload's 3:2 shape at about the native 64x64 pixel count (the short side at least the
    # configured minimum, 64), sides multiples of 8.
    assert (request["width"], request["height"]) == (96, 64) == img2img.attachments[0].image().size
    stored = Image.open(tmp_path / "images" / request["init_image"])
    assert stored.size == (96, 64)
    [(parent, kind)] = rows(db, "SELECT parent_image_id, kind FROM jobs ORDER BY id DESC LIMIT 1")
    assert parent is None and kind == "img2img"

    # Inpainting: white is redrawn, black kept. Two seeds give the same kept border and a
    # different centre.
    square = png((64, 64), (30, 200, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    outputs = []
    for seed in (3, 4):
        await emulator.send_slash_command(
            "imagine", {"prompt": "a hole", "strength": 1.0, "count": 1, "seed": seed}, user_id=jo,
            attachments={"image": ("green.png", square, "image/png"),
                         "mask": ("mask.png", buffer.getvalue(), "image/png")},
        )
        inpaint = await next_result(emulator, len(outputs) + 1)
        outputs.append(np.asarray(inpaint.attachments[0].image().convert("RGB"), dtype=np.int16))
        request = last_request(db)
        assert request["kind"] == "inpaint" and request["mask_image"] and request["strength"] == 1.0
    centre = np.abs(outputs[0][20:44, 20:44] - outputs[1][20:44, 20:44]).mean()
    border = np.abs(outputs[0][:6, :] - outputs[1][:6, :]).mean()
    assert centre > 5 * border, (centre, border)
    fields = {f["name"]: f["value"] for f in inpaint.embeds[0]["fields"]}
    assert fields["Strength"] == "1"


@pytest.mark.parametrize(
    ("attachments", "options", "expected"),
    [
        ({"image": ("anim.gif", b"GIF89a" + b"\x00" * 40, "image/gif")}, {}, "`image/gif`; upload a PNG, JPEG or WebP"),
        ({"image": ("big.png", png((64, 64)) + b"\x00" * 6000, "image/png")}, {}, "the limit is 4 KB"),
        ({"image": ("huge.png", png((100, 100)), "image/png")}, {}, "100x100 (10,000 pixels); the limit is 9,216"),
        ({"image": ("bomb.png", bomb_png(), "image/png")}, {}, "far too many pixels"),
        ({"image": ("broken.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "image/png")}, {}, "may be damaged"),
        ({"image": ("empty.png", b"", "image/png")}, {}, "is empty"),
        ({"image": ("a.png", png((64, 64)), "image/png"), "mask": ("m.png", png((64, 32), (255,), "L"), "image/png")},
         {}, "the mask must have the image's shape"),
        ({"mask": ("m.png", png((64, 64), (255,), "L"), "image/png")}, {}, "work on an uploaded `image`"),
        ({}, {"strength": 0.5}, "work on an uploaded `image`"),
    ],
)
async def test_bad_attachments_are_refused_before_queueing(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path,
    attachments: dict[str, tuple[str, bytes, str]], options: dict[str, Any], expected: str,
) -> None:
    settings = settings_for(emulator, tmp_path, generation={"max_upload_bytes": 4096, "max_upload_pixels": 96 * 96})
    bot = await start_bot(emulator, engine, settings)
    try:
        kim = emulator.add_member("kim")
        content = await ephemeral_reply(
            emulator, "imagine", {"prompt": "x", **options}, kim, attachments=attachments or None
        )
        assert expected in content
        assert rows(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM jobs") == [(0,)]
    finally:
        await bot.stop()


# -- safety ------------------------------------------------------------------------------------------


async def test_flagged_images_are_never_posted_visibly(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, safety={"checker": CHECKER, "age_restricted_action": "allow"})
    bot = await start_bot(emulator, engine, settings)
    try:
        lea = emulator.add_member("lea")
        await emulator.send_slash_command("imagine", {"prompt": "a forbidden fruit", "count": 1}, user_id=lea)
        withheld = await emulator.wait_for(lambda: results(emulator)[0] if results(emulator) else None, WAIT)
        assert withheld.attachments == [] and "image" not in withheld.embeds[0]
        assert any("flagged" in f["value"] for f in withheld.embeds[0]["fields"])
        assert not any("img:up:" in c for c, _, _ in withheld.buttons() if c)
        await emulator.send_slash_command("imagine", {"prompt": "a forbidden fruit"}, user_id=lea)
        grid = await emulator.wait_for(lambda: results(emulator)[1] if len(results(emulator)) > 1 else None, WAIT)
        assert grid.attachments == []
        # An unflagged prompt posts as usual; in the age-restricted channel flagged images are allowed here.
        await emulator.send_slash_command("imagine", {"prompt": "an apple", "count": 1}, user_id=lea)
        assert (await next_result(emulator, 2)).attachments
        await emulator.send_slash_command(
            "imagine", {"prompt": "a forbidden fruit", "count": 1}, user_id=lea, channel_id=emulator.nsfw_channel_id
        )
        allowed = await next_result(emulator, 3)
        assert allowed.attachments and not allowed.attachments[0].spoiler
    finally:
        await bot.stop()
    # Any message anywhere: no flagged image was ever visible outside the age-restricted channel.
    for message in emulator.messages():
        if message.channel_id != emulator.nsfw_channel_id and "forbidden" in json.dumps(message.embeds):
            assert message.attachments == []


async def test_spoiler_action_and_blocked_words(emulator: DiscordEmulator, engine: Any, tmp_path: Path) -> None:
    settings = settings_for(
        emulator, tmp_path,
        safety={"checker": CHECKER, "nsfw_action": "spoiler", "blocked_words": ["gore", "blood bath"]},
    )
    bot = await start_bot(emulator, engine, settings)
    try:
        max_ = emulator.add_member("max")
        await emulator.send_slash_command("imagine", {"prompt": "a forbidden fruit"}, user_id=max_)
        result = await next_result(emulator, 0)
        [attachment] = result.attachments
        assert attachment.spoiler and attachment.filename.startswith("SPOILER_")
        assert result.embeds[0]["image"]["url"] == f"attachment://{attachment.filename}"
        for prompt in ("lots of GORE", "a Blood-Bath at dawn", "g0re"):
            content = await ephemeral_reply(emulator, "imagine", {"prompt": prompt}, max_)
            assert "doesn't allow" in content
        assert rows(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM jobs") == [(1,)]
    finally:
        await bot.stop()


# -- Discord's limits ------------------------------------------------------------------------------


async def test_results_over_the_upload_limit_are_re_encoded_to_fit(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, generation={"max_result_bytes": 1024 * 1024})
    bot = await start_bot(emulator, engine, settings)
    try:
        ned = emulator.add_member("ned")
        await emulator.send_slash_command("imagine", {"prompt": "static", "seed": 1}, user_id=ned)
        png_grid = await next_result(emulator, 0)
        assert png_grid.attachments[0].content_type == "image/png"
        full_size = png_grid.attachments[0].size
        limit = full_size // 2
        emulator.set_upload_limit(limit)
        # From a slash command: the interaction says how much may be uploaded.
        await emulator.send_slash_command("imagine", {"prompt": "static", "seed": 1}, user_id=ned)
        fitted = await next_result(emulator, 1)
        [attachment] = fitted.attachments
        assert attachment.content_type in ("image/webp", "image/jpeg") and attachment.size <= limit
        assert attachment.image().size == (128, 128)
        assert fitted.embeds[0]["image"]["url"] == f"attachment://{attachment.filename}"
        # From a reaction: no interaction; Discord's 413 makes the bot re-encode smaller, never fail.
        await emulator.add_reaction(png_grid.id, "🔄", user_id=ned)
        reroll = await next_result(emulator, 2)
        assert reroll.attachments[0].size <= limit
        statuses = rows(tmp_path / "bot.sqlite3", "SELECT status FROM jobs")
        assert statuses == [("done",), ("done",), ("done",)]
    finally:
        await bot.stop()


async def test_prompts_never_ping_anyone_and_texts_stay_within_limits(
    emulator: DiscordEmulator, running_bot: RunningBot
) -> None:
    ola, victim = emulator.add_member("ola"), emulator.add_member("victim")
    prompt = f"@everyone <@{victim}> <@&{emulator.moderator_role_id}> hi"
    await emulator.send_slash_command("imagine", {"prompt": prompt, "count": 1}, user_id=ola)
    result = await next_result(emulator, 0)
    await emulator.add_reaction(result.id, "🔄", user_id=ola)
    await next_result(emulator, 1)
    for message in emulator.messages():
        if message.author_id != emulator.bot_user_id:
            continue
        assert victim not in emulator.world.mention_ids(message)
        parse = (message.allowed_mentions or {}).get("parse") or []
        assert "everyone" not in parse and "roles" not in parse
        assert len(message.content) <= 2000
        for embed in message.embeds:
            assert len(embed.get("title", "")) <= 256 and len(embed.get("description", "")) <= 4096
