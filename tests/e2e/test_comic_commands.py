"""/comic end to end: the real bot, the Discord emulator, the tiny model and real SQLite files.

Also the plain rules behind panels (seeds, character weaving, speaker sides), which the
commands rely on.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import cast, get_args

import pytest

from bot.cogs.comic import Comic
from bot.cogs.comic._group_comics import LayoutChoice
from bot.cogs.comic._panels import panel_seed, speaker_sides, weave_characters
from bot.config import ComicSettings
from composition.comic_layout import LAYOUTS
from playground import DiscordEmulator, EmuInteraction, EmuMessage
from rules.styles import StylePreset
from tests.harness import RunningBot, rows, settings_for, start_bot
from tests.harness import image_posts as results

WAIT = 60.0


# -- helpers -------------------------------------------------------------------------------------


async def comic(
    emu: DiscordEmulator, sub: str, user: int, group: str | None = None, **options: object
) -> EmuInteraction:
    """Run ``/comic [group] sub`` and wait until it is acknowledged."""
    return await emu.send_slash_command("comic", options, user_id=user, subcommand=sub, group=group)


async def answer(emu: DiscordEmulator, inter: EmuInteraction) -> EmuMessage:
    """The interaction's response once it is final (a deferred one, once filled)."""
    return await emu.wait_for(
        lambda: inter.original if inter.original is not None and not inter.original.loading else None, WAIT
    )


async def refused(emu: DiscordEmulator, inter: EmuInteraction, *words: str) -> str:
    """Assert the answer is ephemeral and says each of ``words``; return it."""
    reply = await answer(emu, inter)
    assert reply.ephemeral, reply.content
    for word in words:
        assert word in reply.content, reply.content
    return reply.content


async def add_panel(emu: DiscordEmulator, user: int, prompt: str, **options: object) -> EmuMessage:
    """``/comic panel`` and its posted result."""
    before = len(results(emu))
    inter = await comic(emu, "panel", user, prompt=prompt, **options)
    status = await answer(emu, inter)
    assert not status.ephemeral, status.content
    return await emu.wait_for(lambda: results(emu)[before] if len(results(emu)) > before else None, WAIT)


