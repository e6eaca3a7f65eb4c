"""What members can do and see: caps under a burst, safety around comics, /history's scope, permissions.

Each test here once failed on the code before its fix (see the commit messages). The real bot runs
against the emulator with the tiny model; a *gated* engine (the real engine, held until the test
opens its gate) keeps jobs queued for as long as a test needs them queued, without timing luck.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from playground import DiscordEmulator, EmuInteraction, EmuMessage
from tests.harness import RunningBot, next_result, results, rows, settings_for, start_bot
from tests.reliability import record_reliability

CHECKER = "tests.safety_checkers:flag_keyword"
#: The longest a gated engine waits for its gate (a test that forgets to open it still ends).
GATE_WAIT_S = 120.0


class GatedEngine:
    """The real engine; each pipeline call waits until :attr:`gate` is set."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.gate.wait(GATE_WAIT_S)
        return self._engine.run(*args, **kwargs)

    def run_batch(self, *args: Any, **kwargs: Any) -> Any:
        self.gate.wait(GATE_WAIT_S)
        return self._engine.run_batch(*args, **kwargs)


@pytest.fixture
async def gated(engine: Any) -> AsyncIterator[GatedEngine]:
    wrapper = GatedEngine(engine)
    try:
        yield wrapper
    finally:
        wrapper.gate.set()


async def answer_of(emu: DiscordEmulator, interaction: EmuInteraction) -> EmuMessage:
    """The interaction's first answer: its original response, or its first follow-up."""
    def found() -> EmuMessage | None:
        if interaction.original is not None and interaction.original.content:
            return interaction.original
        return interaction.followups[0] if interaction.followups else None

    return await emu.wait_for(found, timeout=15)


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def job_count(db: Path) -> int:
    [(count,)] = rows(db, "SELECT COUNT(*) FROM jobs")
    return int(count)  # type: ignore[call-overload]


# -- defect 11: the per-member cap under a burst ------------------------------------------------------


async def test_a_burst_of_30_imagine_queues_only_the_members_cap(
    emulator: DiscordEmulator, gated: GatedEngine, tmp_path: Path
) -> None:
    bot = await start_bot(emulator, gated, settings_for(emulator, tmp_path, queue={"max_pending_per_user": 3}))
    try:
        ivy = emulator.add_member("ivy")
        sent = await asyncio.gather(*(
            emulator.send_slash_command("imagine", {"prompt": f"burst {n}", "count": 1}, user_id=ivy)
            for n in range(30)
        ))
        answers = [await answer_of(emulator, interaction) for interaction in sent]
        refused = [a for a in answers if a.ephemeral and "the limit is 3" in a.content]
        queued = [a for a in answers if not a.ephemeral]
        assert (len(queued), len(refused)) == (3, 27)
        assert job_count(tmp_path / "bot.sqlite3") == 3
        gated.gate.set()
        await emulator.wait_for(lambda: len(results(emulator)) == 3 or None, timeout=120)
    finally:
        await bot.stop()
    record_reliability("defect", "11. per-member cap under a burst: 30 /imagine at once, cap 3", 30,
                       "3 queued, 27 refused with message")


async def test_a_servers_share_of_the_queue_is_enforced_with_a_message(
    emulator: DiscordEmulator, gated: GatedEngine, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, queue={"max_pending_per_user": 3, "max_pending_per_guild": 4})
    bot = await start_bot(emulator, gated, settings)
    try:
        members = [emulator.add_member(f"m{n}") for n in range(3)]
        sent = await asyncio.gather(*(
            emulator.send_slash_command("imagine", {"prompt": f"share {n}", "count": 1}, user_id=member)
            for member in members for n in range(2)
        ))
        answers = [await answer_of(emulator, interaction) for interaction in sent]
        refused = [a for a in answers if a.ephemeral and "This server already has 4 jobs" in a.content]
        assert (len(refused), job_count(tmp_path / "bot.sqlite3")) == (2, 4)
        gated.gate.set()
        await emulator.wait_for(lambda: len(results(emulator)) == 4 or None, timeout=120)
    finally:
        await bot.stop()
    record_reliability("defect", "13. per-server share of the queue: 6 jobs, share 4", 6,
                       "4 queued, 2 refused with message")


# -- defect 7: the DM policy -------------------------------------------------------------------------


