"""/comic storyboard and panels drawn at their frame's shape, end to end: the real bot, the Discord
emulator, the tiny model and real SQLite files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bot.cogs.comic._group_storyboard import parse_panel
from composition.comic_layout import frame_of
from playground import DiscordEmulator, EmuInteraction, EmuMessage
from rules.frame_size import shape_differs
from tests.harness import RunningBot, rows
from tests.harness import image_posts as results

WAIT = 60.0


async def comic(
    emu: DiscordEmulator, sub: str, user: int, group: str | None = None, **options: object
) -> EmuInteraction:
    return await emu.send_slash_command("comic", options, user_id=user, subcommand=sub, group=group)


async def answer(emu: DiscordEmulator, inter: EmuInteraction) -> EmuMessage:
    return await emu.wait_for(
        lambda: inter.original if inter.original is not None and not inter.original.loading else None, WAIT
    )


async def next_post(emu: DiscordEmulator, before: int) -> EmuMessage:
    return await emu.wait_for(lambda: results(emu)[before] if len(results(emu)) > before else None, WAIT)


async def linked(db: Path, comic_id: int) -> list[tuple[int, int, int | None, int | None, str]]:
    """(id, position, job_id, image_id, params_json) of each panel, once every panel shows its latest job's image."""
    for _ in range(int(WAIT / 0.05)):
        panels = rows(db, """SELECT p.id, p.position, p.job_id, p.image_id, p.params_json FROM comic_panels AS p
                             WHERE p.comic_id = ? ORDER BY p.position""", comic_id)
        pending = rows(db, "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]
        fresh = all(
            image is not None and rows(db, "SELECT job_id FROM images WHERE id = ?", image)[0][0] == job
            for _, _, job, image, _ in panels
        )
        if not pending and fresh:
            return panels
        await asyncio.sleep(0.05)
    raise AssertionError("the panels were not all drawn and linked in time")


def aspect_fits(db: Path, image_id: int, frame: tuple[int, int]) -> tuple[int, int]:
    [(width, height)] = rows(db, "SELECT width, height FROM images WHERE id = ?", image_id)
    assert not shape_differs((width, height), frame), f"{width}x{height} drawn for a {frame} frame"
    return width, height


def test_storyboard_panels_parse_description_caption_and_dialogue() -> None:
    assert parse_panel("Mira waves | Morning. | mira: Hello!", ["Mira"]) == parse_panel(
        "Mira waves|Morning.|Mira: Hello!", ["Mira"]
    )
    panel = parse_panel("Mira waves | Morning. | mira: Hello!", ["Mira"])
    assert (panel.prompt, panel.caption, panel.dialogue, panel.speaker) == ("Mira waves", "Morning.", "Hello!", "Mira")
    stranger = parse_panel("a ship |  | Captain: Ahoy", ["Mira"])
    assert (stranger.caption, stranger.dialogue, stranger.speaker) == (None, "Captain: Ahoy", None)


async def test_a_storyboard_is_one_job_whose_images_become_its_panels(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    ana = emulator.add_member("ana")
    await answer(emulator, await comic(emulator, "new", ana, title="Harbour", layout="grid"))
    [(comic_id,)] = rows(db, "SELECT id FROM comics")
    await answer(emulator, await comic(emulator, "add", ana, group="character", name="Mira",
                                       description="a girl in a yellow raincoat"))
    inter = await comic(
        emulator, "storyboard", ana,
        panel1="Mira at the harbour | Dawn. | Mira: Boats!",
        panel2="Mira on a boat",
        panel3="the open sea | | Where is land?",
        panel4="Mira waves from the deck",
    )
    status = await answer(emulator, inter)
    assert not status.ephemeral and "Panels 1-4" in status.content and "Mira — consistent attention" in status.content
    post = await next_post(emulator, 0)
    panels = await linked(db, comic_id)
    assert [p[1] for p in panels] == [1, 2, 3, 4]
    assert len({p[2] for p in panels}) == 1  # one job drew them all
    [job_id] = {p[2] for p in panels}
    [(request_json,)] = rows(db, "SELECT request_json FROM jobs WHERE id = ?", job_id)
    board = json.loads(str(request_json))
    assert board["count"] == 4 and len(board["panel_prompts"]) == 4 and board["shared_attention"] == 0.5
    assert "Mira (a girl in a yellow raincoat) at the harbour" in board["panel_prompts"][0]
    assert board["extra"]["characters"] == [["Mira", "consistent attention"]]
    # Image k of the job is panel k's picture; each panel records the request that draws it alone.
    images = rows(db, "SELECT id, idx, seed FROM images WHERE job_id = ? ORDER BY idx", job_id)
    assert [p[3] for p in panels] == [image for image, _, _ in images]
    for (_, position, _, image_id, params), (_, idx, seed) in zip(panels, images, strict=True):
        alone = json.loads(params)
        assert alone["count"] == 1 and alone["panel_prompts"] == [] and alone["seed"] == seed == board["seed"] + idx
        assert alone["prompt"] == board["panel_prompts"][idx] and alone["extra"]["board_index"] == idx
        aspect_fits(db, image_id, frame_of(4, position - 1, layout="grid").size)  # a 2x2 grid: portrait cells
    texts = rows(db, "SELECT caption, dialogue, speaker FROM comic_panels WHERE comic_id = ? ORDER BY position",
                 comic_id)
    assert texts == [("Dawn.", "Boats!", "Mira"), (None, None, None), (None, "Where is land?", None),
                     (None, None, None)]
    fields = {field["name"]: field["value"] for field in post.embeds[0]["fields"]}
    assert fields["Character"] == "Mira — consistent attention"
    assert post.embeds[0]["title"].startswith("Storyboard: ")
    assert post.embeds[0]["description"].splitlines()[2].startswith("3. the open sea")
    # A storyboard's result carries U1-U4 and 1️⃣-4️⃣ like any grid.
    assert {f"img:up:{image}" for image, _, _ in images} <= {c for c, _, _ in post.buttons()}

    # Redoing one storyboard panel draws it alone, with a new seed; the others keep their pictures.
    await answer(emulator, await comic(emulator, "redo", ana, panel=2))
    again = await linked(db, comic_id)
    assert again[1][2] != job_id and again[1][3] != panels[1][3]
    assert [p[3] for i, p in enumerate(again) if i != 1] == [p[3] for i, p in enumerate(panels) if i != 1]
    [(redo_json,)] = rows(db, "SELECT request_json FROM jobs WHERE id = ?", again[1][2])
    redo = json.loads(str(redo_json))
    assert redo["panel_prompts"] == [] and redo["count"] == 1 and "board_index" not in redo["extra"]

    page = await answer(emulator, await comic(emulator, "show", ana))
    assert page.attachments and page.attachments[0].image().size == (1654, 2339)


async def test_storyboard_refusals(emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    bo = emulator.add_member("bo")
    refused = await answer(emulator, await comic(emulator, "storyboard", bo, panel1="a", panel2="b"))
    assert refused.ephemeral and "no active comic" in refused.content
    await answer(emulator, await comic(emulator, "new", bo, title="Short"))
    four_parts = await answer(emulator, await comic(emulator, "storyboard", bo, panel1="a | b | c | d", panel2="e"))
    assert four_parts.ephemeral and "at most three parts" in four_parts.content
    no_description = await answer(emulator, await comic(emulator, "storyboard", bo, panel1=" | a caption", panel2="e"))
    assert no_description.ephemeral and "needs a description" in no_description.content
    assert rows(db, "SELECT COUNT(*) FROM comic_panels")[0][0] == 0
    assert rows(db, "SELECT COUNT(*) FROM jobs")[0][0] == 0


async def test_panels_are_drawn_at_their_frames_shape_and_a_move_offers_a_redraw(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    cy = emulator.add_member("cy")
    await answer(emulator, await comic(emulator, "new", cy, title="Shapes", layout="auto"))
    [(comic_id,)] = rows(db, "SELECT id FROM comics")
    sizes = []
    for number, prompt in enumerate(("a tall tower", "a wide bay", "a cat"), start=1):
        before = len(results(emulator))
        await answer(emulator, await comic(emulator, "panel", cy, prompt=prompt))
        await next_post(emulator, before)
        panels = await linked(db, comic_id)
        # Each panel is drawn for the frame it fills when it is added as the last panel.
        sizes.append(aspect_fits(db, panels[-1][3], frame_of(number, number - 1, layout="auto").size))
    assert sizes[0][0] < sizes[0][1] and sizes[1][0] > sizes[1][1]  # the splash is tall, a full-width row wide
    [(cat_id, _, cat_job, cat_image, _)] = [p for p in panels if p[1] == 3]
    [(cat_seed,)] = rows(db, "SELECT seed FROM comic_panels WHERE id = ?", cat_id)

    # The cat moves from a narrow frame to the full-width one on top: its reply offers a redraw.
    moved = await answer(emulator, await comic(emulator, "move", cy, panel=3, to=1))
    assert "now panel 1 of 3" in moved.content and "redraw" in moved.content
    assert f"comic:redraw:{cat_id}" in {c for c, _, _ in moved.buttons()}
    before = len(results(emulator))
    click = await emulator.click_button(moved.id, f"comic:redraw:{cat_id}", user_id=cy)
    status = await answer(emulator, click)
    assert "redrawn to fit" in status.content
    await next_post(emulator, before)
    panels = await linked(db, comic_id)
    [(_, position, job, image, params)] = [p for p in panels if p[0] == cat_id]
    assert position == 1 and job != cat_job and image != cat_image
    width, height = aspect_fits(db, image, frame_of(3, 0, layout="auto").size)
    assert width > height and json.loads(params)["seed"] == cat_seed  # same seed, new shape

    # A stranger's click is refused, and nothing is queued.
    stranger = emulator.add_member("stranger")
    jobs = rows(db, "SELECT COUNT(*) FROM jobs")[0][0]
    refused = await answer(emulator, await emulator.click_button(moved.id, f"comic:redraw:{cat_id}", user_id=stranger))
    assert refused.ephemeral and "Only the owner and collaborators" in refused.content
    assert rows(db, "SELECT COUNT(*) FROM jobs")[0][0] == jobs

    # A move that keeps every panel's shape offers nothing.
    await answer(emulator, await comic(emulator, "edit", cy, panel=1, caption="Top."))
    same = await answer(emulator, await comic(emulator, "move", cy, panel=1, to=1))
    assert not same.buttons()


async def test_a_characters_likeness_is_set_by_its_owner(
    emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    di = emulator.add_member("di")
    await answer(emulator, await comic(emulator, "new", di, title="Faces"))
    await answer(emulator, await comic(emulator, "add", di, group="character", name="Mira", description="a girl"))
    set_ = await answer(emulator, await comic(emulator, "likeness", di, group="character", name="mira", scale=0.9))
    assert "Mira's likeness scale is now 0.9" in set_.content and "no IP-Adapter configured" in set_.content
    assert rows(db, "SELECT ip_adapter_scale FROM comic_characters") == [(0.9,)]
    missing = await answer(emulator, await comic(emulator, "likeness", di, group="character", name="Otto", scale=0.5))
    assert missing.ephemeral and "no character called Otto" in missing.content
