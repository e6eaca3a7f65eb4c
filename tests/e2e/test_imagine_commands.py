"""/history, /queue and /cancel through the bot; the new config sections ([safety], [comic], [styles])."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, load_settings, parse_settings
from playground import DiscordEmulator
from tests.harness import RunningBot, results, rows

REPO = Path(__file__).resolve().parents[2]


async def test_history_pages_through_a_members_images(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    pat, quinn = emulator.add_member("pat"), emulator.add_member("quinn")
    for seed in (1, 2):
        await emulator.send_slash_command("imagine", {"prompt": f"tree {seed}", "seed": seed * 10}, user_id=pat)
    await emulator.send_slash_command("imagine", {"prompt": "quinn's", "count": 1}, user_id=quinn)
    await emulator.wait_for(lambda: len(results(emulator)) == 3, 60)
    await emulator.wait_for(lambda: rows(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM images") == [(9,)], 10)

    interaction = await emulator.send_slash_command("history", {}, user_id=pat)
    page = await emulator.wait_for(lambda: interaction.original, 10)
    assert page.ephemeral and "page 1" in page.content
    assert page.content.count("tree 2") == 4 and "tree 1" not in page.content  # newest first, four a page
    assert page.attachments and page.attachments[0].image().size[0] > 0  # the page's thumbnails
    assert f"hist:{pat}:1" in [c for c, _, _ in page.buttons()]

    await emulator.click_button(page.id, f"hist:{pat}:1", user_id=pat)
    await emulator.wait_for(lambda: "page 2" in page.content, 10)
    assert page.content.count("tree 1") == 4 and "seed 13" in page.content
    await emulator.click_button(page.id, f"hist:{pat}:2", user_id=pat)
    await emulator.wait_for(lambda: "No more images" in page.content, 10)

    # Another member's history, by the user option.
    other = await emulator.send_slash_command("history", {"user": quinn}, user_id=pat)
    theirs = await emulator.wait_for(lambda: other.original, 10)
    assert "quinn's" in theirs.content and "tree" not in theirs.content
    assert not emulator.world.mention_ids(theirs)


async def test_queue_shows_your_jobs_and_cancel_cancels_the_waiting_ones(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    rae, sid = emulator.add_member("rae"), emulator.add_member("sid")
    # 128x128 for 100 steps: tens of seconds on a CPU, so the long job is surely still running when
    # /queue and /cancel answer (the test cancels it at the end).
    long = await emulator.send_slash_command(
        "imagine", {"prompt": "long", "steps": 100, "count": 1, "width": 128, "height": 128}, user_id=rae
    )
    status = await emulator.wait_for(lambda: long.original, 10)
    # Once a step is measured, waiting jobs show an estimated start: wait for it, so the reply's wording
    # does not depend on how far the long job got.
    await emulator.wait_for(lambda: "step " in status.content, 30)
    for index in range(2):
        await emulator.send_slash_command("imagine", {"prompt": f"wait {index}", "count": 1}, user_id=rae)
    await emulator.send_slash_command("imagine", {"prompt": "sid's", "count": 1}, user_id=sid)

    shown = await emulator.send_slash_command("queue", {}, user_id=rae)
    reply = await emulator.wait_for(lambda: shown.original, 10)
    assert reply.ephemeral and "3 job(s) waiting and 1 running" in reply.content
    # Round-robin: sid's one job goes before rae's second and third.
    assert "**long** (running now)" in reply.content
    assert re.search(r"\*\*wait 0\*\* \(position 2, starts in about \d+ s\)", reply.content), reply.content
    assert re.search(r"\*\*wait 1\*\* \(position 3, starts in about \d+ s\)", reply.content), reply.content
    assert "sid's" not in reply.content

    cancel = await emulator.send_slash_command("cancel", {}, user_id=rae)
    done = await emulator.wait_for(lambda: cancel.original, 10)
    assert done.ephemeral and "Cancelled 2 waiting job(s)" in done.content
    db = tmp_path / "bot.sqlite3"
    await emulator.wait_for(
        lambda: rows(db, "SELECT COUNT(*) FROM jobs WHERE status = 'cancelled'") == [(2,)], 10
    )
    assert running_bot.queue.pending_count() == 1  # sid's job is untouched
    nothing = await emulator.send_slash_command("cancel", {}, user_id=emulator.add_member("tia"))
    assert "no waiting jobs" in (await emulator.wait_for(lambda: nothing.original, 10)).content
    for job in running_bot.queue.running():
        running_bot.queue.cancel(job.job_id)
    await asyncio.sleep(0.2)


def test_example_config_has_every_new_section() -> None:
    settings = load_settings(REPO / "config.example.toml", env={"DISCORD_TOKEN": "t"})
    assert settings.generation.default_count == 4
    assert settings.safety.nsfw_action == "withhold" and settings.safety.checker == "auto"
    assert settings.comic.max_panels == 60 and settings.comic.panels_per_page == 6
    assert settings.comic.default_layout == "auto" and settings.comic.continue_strength == 0.6
    assert {"comic", "manga", "watercolor", "photo"} <= set(settings.styles)
    assert settings.model.upscaler == ""


def test_styles_and_comic_sections_are_read() -> None:
    settings = parse_settings(
        {
            "discord": {"token": "t"},
            "comic": {"max_panels": 10, "default_layout": "manga"},
            "styles": {"noir": {"prefix": "film noir", "guidance": 8}, "photo": {"enabled": False}},
            "safety": {"blocked_words": ["gore"], "nsfw_action": "spoiler"},
        },
        env={},
    )
    assert settings.comic.max_panels == 10 and settings.comic.default_layout == "manga"
    assert settings.styles["noir"].prompt_prefix == "film noir" and settings.styles["noir"].guidance == 8.0
    assert "photo" not in settings.styles and "comic" in settings.styles
    assert settings.safety.blocked_word_in("so much GORE") == "gore"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"comic": {"panels_per_page": 7}}, "comic.panels_per_page"),
        ({"comic": {"default_layout": "zigzag"}}, "comic.default_layout"),
        ({"comic": {"pages": 3}}, "comic.pages"),
        ({"styles": {"noir": {"colour": "grey"}}}, "styles.noir.colour"),
        ({"styles": {"noir": {"steps": 500}}}, "styles.noir.steps"),
        ({"styles": {"Bad Name": {}}}, "styles.Bad Name"),
        ({"safety": {"nsfw_action": "delete"}}, "safety.nsfw_action"),
        ({"safety": {"checker": "not a path"}}, "safety.checker"),
        ({"generation": {"variation_subtle_strength": 0.9}}, "generation.variation_subtle_strength"),
        ({"generation": {"default_strength": 0}}, "generation.default_strength"),
        ({"model": {"upscaler": 3}}, "model.upscaler"),
    ],
)
def test_bad_new_settings_name_their_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"discord": {"token": "t"}, **raw}, env={})
    assert caught.value.key == key