def dm_channel(emu: DiscordEmulator, user: int) -> int:
    """A channel the emulator stores a DM's messages in (the interaction itself comes without a guild)."""
    return emu.world.add_channel(f"dm-{user}")


async def test_commands_in_dms_are_refused_by_default(emulator: DiscordEmulator, running_bot: RunningBot,
                                                      tmp_path: Path) -> None:
    dee = emulator.add_member("dee")
    channel = dm_channel(emulator, dee)
    for name, options in (("imagine", {"prompt": "a boat"}), ("history", {}), ("queue", {}), ("cancel", {})):
        sent = await emulator.send_slash_command(name, options, user_id=dee, channel_id=channel, dm=True)
        answer = await answer_of(emulator, sent)
        assert answer.ephemeral and "servers only" in answer.content, (name, answer.content)
    assert job_count(tmp_path / "bot.sqlite3") == 0
    imagine = next(c for c in emulator.commands(emulator.guild_id) if c["name"] == "imagine")
    assert imagine.get("dm_permission") is False or imagine.get("contexts") == [0]
    record_reliability("defect", "7. commands in DMs: refused by default", 4, "refused with message")


async def test_dms_allowed_by_the_switch_keep_the_same_caps(
    emulator: DiscordEmulator, gated: GatedEngine, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, discord={"allow_dms": True}, queue={"max_pending_per_user": 1})
    bot = await start_bot(emulator, gated, settings)
    try:
        dee = emulator.add_member("dee")
        channel = dm_channel(emulator, dee)
        first = await answer_of(emulator, await emulator.send_slash_command(
            "imagine", {"prompt": "a boat", "count": 1}, user_id=dee, channel_id=channel, dm=True))
        second = await answer_of(emulator, await emulator.send_slash_command(
            "imagine", {"prompt": "a boat", "count": 1}, user_id=dee, channel_id=channel, dm=True))
        assert not first.ephemeral and second.ephemeral and "the limit is 1" in second.content
        assert rows(tmp_path / "bot.sqlite3", "SELECT guild_id FROM jobs") == [(None,)]
        gated.gate.set()
        await emulator.wait_for(lambda: len(results(emulator)) == 1 or None, timeout=120)
    finally:
        await bot.stop()
    record_reliability("defect", "7. commands in DMs: allowed by [discord] allow_dms with the same caps", 2,
                       "1 queued, 1 refused at the cap")


# -- defect 2: /history stays in its server and hides withheld and deleted results --------------------


async def test_history_shows_only_this_servers_visible_images(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, discord={"allow_dms": True}, safety={"checker": CHECKER})
    bot = await start_bot(emulator, engine, settings)
    try:
        ada, bob = emulator.add_member("ada"), emulator.add_member("bob")
        for n, prompt in enumerate(("an apple", "a forbidden fruit", "a pear")):
            await emulator.send_slash_command("imagine", {"prompt": prompt, "count": 1}, user_id=ada)
            result = await next_result(emulator, n)
        await emulator.add_reaction(result.id, "❌", user_id=ada)  # ada deletes the pear
        await emulator.wait_for(lambda: rows(tmp_path / "bot.sqlite3",
                                             "SELECT 1 FROM images WHERE deleted_at IS NOT NULL") or None, timeout=15)
        await emulator.send_slash_command("imagine", {"prompt": "a secret plum", "count": 1}, user_id=ada,
                                          channel_id=dm_channel(emulator, ada), dm=True)
        await emulator.wait_for(lambda: rows(tmp_path / "bot.sqlite3",
                                             "SELECT 1 FROM images WHERE guild_id IS NULL") or None, timeout=60)
        page = await answer_of(emulator, await emulator.send_slash_command("history", {"user": ada}, user_id=bob))
        assert "apple" in page.content
        for hidden in ("forbidden", "pear", "plum"):
            assert hidden not in page.content, page.content
        assert len(page.attachments) == 1
    finally:
        await bot.stop()
    record_reliability("defect", "2. /history: another server's or a DM's, withheld and deleted images", 3,
                       "not shown")


# -- defect 1: comics get around neither safety layer --------------------------------------------------


async def comic_command(emu: DiscordEmulator, sub: str, user: int, group: str | None = None,
                        **options: object) -> EmuMessage:
    sent = await emu.send_slash_command("comic", options, user_id=user, subcommand=sub, group=group)
    return await emu.wait_for(
        lambda: sent.original if sent.original is not None and not sent.original.loading else None, 60
    )


