"""/imagine end to end: the real bot, the Discord emulator, the tiny model and a real SQLite file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from playground import DiscordEmulator, EmuMessage
from tests.harness import RunningBot, rows, settings_for, start_bot
from tests.harness import image_posts as results

EPHEMERAL = 1 << 6


async def imagine(emu: DiscordEmulator, user: int, **options: object) -> EmuMessage:
    """Run /imagine and wait for its result message, once recorded (the bot seeds 🔄 on a result after
    recording it; a reaction that came sooner would find no result to act on)."""
    before = len(results(emu))
    await emu.send_slash_command("imagine", {"prompt": "a lighthouse at dusk", **options}, user_id=user)
    message = await emu.wait_for(lambda: results(emu)[before] if len(results(emu)) > before else None, timeout=60)
    await emu.wait_for(lambda: "🔄" in message.reactions, 10)
    return message


def pixels(message: EmuMessage, index: int = 0) -> np.ndarray:
    return np.asarray(message.attachments[index].image().convert("RGB"), dtype=np.int16)


async def test_imagine_posts_a_png_with_seed_rows_and_file(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    alice = emulator.add_member("alice")
    result = await imagine(emulator, alice, seed=1234, count=1)

    interaction = emulator.interactions[0]
    assert interaction.ack_ms is not None and interaction.ack_ms < 3000
    status = interaction.original
    assert status is not None and not status.ephemeral
    [attachment] = result.attachments
    assert attachment.content_type == "image/png" and attachment.filename.endswith(".png")
    assert attachment.image().size == (64, 64)
    embed = result.embeds[0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Seed"] == "1234" and fields["Size"] == "64x64" and fields["Steps"] == "3"
    assert fields["Model"] == "tiny-sd"
    assert embed["image"]["url"] == f"attachment://{attachment.filename}"
    await emulator.wait_for(lambda: set(result.reactions) == {"🔄", "🔍", "🎨"}, timeout=10)

    await emulator.wait_for(lambda: "Done" in (status.content or ""), timeout=10)
    db = tmp_path / "bot.sqlite3"
    [(job_id, job_status, requester)] = rows(db, "SELECT id, status, requester_id FROM jobs")
    assert job_status == "done" and requester == alice
    [(path, sha, seed, width)] = rows(db, "SELECT path, sha256, seed, width FROM images WHERE job_id = ?", job_id)
    assert seed == 1234 and width == 64
    stored = (tmp_path / "images" / str(path)).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == sha == hashlib.sha256(attachment.data).hexdigest()
    assert rows(db, "SELECT kind FROM messages WHERE message_id = ?", result.id) == [("result",)]


async def test_same_seed_same_pixels_other_seed_differs(
    emulator: DiscordEmulator, running_bot: RunningBot
) -> None:
    bob = emulator.add_member("bob")
    first = await imagine(emulator, bob, seed=42, count=1)
    second = await imagine(emulator, bob, seed=42, count=1)
    third = await imagine(emulator, bob, seed=43, count=1)
    assert np.array_equal(pixels(first), pixels(second))
    assert np.abs(pixels(first) - pixels(third)).mean() > 1.0


async def test_count_gives_one_grid_with_a_seed_per_image(emulator: DiscordEmulator, running_bot: RunningBot) -> None:
    carol = emulator.add_member("carol")
    result = await imagine(emulator, carol, seed=10, count=2)
    [grid] = result.attachments
    assert grid.image().size == (128, 64)  # two 64x64 images side by side
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    assert fields["Seeds"] == "10, 11"


async def test_status_message_shows_steps(emulator: DiscordEmulator, running_bot: RunningBot) -> None:
    dave = emulator.add_member("dave")
    await emulator.send_slash_command("imagine", {"prompt": "a slow one", "steps": 60}, user_id=dave)
    status = await emulator.wait_for(lambda: emulator.interactions[0].original, timeout=10)
    await emulator.wait_for(lambda: "step " in status.content and "/60" in status.content, timeout=120)
    await emulator.wait_for(lambda: results(emulator), timeout=120)  # 60 steps: a minute or more on a busy CPU


async def test_reroll_and_upscale_reactions(emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path) -> None:
    erin = emulator.add_member("erin")
    original = await imagine(emulator, erin, seed=7, count=1)

    await emulator.add_reaction(original.id, "🔄", user_id=erin)
    reroll = await emulator.wait_for(lambda: results(emulator)[1] if len(results(emulator)) > 1 else None, 60)
    seed_of = {m.id: {f["name"]: f["value"] for f in m.embeds[0]["fields"]}["Seed"] for m in (original, reroll)}
    assert seed_of[reroll.id] != seed_of[original.id]
    assert not np.array_equal(pixels(original), pixels(reroll))

    await emulator.add_reaction(original.id, "🔍", user_id=erin)
    upscale = await emulator.wait_for(lambda: results(emulator)[2] if len(results(emulator)) > 2 else None, 60)
    assert upscale.attachments[0].image().size == (128, 128)
    db = tmp_path / "bot.sqlite3"
    parents = rows(db, "SELECT parent_image_id FROM images ORDER BY id")
    assert parents[0] == (None,) and parents[1] == (1,) and parents[2] == (1,)


async def test_bot_ignores_its_own_reactions_and_other_messages(
    emulator: DiscordEmulator, running_bot: RunningBot
) -> None:
    frank = emulator.add_member("frank")
    result = await imagine(emulator, frank, seed=3)
    plain = await emulator.post_message("just chatting", user_id=frank)
    await emulator.add_reaction(plain.id, "🔄", user_id=frank)  # not a result
    await emulator.add_reaction(result.id, "🔄", user_id=emulator.bot_user_id)  # the bot's own
    await emulator.add_reaction(result.id, "👍", user_id=frank)  # not ours to act on
    # A later request still comes out second: nothing was queued by the reactions above.
    second = await imagine(emulator, frank, seed=4)
    assert len(results(emulator)) == 2 and second.id != result.id
    assert running_bot.queue.pending_count() == 0 and not running_bot.queue.running()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"width": 100}, "width"),
        ({"steps": 120}, "steps"),  # inside the option's range, past the config's max_steps (100)
        ({"prompt": "   "}, "prompt"),
        ({"height": 2048, "width": 2048}, "width"),
    ],
)
async def test_invalid_input_is_answered_ephemerally_and_queues_nothing(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path, options: dict[str, object], field: str
) -> None:
    gina = emulator.add_member("gina")
    interaction = await emulator.send_slash_command("imagine", {"prompt": "x", **options}, user_id=gina)
    reply = await emulator.wait_for(lambda: interaction.original, timeout=10)
    assert reply.ephemeral and reply.flags & EPHEMERAL
    assert f"`{field}`" in reply.content or field in reply.content
    assert rows(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM jobs") == [(0,)]
    assert results(emulator) == []


async def test_steps_zero_is_refused_by_discord_before_the_bot(
    emulator: DiscordEmulator, running_bot: RunningBot
) -> None:
    """The option's range is registered with Discord (min 1), so Discord's client refuses 0 itself."""
    from playground import CommandUsageError

    with pytest.raises(CommandUsageError, match="steps"):
        await emulator.send_slash_command("imagine", {"prompt": "x", "steps": 0}, user_id=emulator.owner_id)
    [command] = [c for c in emulator.commands(emulator.guild_id) if c["name"] == "imagine"]
    steps = next(o for o in command["options"] if o["name"] == "steps")
    assert steps["min_value"] == 1 and steps["description"]


async def test_reactions_work_after_a_restart(emulator: DiscordEmulator, engine: object, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path)
    first = await start_bot(emulator, engine, settings)
    hana = emulator.add_member("hana")
    try:
        original = await imagine(emulator, hana, seed=99, count=1)
    finally:
        await first.stop()

    second = await start_bot(emulator, engine, settings)
    try:
        await emulator.add_reaction(original.id, "🔄", user_id=hana)
        reroll = await emulator.wait_for(lambda: results(emulator)[1] if len(results(emulator)) > 1 else None, 60)
        assert reroll.attachments[0].image().size == (64, 64)
    finally:
        await second.stop()


async def test_token_never_reaches_logs_or_database(
    emulator: DiscordEmulator, engine: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    running = await start_bot(emulator, engine, settings_for(emulator, tmp_path))
    try:
        await imagine(emulator, emulator.add_member("ivan"), seed=5)
    finally:
        await running.stop()
    assert emulator.token not in caplog.text
    for path in sorted(tmp_path.glob("bot.sqlite3*")):  # noqa: ASYNC240 - the bot is stopped; a test read
        assert emulator.token.encode() not in path.read_bytes()