async def settle(bot: RunningBot, db: Path) -> None:
    """Wait until no job is queued or running and every finished panel job is linked to its panel."""
    waited = 0.0
    while True:
        pending = rows(db, "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]
        unlinked = rows(
            db,
            """SELECT COUNT(*) FROM comic_panels AS p JOIN images AS i ON i.job_id = p.job_id
               WHERE p.image_id IS NOT i.id""",
        )[0][0]
        if not pending and not unlinked:
            return
        assert waited < WAIT, f"{pending} job(s) still pending, {unlinked} panel(s) unlinked"
        await asyncio.sleep(0.05)
        waited += 0.05


def panels_of(db: Path, comic_id: int) -> list[tuple[int, int, str, int, int | None, int | None]]:
    """(id, position, prompt, seed, job_id, image_id) of each panel in order."""
    return rows(  # type: ignore[return-value]
        db,
        "SELECT id, position, prompt, seed, job_id, image_id FROM comic_panels WHERE comic_id = ? ORDER BY position",
        comic_id,
    )


def cog(bot: RunningBot) -> Comic:
    """The loaded comic cog (discord.py re-imports extensions per bot, so no isinstance check)."""
    found = bot.bot.get_cog("Comic")
    assert found is not None and type(found).__name__ == "Comic"
    return cast(Comic, found)


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


async def exported(emu: DiscordEmulator, inter: EmuInteraction, done: object) -> list[EmuMessage]:
    """Messages an export posted, once ``done(messages)`` says all have come."""
    def messages() -> list[EmuMessage] | None:
        found = [m for m in inter.followups if m.attachments]
        unique = list({m.id: m for m in found}.values())
        return unique if unique and done(unique) else None  # type: ignore[operator]

    return await emu.wait_for(messages, WAIT)


# -- the rules behind panels ------------------------------------------------------------------------


def test_panel_seeds_depend_on_comic_panel_and_take_only() -> None:
    assert panel_seed(7, 3) == panel_seed(7, 3, 0)
    assert len({panel_seed(7, 3), panel_seed(7, 4), panel_seed(8, 3), panel_seed(7, 3, 1)}) == 4
    assert all(0 <= panel_seed(s, p) < 2**32 for s in range(5) for p in range(5))


def test_characters_are_woven_in_after_their_first_mention() -> None:
    chars = {"Mira": "red hair, yellow raincoat", "Anna Lee": "grey bob", "Anna": "a child"}
    assert weave_characters("mira waves at MIRA", chars) == "mira (red hair, yellow raincoat) waves at MIRA"
    assert weave_characters("Anna Lee meets Anna", chars) == "Anna Lee (grey bob) meets Anna (a child)"
    assert weave_characters("Miranda and Tom", chars) == "Miranda and Tom"


def test_speakers_alternate_sides_by_first_appearance() -> None:
    panels = [("Mira", "Hi"), (None, None), ("Bo", None), ("Tom", "Yo"), ("mira", "Again"), ("Zed", "Hm"),
              (None, "Narrator?")]
    assert speaker_sides(panels) == ["left", "center", "center", "right", "left", "left", "center"]


# -- the whole chain --------------------------------------------------------------------------------


async def test_new_character_three_panels_show_and_export(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    cog(running_bot).settings = ComicSettings(panels_per_page=2)
    alice = emulator.add_member("alice")

    created = await answer(emulator, await comic(emulator, "new", alice, title="The Lighthouse", layout="grid"))
    assert not created.ephemeral and "The Lighthouse" in created.content
    [(comic_id, owner)] = rows(db, "SELECT id, owner_id FROM comics")
    assert owner == alice
    added = await answer(emulator, await comic(
        emulator, "add", alice, group="character", name="Mira", description="red-haired keeper in a yellow coat"
    ))
    assert "Mira" in added.content and not added.ephemeral

    first = await add_panel(emulator, alice, "Mira climbs the stairs", caption="Night fell early.")
    await add_panel(emulator, alice, "a storm over the sea", dialogue="Ships ahead!", speaker="Mira")
    third = await add_panel(emulator, alice, "the lamp turns", continue_from_previous=True)
    await settle(running_bot, db)

    panels = panels_of(db, comic_id)
    assert [p[1] for p in panels] == [1, 2, 3] and all(p[5] is not None for p in panels)
    assert len({p[3] for p in panels}) == 3  # every panel its own derived seed
    requests = [json.loads(str(rows(db, "SELECT request_json FROM jobs WHERE id = ?", p[4])[0][0])) for p in panels]
    assert "Mira (red-haired keeper in a yellow coat) climbs the stairs" in requests[0]["prompt"]
    assert "keeper" not in requests[1]["prompt"]  # named only as the speaker, not in the prompt
    assert [r["seed"] for r in requests] == [p[3] for p in panels]
    assert requests[2]["kind"] == "img2img"
    [(second_image_path,)] = rows(db, "SELECT path FROM images WHERE id = ?", panels[1][5])
    assert requests[2]["init_image"] == second_image_path
    # Each panel is drawn at its frame's shape (tall here): the first alone on page 1 under the title,
    # the third (a continuation, its source resized) alone on the taller page 2.
    assert first.attachments[0].image().size == (64, 80)
    assert third.attachments[0].image().size == (64, 96)

    show = await comic(emulator, "show", alice, page=2)
    assert show.ack_ms is not None and show.ack_ms < 3000
    page = await answer(emulator, show)
    assert "page 2 of 2" in page.content
    [image] = page.attachments
    assert image.content_type == "image/png" and image.image().size == (1654, 2339)

    cbz = await comic(emulator, "export", alice, format="cbz")
    [archive] = (await exported(emulator, cbz, lambda ms: True))[0].attachments
    with zipfile.ZipFile(io.BytesIO(archive.data)) as bundle:
        names = bundle.namelist()
        info = ET.fromstring(bundle.read("ComicInfo.xml"))
    assert sorted(n for n in names if n.startswith("page")) == ["page001.png", "page002.png"]
    assert info.findtext("Title") == "The Lighthouse" and info.findtext("Writer") == "alice"
    assert info.findtext("PageCount") == "2"
    summary = info.findtext("Summary") or ""
    assert "Night fell early." in summary and "Mira" in summary

    pdf = await comic(emulator, "export", alice, format="pdf")
    [document] = (await exported(emulator, pdf, lambda ms: True))[0].attachments
    assert document.filename.endswith(".pdf") and pdf_pages(document.data) == 2

    png = await comic(emulator, "export", alice, format="png")
    messages = await exported(emulator, png, lambda ms: sum(len(m.attachments) for m in ms) >= 2)
    assert [a.image().size for m in messages for a in m.attachments] == [(1654, 2339)] * 2


async def test_styles_characters_and_picking_the_active_comic(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    # The tiny model's tokenizer spends a token per letter, so the shipped presets would not fit its prompt.
    cog(running_bot).styles = {
        "ink": StylePreset("ink", prompt_prefix="ink", prompt_suffix="bold", negative_prompt="blur", guidance=6.5),
        "inky-noir": StylePreset("inky-noir", prompt_prefix="noir"),
        "pastel": StylePreset("pastel"),
    }
    kim = emulator.add_member("kim")
    choices = await emulator.autocomplete("comic", {"title": "x", "style": "in"}, "style", user_id=kim,
                                          subcommand="new")
    assert [c["value"] for c in choices] == ["ink", "inky-noir"]
    await refused(emulator, await comic(emulator, "new", kim, title="x", style="vaporwave"), "no style", "pastel")
    await refused(emulator, await comic(emulator, "new", kim, title="W" * 100), "title is too long")
    assert rows(db, "SELECT COUNT(*) FROM comics") == [(0,)]

    await answer(emulator, await comic(emulator, "new", kim, title="Styled", style="ink"))
    for name, description in (("Mira", "red hair"), ("Tom", "tall, green scarf"), ("mira", "red hair, freckles")):
        await answer(emulator, await comic(emulator, "add", kim, group="character", name=name,
                                           description=description))
    listed = await answer(emulator, await comic(emulator, "list", kim, group="character"))
    assert listed.ephemeral and "**mira**: red hair, freckles" in listed.content and "Tom" in listed.content
    await answer(emulator, await comic(emulator, "remove", kim, group="character", name="TOM"))
    await refused(emulator, await comic(emulator, "remove", kim, group="character", name="Tom"), "no character")

    await add_panel(emulator, kim, "Mira and Tom on a bridge")
    [(request_json,)] = rows(db, "SELECT request_json FROM jobs")
    request = json.loads(str(request_json))
    assert request["prompt"] == "ink, Mira (red hair, freckles) and Tom on a bridge, bold"
    assert request["negative_prompt"] == "blur" and request["guidance"] == 6.5

    await answer(emulator, await comic(emulator, "new", kim, title="Second"))
    (first_id,), (second_id,) = rows(db, "SELECT id FROM comics ORDER BY id")
    overview = await answer(emulator, await comic(emulator, "list", kim))
    assert overview.ephemeral and f"`#{second_id}`" in overview.content.split("active")[0]
    assert "1 panel(s), owner" in overview.content
    await refused(emulator, await comic(emulator, "open", kim, id=999), "no comic #999")
    opened = await answer(emulator, await comic(emulator, "open", kim, id=first_id))
    assert opened.ephemeral and "Styled" in opened.content and "add and edit" in opened.content
    page = await answer(emulator, await comic(emulator, "show", kim))
    assert "Styled" in page.content and page.attachments


# -- permissions ------------------------------------------------------------------------------------


async def test_strangers_view_and_export_only_collaborators_edit(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    owner, friend, stranger = (emulator.add_member(n) for n in ("olga", "fred", "sam"))
    await answer(emulator, await comic(emulator, "new", owner, title="Shared Story"))
    [(comic_id,)] = rows(db, "SELECT id FROM comics")
    await add_panel(emulator, owner, "a quiet street")

    await refused(emulator, await comic(emulator, "panel", stranger, prompt="x"), "no active comic")
    listed = await answer(emulator, await comic(emulator, "list", stranger))
    assert listed.ephemeral and f"`#{comic_id}` **Shared Story**: 1 panel(s), viewer" in listed.content
    opened = await answer(emulator, await comic(emulator, "open", stranger, id=comic_id))
    assert opened.ephemeral and "view and export" in opened.content
    jobs_before = rows(db, "SELECT COUNT(*) FROM jobs")
    await refused(emulator, await comic(emulator, "panel", stranger, prompt="graffiti"),
                  "Only the owner and collaborators can add panels")
    await refused(emulator, await comic(emulator, "remove", stranger, panel=1), "Only the owner and collaborators")
    await refused(emulator, await comic(emulator, "add", stranger, group="character", name="X", description="y"),
                  "Only the owner and collaborators")
    await refused(emulator, await comic(emulator, "share", stranger, member=stranger), "Only the owner")
    assert rows(db, "SELECT COUNT(*) FROM jobs") == jobs_before
    shown = await answer(emulator, await comic(emulator, "show", stranger))
    assert shown.attachments and not shown.ephemeral

    shared = await answer(emulator, await comic(emulator, "share", owner, member=friend))
    assert not shared.ephemeral and f"<@{friend}>" in shared.content
    assert shared.allowed_mentions is not None and not shared.allowed_mentions.get("users")
    await add_panel(emulator, friend, "a cat on the wall", caption="Meanwhile.")
    await answer(emulator, await comic(emulator, "redo", friend, panel=1))
    await settle(running_bot, db)
    assert [p[2] for p in panels_of(db, comic_id)] == ["a quiet street", "a cat on the wall"]
    [(requester,)] = rows(db, "SELECT requester_id FROM jobs WHERE id = ?", panels_of(db, comic_id)[1][4])
    assert requester == friend

    await answer(emulator, await comic(emulator, "unshare", owner, member=friend))
    await refused(emulator, await comic(emulator, "panel", friend, prompt="one more"), "Only the owner")


async def test_book_reaction_adds_an_imagine_result_as_a_panel(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    maya, sam = emulator.add_member("maya"), emulator.add_member("sam")
    await answer(emulator, await comic(emulator, "new", maya, title="Found Art"))
    await emulator.send_slash_command("imagine", {"prompt": "an old map", "seed": 5, "count": 1}, user_id=maya)
    result = await emulator.wait_for(lambda: results(emulator)[0] if results(emulator) else None, WAIT)
    # The bot records its result, then reacts to it: from then on reactions on it are looked up.
    await emulator.wait_for(lambda: {"🔄", "🔍"} <= set(result.reactions), 10)

    await emulator.add_reaction(result.id, "📖", user_id=maya)
    notice = await emulator.wait_for(
        lambda: next((m for m in emulator.messages() if "Added as panel 1" in m.content), None), 10
    )
    assert notice.allowed_mentions is not None and not notice.allowed_mentions.get("parse")
    [(comic_id,)] = rows(db, "SELECT id FROM comics")
    [(image_id, seed)] = rows(db, "SELECT id, seed FROM images")
    [(_, position, prompt, panel_seed_, job_id, panel_image)] = panels_of(db, comic_id)
    assert (position, prompt, panel_seed_, job_id, panel_image) == (1, "an old map", seed, None, image_id)

    await emulator.add_reaction(result.id, "📖", user_id=sam)  # sam has no active comic
    await emulator.wait_for(lambda: any("no active comic" in m.content for m in emulator.messages()), 10)
    assert len(panels_of(db, comic_id)) == 1


# -- editing ----------------------------------------------------------------------------------------


async def test_move_redo_edit_and_remove(emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    ed = emulator.add_member("ed")
    await answer(emulator, await comic(emulator, "new", ed, title="Order"))
    [(comic_id,)] = rows(db, "SELECT id FROM comics")
    for prompt in ("one", "two", "three"):
        await add_panel(emulator, ed, prompt)
    await settle(running_bot, db)
    before = {p[2]: p for p in panels_of(db, comic_id)}

    moved = await answer(emulator, await comic(emulator, "move", ed, panel=3, to=1))
    assert "now panel 1 of 3" in moved.content
    after = panels_of(db, comic_id)
    assert [p[2] for p in after] == ["three", "one", "two"] and [p[1] for p in after] == [1, 2, 3]
    assert {p[2]: (p[0], p[3], p[5]) for p in after} == {k: (v[0], v[3], v[5]) for k, v in before.items()}
    await refused(emulator, await comic(emulator, "move", ed, panel=1, to=4), "panels 1 to 3")

    redone = await comic(emulator, "redo", ed, panel=2)  # "one"
    await answer(emulator, redone)
    await settle(running_bot, db)
    again = {p[2]: p for p in panels_of(db, comic_id)}
    assert again["one"][3] != before["one"][3] and again["one"][5] != before["one"][5]
    assert again["two"][3:] == before["two"][3:] and again["three"][3:] == before["three"][3:]
    [(old_sha,)] = rows(db, "SELECT sha256 FROM images WHERE id = ?", before["one"][5])
    [(new_sha,)] = rows(db, "SELECT sha256 FROM images WHERE id = ?", again["one"][5])
    assert old_sha != new_sha

    edited = await answer(emulator, await comic(emulator, "edit", ed, panel=3, caption="Later that day."))
    assert "caption updated" in edited.content
    assert rows(db, "SELECT caption, job_id FROM comic_panels WHERE prompt = 'two'") == [
        ("Later that day.", again["two"][4])
    ]
    await answer(emulator, await comic(emulator, "edit", ed, panel=3, prompt="two, at dusk"))
    await settle(running_bot, db)
    [(_, _, prompt, seed, job_id, _)] = [p for p in panels_of(db, comic_id) if p[1] == 3]
    assert prompt == "two, at dusk" and seed == again["two"][3] and job_id != again["two"][4]
    [(request_json,)] = rows(db, "SELECT request_json FROM jobs WHERE id = ?", job_id)
    assert json.loads(str(request_json))["seed"] == seed
    await answer(emulator, await comic(emulator, "edit", ed, panel=3, caption="-"))
    assert rows(db, "SELECT caption FROM comic_panels WHERE position = 3") == [(None,)]

    removed = await answer(emulator, await comic(emulator, "remove", ed, panel=1))
    assert "2 panel(s) left" in removed.content
    assert [(p[1], p[2]) for p in panels_of(db, comic_id)] == [(1, "one"), (2, "two, at dusk")]


# -- limits and bad input ---------------------------------------------------------------------------


async def test_caps_and_text_that_does_not_fit_are_refused(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    cog(running_bot).settings = ComicSettings(max_panels=1, max_characters=1)
    lin = emulator.add_member("lin")
    await refused(emulator, await comic(emulator, "show", lin), "no active comic")
    await answer(emulator, await comic(emulator, "new", lin, title="Tiny"))
    await refused(emulator, await comic(emulator, "show", lin), "no panels yet")
    await refused(emulator, await comic(emulator, "panel", lin, prompt="x", continue_from_previous=True),
                  "no previous panel")
    await refused(emulator, await comic(emulator, "panel", lin, prompt="x", speaker="Lin"), "`speaker`")
    long_words = ("well I never thought we would get this far, " * 12)[:450]  # about 320 fit
    await refused(emulator, await comic(emulator, "panel", lin, prompt="x", dialogue=long_words),
                  "too long for one bubble")
    assert rows(db, "SELECT COUNT(*) FROM comic_panels") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM jobs") == [(0,)]

    await answer(emulator, await comic(emulator, "add", lin, group="character", name="Lin", description="tall"))
    await refused(emulator, await comic(emulator, "add", lin, group="character", name="Bo", description="short"),
                  "limit is 1")
    await add_panel(emulator, lin, "a pier")
    await refused(emulator, await comic(emulator, "panel", lin, prompt="y"), "limit is 1")
    await refused(emulator, await comic(emulator, "show", lin, page=2), "1 page(s)")
    assert rows(db, "SELECT COUNT(*) FROM comic_panels") == [(1,)]


async def test_exports_past_the_upload_limit_are_split_or_reencoded(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    cog(running_bot).settings = ComicSettings(panels_per_page=1)
    uma = emulator.add_member("uma")
    await answer(emulator, await comic(emulator, "new", uma, title="Heavy"))
    for prompt in ("rocks", "waves", "gulls"):
        await add_panel(emulator, uma, prompt)
    await settle(running_bot, tmp_path / "bot.sqlite3")
    limit = 200_000
    emulator.set_upload_limit(limit)

    pdf = await comic(emulator, "export", uma, format="pdf")
    parts = await exported(
        emulator, pdf, lambda ms: sum(pdf_pages(a.data) for m in ms for a in m.attachments) >= 3
    )
    for message in parts:
        assert sum(a.size for a in message.attachments) <= limit
    assert sum(pdf_pages(a.data) for m in parts for a in m.attachments) == 3
    assert len([a for m in parts for a in m.attachments]) > 1  # a lossless A4 page alone is over the limit

    png = await comic(emulator, "export", uma, format="png")
    pages = await exported(emulator, png, lambda ms: sum(len(m.attachments) for m in ms) >= 3)
    for message in pages:
        assert sum(a.size for a in message.attachments) <= limit
    files = [a for m in pages for a in m.attachments]
    assert len(files) == 3 and all(a.filename.endswith(".jpg") and a.image().format == "JPEG" for a in files)


# -- restarts ---------------------------------------------------------------------------------------


async def test_a_restart_in_the_middle_loses_nothing(emulator: DiscordEmulator, engine: object, tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    settings = settings_for(emulator, tmp_path)
    rita = emulator.add_member("rita")
    first = await start_bot(emulator, engine, settings)
    try:
        await answer(emulator, await comic(emulator, "new", rita, title="Interrupted"))
        await answer(emulator, await comic(emulator, "add", rita, group="character", name="Rita",
                                           description="silver jacket"))
        await add_panel(emulator, rita, "Rita at the station")
        # A long /imagine holds the GPU, so the second panel is still queued when the bot stops.
        await emulator.send_slash_command("imagine", {"prompt": "a long exposure", "steps": 40}, user_id=rita)
        await answer(emulator, await comic(emulator, "panel", rita, prompt="the train leaves"))
    finally:
        await first.stop()
    [(comic_id,)] = rows(db, "SELECT id FROM comics")
    [_, second_panel] = panels_of(db, comic_id)
    assert second_panel[4] is not None and second_panel[5] is None
    assert rows(db, "SELECT status FROM jobs WHERE id = ?", second_panel[4]) == [("queued",)]

    second = await start_bot(emulator, engine, settings)
    try:
        await settle(second, db)
        [(status,)] = rows(db, "SELECT status FROM jobs WHERE id = ?", second_panel[4])
        assert status == "done"
        await add_panel(emulator, rita, "Rita waves goodbye", continue_from_previous=True)
        await settle(second, db)
        panels = panels_of(db, comic_id)
        assert [p[2] for p in panels] == ["Rita at the station", "the train leaves", "Rita waves goodbye"]
        assert all(p[5] is not None for p in panels)
        [(request_json,)] = rows(db, "SELECT request_json FROM jobs WHERE id = ?", panels[2][4])
        assert "silver jacket" in json.loads(str(request_json))["prompt"]
        page = await answer(emulator, await comic(emulator, "show", rita))
        assert "3 panels" in page.content and "not drawn" not in page.content
    finally:
        await second.stop()


def test_layout_choices_are_the_renderers_layouts() -> None:
    assert set(get_args(LayoutChoice)) == set(LAYOUTS)


def test_comic_settings_check_their_ranges() -> None:
    with pytest.raises(ValueError, match="panels_per_page"):
        ComicSettings(panels_per_page=7)
    with pytest.raises(ValueError, match="default_layout"):
        ComicSettings(default_layout="zigzag")