async def test_blocked_words_apply_to_comic_panels_edits_and_characters(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, safety={"blocked_words": ["gore"]})
    bot = await start_bot(emulator, engine, settings)
    try:
        kit = emulator.add_member("kit")
        await comic_command(emulator, "new", kit, title="Night")
        before = job_count(tmp_path / "bot.sqlite3")
        refused = await comic_command(emulator, "panel", kit, prompt="a street full of gore")
        assert refused.ephemeral and "doesn't allow" in refused.content
        refused = await comic_command(emulator, "add", kit, group="character", name="Rex",
                                      description="a beast dripping gore")
        assert refused.ephemeral and "doesn't allow" in refused.content
        await comic_command(emulator, "panel", kit, prompt="a quiet street")
        await emulator.wait_for(lambda: len(results(emulator)) == 1 or None, timeout=60)
        refused = await comic_command(emulator, "edit", kit, panel=1, prompt="g0re everywhere")
        assert refused.ephemeral and "doesn't allow" in refused.content
        assert job_count(tmp_path / "bot.sqlite3") == before + 1
    finally:
        await bot.stop()
    record_reliability("defect", "1. comics bypass safety: blocked word in /comic panel, edit, character", 3,
                       "refused with message")


async def test_withheld_images_stay_out_of_comics_and_reactions(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path, safety={"checker": CHECKER}))
    try:
        kit = emulator.add_member("kit")
        await comic_command(emulator, "new", kit, title="Night")
        await comic_command(emulator, "panel", kit, prompt="a forbidden door")
        panel_result = await next_result(emulator, 0)
        assert panel_result.attachments == []
        await emulator.wait_for(lambda: rows(tmp_path / "bot.sqlite3",
                                             "SELECT image_id FROM comic_panels WHERE image_id IS NOT NULL") or None,
                                timeout=30)
        shown = await comic_command(emulator, "show", kit)
        assert "withheld by the safety checker" in shown.content
        # 📖 and 🔍 / 🎨 on a withheld /imagine result: refused, nothing made from it.
        await emulator.send_slash_command("imagine", {"prompt": "a forbidden fruit", "count": 1}, user_id=kit)
        withheld = await next_result(emulator, 1)
        jobs = job_count(tmp_path / "bot.sqlite3")
        for emoji, words in (("📖", "withheld"), ("🔍", "withheld"), ("🎨", "withheld")):
            await emulator.add_reaction(withheld.id, emoji, user_id=kit)
            await emulator.wait_for(lambda w=words: any(  # type: ignore[misc]
                w in m.content and m.content.startswith(f"<@{kit}>") for m in emulator.messages()
            ) or None, timeout=15)
        assert job_count(tmp_path / "bot.sqlite3") == jobs
        [(panels,)] = rows(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM comic_panels")
        assert panels == 1
    finally:
        await bot.stop()
    record_reliability("defect", "1. comics bypass safety: withheld image in /comic show, 📖", 2,
                       "shown blank with a note; 📖 refused")
    record_reliability("defect", "13. reactions act on withheld images (🔍, 🎨)", 2, "refused with message")


# -- defect 10: vary an upscale ---------------------------------------------------------------------


async def test_vary_on_an_upscaled_image_is_drawn_within_the_limits(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, generation={"default_steps": 3, "max_pixels": 64 * 64})
    bot = await start_bot(emulator, engine, settings)
    try:
        ray = emulator.add_member("ray")
        await emulator.send_slash_command("imagine", {"prompt": "a kite", "count": 1, "width": 64, "height": 64},
                                          user_id=ray)
        first = await next_result(emulator, 0)
        await emulator.add_reaction(first.id, "🔍", user_id=ray)
        upscale = await next_result(emulator, 1)
        assert upscale.attachments[0].image().size == (128, 128)
        await emulator.add_reaction(upscale.id, "🎨", user_id=ray)
        varied = await next_result(emulator, 2)
        assert varied.attachments[0].image().size == (64, 64)
    finally:
        await bot.stop()
    record_reliability("defect", "10. vary on an upscaled image", 1, "drawn at a size within max_pixels")


# -- defect 4: a refused request stores nothing ----------------------------------------------------------


def stored_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "images").rglob("*.png")) if (tmp_path / "images").exists() else []


