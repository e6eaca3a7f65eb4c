"""/settings: per-server defaults, limits, channels, roles and NSFW policy, enforced on every drawing path.

The real bot runs against the emulator with the tiny model. Members get Manage Server through an
emulated role; the emulator hides /settings from everyone else as Discord's client does, and
``permitted_by_server`` sends it anyway (a server's integration settings can), so the bot's own
check is what is tested. A *gated* engine keeps jobs queued while a test needs them queued.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.local_api import start_local_api
from playground import DiscordEmulator, EmuInteraction, EmuMessage
from playground.interactions import CommandUsageError
from studio.bot_client import SECRET_HEADER
from tests.e2e.test_trust_members import CHECKER, GatedEngine, answer_of, gated  # noqa: F401 - the fixture
from tests.harness import RunningBot, next_result, results, rows, settings_for, start_bot

MANAGE_GUILD = 1 << 5


async def settings_command(
    emu: DiscordEmulator, sub: str, user: int, *, permitted_by_server: bool = False, **options: object
) -> EmuMessage:
    """Run ``/settings sub`` and return the bot's (ephemeral) answer."""
    sent = await emu.send_slash_command(
        "settings", options, user_id=user, subcommand=sub, permitted_by_server=permitted_by_server
    )
    return await reply_of(emu, sent)


async def reply_of(emu: DiscordEmulator, sent: EmuInteraction) -> EmuMessage:
    """The interaction's response once it has text or an embed."""
    return await emu.wait_for(
        lambda: sent.original if sent.original is not None and (sent.original.content or sent.original.embeds)
        else None, timeout=15,
    )


async def imagine(emu: DiscordEmulator, user: int, prompt: str, channel_id: int | None = None,
                  **options: Any) -> EmuMessage:
    sent = await emu.send_slash_command("imagine", {"prompt": prompt, **options}, user_id=user, channel_id=channel_id)
    return await answer_of(emu, sent)


async def admin(emu: DiscordEmulator, name: str = "admin") -> int:
    role = await emu.add_role(f"{name}-role", manage_server=True)
    return emu.add_member(name, role_ids=[role])


def requests(db: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for (text,) in rows(db, "SELECT request_json FROM jobs ORDER BY id")]


def shown_settings(message: EmuMessage) -> dict[str, str]:
    """``/settings show``'s lines, label to the line's rest (value and source)."""
    found: dict[str, str] = {}
    for field in message.embeds[0]["fields"]:
        for line in field["value"].splitlines():
            label, _, rest = line.partition(": ")
            found[label] = rest
    return found