async def test_a_refused_upload_leaves_no_file(
    emulator: DiscordEmulator, gated: GatedEngine, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, queue={"max_pending_per_user": 1})
    bot = await start_bot(emulator, gated, settings)
    try:
        uma = emulator.add_member("uma")
        upload = {"image": ("photo.png", png(), "image/png")}
        refused = await answer_of(emulator, await emulator.send_slash_command(
            "imagine", {"prompt": "a cat", "steps": 150}, user_id=uma, attachments=upload))
        assert "`steps` must be between" in refused.content
        assert stored_files(tmp_path) == []
        await answer_of(emulator, await emulator.send_slash_command("imagine", {"prompt": "a dog", "count": 1},
                                                                   user_id=uma))
        refused = await answer_of(emulator, await emulator.send_slash_command(
            "imagine", {"prompt": "a cat"}, user_id=uma, attachments=upload))
        assert "the limit is 1" in refused.content
        assert stored_files(tmp_path) == []
        gated.gate.set()
        await emulator.wait_for(lambda: len(results(emulator)) == 1 or None, timeout=120)
    finally:
        await bot.stop()
    record_reliability("defect", "4. uploads stored before validation: refused for steps, for the cap", 2,
                       "refused with message, no file stored")


# -- defect 13: prompts are quoted, not rendered --------------------------------------------------------


async def test_prompts_are_markdown_escaped_in_status_and_result(
    emulator: DiscordEmulator, running_bot: RunningBot
) -> None:
    eve = emulator.add_member("eve")
    prompt = "[free nitro](https://evil.example) **now** <@1>"
    sent = await emulator.send_slash_command("imagine", {"prompt": prompt, "count": 1}, user_id=eve)
    status = await answer_of(emulator, sent)
    result = await next_result(emulator, 0)
    embed = result.embeds[0]
    for text in (status.content, embed["description"], embed["title"]):
        assert "](https://" not in text and "**now**" not in text and "<@1>" not in text, text
    record_reliability("defect", "13. prompts not markdown-escaped in status and result messages", 3,
                       "escaped, masked link broken")


# -- build item 5 and defect 13: who may cancel and delete, in channels and threads --------------------


async def test_requester_or_manage_messages_cancel_and_delete_in_a_thread(
    emulator: DiscordEmulator, gated: GatedEngine, tmp_path: Path
) -> None:
    thread = emulator.world.add_thread(emulator.channel_id, "art-thread")
    db = tmp_path / "bot.sqlite3"
    bot = await start_bot(emulator, gated, settings_for(emulator, tmp_path))
    try:
        ann, stranger = emulator.add_member("ann"), emulator.add_member("stranger")
        mod = emulator.add_member("mod", moderator=True)
        # The first job holds the (gated) GPU, so the next one waits in the queue, where ❌ cancels it at once.
        await answer_of(emulator, await emulator.send_slash_command(
            "imagine", {"prompt": "a blocker", "count": 1}, user_id=mod, channel_id=thread))
        status = await answer_of(emulator, await emulator.send_slash_command(
            "imagine", {"prompt": "a moth", "count": 1}, user_id=ann, channel_id=thread))
        await emulator.wait_for(lambda: rows(db, "SELECT 1 FROM messages WHERE message_id = ?", status.id) or None, 10)
        await emulator.add_reaction(status.id, "❌", user_id=stranger)
        await emulator.wait_for(lambda: stranger not in status.reactions.get("❌", set()), timeout=10)
        assert "Cancelled" not in status.content
        await emulator.add_reaction(status.id, "❌", user_id=mod)
        await emulator.wait_for(lambda: "Cancelled" in status.content or None, timeout=30)

        gated.gate.set()
        await emulator.send_slash_command("imagine", {"prompt": "a lamp", "count": 1}, user_id=ann, channel_id=thread)
        await next_result(emulator, 0)  # the blocker's
        result = await next_result(emulator, 1)
        await emulator.add_reaction(result.id, "❌", user_id=stranger)
        await emulator.wait_for(lambda: stranger not in result.reactions.get("❌", set()), timeout=10)
        assert not emulator.message(result.id).deleted
        await emulator.add_reaction(result.id, "❌", user_id=mod)
        await emulator.wait_for(lambda: emulator.message(result.id).deleted or None, timeout=15)
        await emulator.wait_for(
            lambda: rows(db, "SELECT COUNT(*) FROM images WHERE deleted_at IS NOT NULL") == [(1,)] or None, 10
        )
    finally:
        await bot.stop()
    record_reliability("permissions", "❌ cancel and delete in a thread: stranger refused, moderator allowed", 4,
                       "stranger's ❌ removed; moderator's honoured")
    record_reliability("defect", "13. moderators cannot ❌ in threads", 2, "moderator's ❌ honoured in a thread")


async def test_switching_between_global_and_guild_commands_leaves_one_copy(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    as_global = settings_for(emulator, tmp_path, discord={"guild_ids": []})
    guild_lookup = "GET /applications/{application_id}/guilds/{guild_id}/commands"

    def guild_lookups() -> int:
        return sum(f"{r.method} {r.route_template}" == guild_lookup for r in emulator.requests)

    bot = await start_bot(emulator, engine, as_global)
    await emulator.wait_for(lambda: guild_lookups() == 1 or None, timeout=15)  # once connected: nothing to clear
    await bot.stop()
    assert "imagine" in {c["name"] for c in emulator.commands()}
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path))
    await bot.stop()
    assert emulator.commands() == [] and "imagine" in {c["name"] for c in emulator.commands(emulator.guild_id)}
    bot = await start_bot(emulator, engine, as_global)
    try:
        await emulator.wait_for(lambda: emulator.commands(emulator.guild_id) == [] or None, timeout=15)
        assert guild_lookups() == 2
    finally:
        await bot.stop()
    assert "imagine" in {c["name"] for c in emulator.commands()}
    record_reliability("defect", "13. switching global and guild commands leaves duplicates", 2, "one copy left")


# -- defect 3: previews come before the safety check ---------------------------------------------------


async def test_previews_in_an_ordinary_channel_are_veiled(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, queue={"preview_interval_s": 1.0})
    bot = await start_bot(emulator, engine, settings)
    try:
        viv = emulator.add_member("viv")
        status = await answer_of(emulator, await emulator.send_slash_command(
            "imagine", {"prompt": "a long one", "steps": 100, "count": 1, "width": 128, "height": 128}, user_id=viv))
        preview = await emulator.wait_for(
            lambda: next((a for a in status.attachments if a.filename == "preview.png"), None), timeout=60
        )
        pixels = np.asarray(preview.image().convert("L"), dtype=np.int16)
        step = max(np.abs(np.diff(pixels, axis=0)).max(), np.abs(np.diff(pixels, axis=1)).max())
        assert step <= 8, f"a sharp preview was posted (neighbouring pixels differ by {step})"
        await emulator.add_reaction(status.id, "❌", user_id=viv)
        await emulator.wait_for(lambda: "Cancelled" in status.content or None, timeout=60)
    finally:
        await bot.stop()
    record_reliability("defect", "3. previews posted before the safety check", 1,
                       "veiled (12 px of detail, blurred) outside age-restricted channels that allow flagged images")


async def test_a_panel_continues_from_a_large_previous_panel_within_the_limits(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, generation={"default_steps": 3, "max_pixels": 64 * 64})
    bot = await start_bot(emulator, engine, settings)
    try:
        ray = emulator.add_member("ray")
        await comic_command(emulator, "new", ray, title="Kites")
        await emulator.send_slash_command("imagine", {"prompt": "a kite", "count": 1, "width": 64, "height": 64},
                                          user_id=ray)
        await emulator.add_reaction((await next_result(emulator, 0)).id, "🔍", user_id=ray)
        upscale = await next_result(emulator, 1)
        await emulator.add_reaction(upscale.id, "📖", user_id=ray)
        await emulator.wait_for(lambda: rows(tmp_path / "bot.sqlite3", "SELECT 1 FROM comic_panels") or None, 15)
        status = await comic_command(emulator, "panel", ray, prompt="the kite flies on", continue_from_previous=True)
        assert not status.ephemeral, status.content
        panel = await next_result(emulator, 2)
        assert panel.attachments[0].image().size == (64, 64)
    finally:
        await bot.stop()
    record_reliability("defect", "10. continue_from_previous after a large (upscaled) panel", 1,
                       "drawn at a size within max_pixels")