async def test_settings_and_stats_are_for_manage_server_only(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    for name in ("settings", "stats"):
        command = next(c for c in emulator.commands(emulator.guild_id) if c["name"] == name)
        assert command["default_member_permissions"] == str(MANAGE_GUILD)
    pat = emulator.add_member("pat")
    with pytest.raises(CommandUsageError, match="hides it"):
        await emulator.send_slash_command("settings", {}, user_id=pat, subcommand="show")
    refused = await settings_command(emulator, "limits", pat, permitted_by_server=True, max_steps=5)
    assert refused.ephemeral and "Manage Server" in refused.content, refused.content
    refused = await answer_of(emulator, await emulator.send_slash_command(
        "stats", {}, user_id=pat, permitted_by_server=True))
    assert refused.ephemeral and "Manage Server" in refused.content and not refused.embeds
    assert rows(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM server_settings") == [(0,)]

    boss = await admin(emulator)
    shown = await settings_command(emulator, "show", boss)
    assert shown.ephemeral and shown.embeds
    values = shown_settings(shown)
    assert values["Max steps"] == "**100** (config)"
    assert values["Channels where I draw"] == "**all channels** (config)"
    assert values["Roles that may draw"] == "**everyone** (config)"


async def test_defaults_apply_to_imagine_and_show_says_where_they_come_from(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    # A short style of our own: the shipped ones' words pass the tiny model's token limit.
    settings = settings_for(emulator, tmp_path, styles={"ink": {"prefix": "ink", "negative": "color"}})
    bot = await start_bot(emulator, engine, settings)
    db = tmp_path / "bot.sqlite3"
    try:
        boss = await admin(emulator)
        for options, error in (
            ({"size": "65x64"}, "multiple of 8"),
            ({"style": "no-such-style"}, "not a style I know"),
            ({"model": "no-such-model"}, "not a model I run"),
            ({"steps": 101}, "between 1 and 100"),
        ):
            answer = await settings_command(emulator, "defaults", boss, **options)
            assert answer.ephemeral and error in answer.content, (options, answer.content)
        assert rows(db, "SELECT COUNT(*) FROM server_settings") == [(0,)]
        # One bad value among good ones: nothing is saved.
        answer = await settings_command(emulator, "defaults", boss, steps=2, size="65x64")
        assert "multiple of 8" in answer.content
        assert rows(db, "SELECT COUNT(*) FROM server_settings") == [(0,)]

        style = "ink"  # a preset with no steps or guidance of its own (a preset's would win)
        saved = await settings_command(emulator, "defaults", boss, steps=2, size="64x96", count=1, style=style,
                                       guidance=3.5, model=bot.bot.settings.model.model_name)
        assert saved.content.startswith("Saved."), saved.content
        member = emulator.add_member("mel")
        await imagine(emulator, member, "a lighthouse")
        await next_result(emulator, 0)
        [request] = requests(db)
        assert (request["steps"], request["width"], request["height"], request["count"], request["guidance"]) == (
            2, 64, 96, 1, 3.5)
        assert request["extra"]["style"] == style
        # What a member gives still wins over the server's default.
        await imagine(emulator, member, "a lighthouse", steps=3, width=64, height=64)
        await next_result(emulator, 1)
        assert (requests(db)[1]["steps"], requests(db)[1]["width"]) == (3, 64)

        values = shown_settings(await settings_command(emulator, "show", boss))
        assert values["Default steps"] == "**2** (server)"
        assert values["Default size"] == "**64x96** (server)"
        assert values["Default style"] == f"**{style}** (server)"
        assert values["Max steps"] == "**100** (config)"
        reset = await settings_command(emulator, "reset", boss, setting="default_steps")
        assert "config file's value applies" in reset.content
        values = shown_settings(await settings_command(emulator, "show", boss))
        assert values["Default steps"] == "**3** (config)"
    finally:
        await bot.stop()


async def test_limits_refuse_with_the_rule_on_commands_and_reactions(
    emulator: DiscordEmulator, gated: GatedEngine, tmp_path: Path  # noqa: F811 - the fixture
) -> None:
    art = emulator.world.add_channel("art")
    bot = await start_bot(emulator, gated, settings_for(emulator, tmp_path))
    db = tmp_path / "bot.sqlite3"
    try:
        boss = await admin(emulator)
        too_high = await settings_command(emulator, "limits", boss, max_steps=101)
        assert too_high.ephemeral and "between 1 and 100 (the config's limit)" in too_high.content
        saved = await settings_command(emulator, "limits", boss, max_steps=5, max_pixels=64 * 64,
                                       pending_per_member=1)
        assert saved.content.startswith("Saved."), saved.content
        ivy = emulator.add_member("ivy")
        refused = await imagine(emulator, ivy, "a fox", steps=6, width=64, height=64)
        assert refused.ephemeral and "`steps` must be between 1 and 5" in refused.content
        refused = await imagine(emulator, ivy, "a fox", steps=3, width=128, height=64)
        assert refused.ephemeral and "the limit is 4,096" in refused.content
        queued = await imagine(emulator, ivy, "a fox", steps=3, width=64, height=64, count=1)
        assert not queued.ephemeral
        refused = await imagine(emulator, ivy, "a fox", steps=3, width=64, height=64, count=1)
        assert refused.ephemeral and "this server's limit is 1" in refused.content
        assert len(rows(db, "SELECT id FROM jobs")) == 1
        gated.gate.set()
        result = await next_result(emulator, 0)

        # A reaction starts its job through the same checks: a re-roll here is refused by the channel rule.
        await settings_command(emulator, "channels", boss, action="add", channel=art)
        await emulator.add_reaction(result.id, "🔄", user_id=ivy)
        notice = await emulator.wait_for(lambda: next(
            (m for m in emulator.messages() if m.content.startswith(f"<@{ivy}>") and "only allows" in m.content),
            None), timeout=15)
        assert f"<#{art}>" in notice.content
        assert len(rows(db, "SELECT id FROM jobs")) == 1
    finally:
        await bot.stop()


async def test_channel_and_role_restrictions_name_the_rule(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    art = emulator.world.add_channel("art")
    thread = emulator.world.add_thread(art, "art-thread")
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path))
    db = tmp_path / "bot.sqlite3"
    try:
        boss = await admin(emulator)
        artists = await emulator.add_role("Artists")
        await settings_command(emulator, "channels", boss, action="add", channel=art)
        ann = emulator.add_member("ann", role_ids=[artists])
        bob = emulator.add_member("bob")
        refused = await imagine(emulator, ann, "a vase", count=1)  # in #general
        assert refused.ephemeral and refused.content == f"This server only allows drawing in <#{art}>."
        await imagine(emulator, ann, "a vase", channel_id=art, count=1)
        await next_result(emulator, 0)
        await imagine(emulator, ann, "a vase in a thread", channel_id=thread, count=1)
        await next_result(emulator, 1)
        # /comic panels follow the same rule, before their panel is written.
        await emulator.send_slash_command("comic", {"title": "Vases"}, user_id=ann, subcommand="new")
        sent = await emulator.send_slash_command("comic", {"prompt": "a vase"}, user_id=ann, subcommand="panel")
        panel = await answer_of(emulator, sent)
        assert panel.ephemeral and "only allows drawing in" in panel.content
        assert rows(db, "SELECT COUNT(*) FROM comic_panels") == [(0,)]

        saved = await settings_command(emulator, "roles", boss, action="add", role=artists)
        assert saved.content.startswith("Saved."), saved.content
        refused = await imagine(emulator, bob, "a cup", channel_id=art, count=1)
        assert refused.ephemeral and f"<@&{artists}>" in refused.content and "roles" in refused.content
        await imagine(emulator, ann, "a cup", channel_id=art, count=1)
        await next_result(emulator, 2)
        assert len(rows(db, "SELECT id FROM jobs")) == 3

        await settings_command(emulator, "channels", boss, action="clear")
        await settings_command(emulator, "roles", boss, action="clear")
        await imagine(emulator, bob, "a cup", count=1)
        await next_result(emulator, 3)
    finally:
        await bot.stop()


async def test_cooldown_and_daily_quota_are_counted_from_sqlite_across_a_restart(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path)
    bot = await start_bot(emulator, engine, settings)
    db = tmp_path / "bot.sqlite3"
    try:
        boss = await admin(emulator)
        patrons = await emulator.add_role("Patrons")
        await settings_command(emulator, "limits", boss, daily_images=3)
        await settings_command(emulator, "role-limit", boss, role=patrons, daily_images=6)
        cal = emulator.add_member("cal")
        pia = emulator.add_member("pia", role_ids=[patrons])
        await imagine(emulator, cal, "a pear", count=2)
        await next_result(emulator, 0)
        refused = await imagine(emulator, cal, "a pear", count=2)
        assert refused.ephemeral and refused.content == "You can make 3 images a day here; try again in 24 h."
        refused = await imagine(emulator, cal, "a pear", count=4)
        assert refused.content == "You can make 3 images a day here; ask for 3 or fewer."
        await imagine(emulator, pia, "a plum", count=4)  # her role's quota is 6
        await next_result(emulator, 1)
    finally:
        await bot.stop()
    # The next run reads the settings and the counts from SQLite: nothing is forgotten.
    bot = await start_bot(emulator, engine, settings)
    try:
        refused = await imagine(emulator, cal, "a pear", count=2)
        assert refused.content == "You can make 3 images a day here; try again in 24 h."
        await imagine(emulator, cal, "a pear", count=1)
        await next_result(emulator, 2)
        refused = await imagine(emulator, pia, "a plum", count=3)
        assert refused.content == "You can make 6 images a day here; try again in 24 h."

        await settings_command(emulator, "limits", boss, daily_images=0, cooldown_seconds=3600)
        dee = emulator.add_member("dee")
        await imagine(emulator, dee, "a fig", count=1)
        await next_result(emulator, 3)
        refused = await imagine(emulator, dee, "a fig", count=1)
        assert refused.ephemeral and refused.content.startswith("This server has a 60 min cooldown between requests")
        assert "try again in" in refused.content
        assert rows(db, "SELECT COUNT(*) FROM jobs WHERE requester_id = ?", dee) == [(1,)]
    finally:
        await bot.stop()


async def test_nsfw_policy_and_kid_friendly_per_server(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, safety={"checker": CHECKER, "age_restricted_action": "allow"})
    bot = await start_bot(emulator, engine, settings)
    try:
        boss = await admin(emulator)
        kim = emulator.add_member("kim")
        await imagine(emulator, kim, "a forbidden orchard", count=1)
        assert (await next_result(emulator, 0)).attachments == []  # the config withholds
        saved = await settings_command(emulator, "nsfw", boss, flagged="spoiler")
        assert saved.content.startswith("Saved."), saved.content
        await imagine(emulator, kim, "a forbidden orchard", count=1)
        spoiled = await next_result(emulator, 1)
        assert [a.spoiler for a in spoiled.attachments] == [True]
        # The age-restricted channel's own action: the config allows, this server says spoiler.
        await settings_command(emulator, "nsfw", boss, age_restricted="spoiler")
        await imagine(emulator, kim, "a forbidden orchard", channel_id=emulator.nsfw_channel_id, count=1)
        assert [a.spoiler for a in (await next_result(emulator, 2)).attachments] == [True]

        await settings_command(emulator, "nsfw", boss, kid_friendly=True)
        refused = await imagine(emulator, kim, "a nude statue", count=1)
        assert refused.ephemeral and "kid-friendly" in refused.content and "`nude`" in refused.content
        # In the age-restricted channel the config allows flagged images; a kid-friendly server withholds them.
        await imagine(emulator, kim, "a forbidden orchard", channel_id=emulator.nsfw_channel_id, count=1)
        assert (await next_result(emulator, 3)).attachments == []
        values = shown_settings(await settings_command(emulator, "show", boss))
        assert values["Kid-friendly"] == "**on** (server)"
        assert values["Flagged images (age-restricted channels)"] == "**withhold** (server)"
        assert len(results(emulator)) == 4
    finally:
        await bot.stop()


async def test_the_studios_jobs_obey_the_servers_rules(
    emulator: DiscordEmulator, engine: Any, tmp_path: Path
) -> None:
    studio = {"secret": "s3cret", "channel_id": emulator.channel_id, "user_id": 4242, "api_port": free_port()}
    bot = await start_bot(emulator, engine, settings_for(emulator, tmp_path, studio=studio))
    api = await start_local_api(bot.bot, bot.bot.settings.studio)
    assert api is not None
    db = tmp_path / "bot.sqlite3"

    async def generate(prompt: str) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.post(
            f"{bot.bot.settings.studio.api_url}/api/imagine", json={"prompt": prompt, "count": 1, "steps": 3},
            headers={SECRET_HEADER: "s3cret"},
        ) as response:
            return response.status, await response.json()

    try:
        boss = await admin(emulator)
        art = await emulator.add_role("art-role")  # roles don't apply to the studio: it has none
        await settings_command(emulator, "roles", boss, action="add", role=art)
        await settings_command(emulator, "limits", boss, max_steps=2, daily_images=1)
        status, body = await generate("a kite")
        assert status == 400 and "`steps` must be between 1 and 2" in body["error"]
        await settings_command(emulator, "limits", boss, max_steps=5)
        status, body = await generate("a kite")
        assert status == 200, body
        status, body = await generate("a kite")
        assert status == 400 and body["error"] == "You can make 1 image a day here; try again in 24 h."
        await settings_command(emulator, "limits", boss, daily_images=0)
        await settings_command(emulator, "nsfw", boss, kid_friendly=True)
        status, body = await generate("a bloody kite")
        assert status == 400 and "kid-friendly" in body["error"]
        assert rows(db, "SELECT COUNT(*) FROM jobs WHERE requester_id = 4242") == [(1,)]
        await emulator.wait_for(lambda: len(results(emulator)) == 1 or None, timeout=60)
    finally:
        await api.cleanup()
        await bot.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
