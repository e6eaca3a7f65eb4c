"""ComicRepository on real SQLite files: panels in dense order, caps, collaborators, characters, restarts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from storage import NotFound, Storage
from storage.comics import (
    CharacterNotFound,
    ComicFull,
    ComicNotFound,
    ComicRecord,
    NewPanel,
    PanelNotFound,
    PanelPlan,
    PanelRecord,
)
from storage.images import NewImage
from storage.jobs import NewJob

OWNER, FRIEND, STRANGER, GUILD = 101, 202, 303, 9


async def new_comic(storage: Storage, title: str = "Night Shift", owner: int = OWNER) -> ComicRecord:
    return await storage.comics.create(
        owner_id=owner, guild_id=GUILD, channel_id=5, title=title, style=None, layout="auto", seed=1234
    )


def plan_with_job(stored: PanelRecord) -> PanelPlan:
    """Seed from the panel id, and a job row carrying the same parameters."""
    params = json.dumps({"prompt": stored.prompt, "seed": 1000 + stored.id})
    job = NewJob(kind="txt2img", requester_id=OWNER, guild_id=GUILD, channel_id=5, request_json=params)
    return PanelPlan(seed=1000 + stored.id, params_json=params, job=job)


async def add(storage: Storage, comic: ComicRecord, prompt: str, *, max_panels: int = 60) -> PanelRecord:
    change = await storage.comics.add_panel(comic.id, NewPanel(prompt), plan_with_job, max_panels=max_panels)
    return change.after


async def order(storage: Storage, comic: ComicRecord) -> list[tuple[int, str]]:
    return [(p.position, p.prompt) for p in await storage.comics.panels(comic.id)]


async def test_a_panel_and_its_job_are_written_together(storage: Storage) -> None:
    comic = await new_comic(storage)
    panel = await add(storage, comic, "a diner at 3 am")
    assert panel.position == 1 and panel.seed == 1000 + panel.id and panel.job_id is not None
    job = await storage.jobs.get(panel.job_id)
    assert job.status == "queued" and json.loads(job.request_json)["seed"] == panel.seed
    assert panel.params_json == job.request_json and panel.job_status == "queued" and panel.drawing


async def test_a_failing_plan_leaves_neither_panel_nor_job(storage: Storage) -> None:
    comic = await new_comic(storage)

    def broken(stored: PanelRecord) -> PanelPlan:
        raise RuntimeError("no seed for you")

    with pytest.raises(RuntimeError):
        await storage.comics.add_panel(comic.id, NewPanel("x"), broken, max_panels=60)
    assert await storage.comics.panels(comic.id) == []
    assert await storage.jobs.active() == []


async def test_move_and_remove_keep_positions_dense(storage: Storage) -> None:
    comic = await new_comic(storage)
    for prompt in "abcde":
        await add(storage, comic, prompt)
    await storage.comics.move_panel(comic.id, 5, 1)
    assert await order(storage, comic) == [(1, "e"), (2, "a"), (3, "b"), (4, "c"), (5, "d")]
    await storage.comics.move_panel(comic.id, 2, 4)
    assert await order(storage, comic) == [(1, "e"), (2, "b"), (3, "c"), (4, "a"), (5, "d")]
    removed = await storage.comics.remove_panel(comic.id, 2)
    assert removed.prompt == "b"
    assert await order(storage, comic) == [(1, "e"), (2, "c"), (3, "a"), (4, "d")]
    with pytest.raises(PanelNotFound, match="panels 1 to 4"):
        await storage.comics.move_panel(comic.id, 1, 9)
    with pytest.raises(PanelNotFound):
        await storage.comics.remove_panel(comic.id, 5)


async def test_moving_keeps_each_panels_seed(storage: Storage) -> None:
    comic = await new_comic(storage)
    for prompt in "abc":
        await add(storage, comic, prompt)
    seeds = {p.prompt: p.seed for p in await storage.comics.panels(comic.id)}
    await storage.comics.move_panel(comic.id, 3, 1)
    assert {p.prompt: p.seed for p in await storage.comics.panels(comic.id)} == seeds


async def test_panel_cap_is_enforced_in_the_transaction(storage: Storage) -> None:
    comic = await new_comic(storage)
    results = await asyncio.gather(
        *(add(storage, comic, f"p{i}", max_panels=3) for i in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, ComicFull) for r in results) == 2
    assert [p for p, _ in await order(storage, comic)] == [1, 2, 3]
    assert len(await storage.jobs.active()) == 3


async def shuffle(storage: Storage, comic: ComicRecord, offset: int, *, within: int, steps: int = 10) -> None:
    """A collaborator moving panels around among the first ``within`` (which always exist)."""
    for step in range(steps):
        await storage.comics.move_panel(comic.id, 1 + (step + offset) % within, 1 + (step * 3) % within)


async def trim(storage: Storage, comic: ComicRecord, times: int) -> None:
    """A collaborator removing the first panel again and again."""
    for _ in range(times):
        await storage.comics.remove_panel(comic.id, 1)


async def test_concurrent_edits_through_the_bots_connection_lose_nothing(storage: Storage) -> None:
    comic = await new_comic(storage)
    for i in range(12):
        await add(storage, comic, f"p{i}")
    await asyncio.gather(
        shuffle(storage, comic, 0, within=8),
        shuffle(storage, comic, 5, within=8),
        trim(storage, comic, 4),
        add(storage, comic, "late"),
    )
    panels = await storage.comics.panels(comic.id)
    assert [p.position for p in panels] == list(range(1, 10))
    assert len({p.id for p in panels}) == 9 and "late" in {p.prompt for p in panels}


async def test_two_connections_editing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two writers on two connections to one file (two bot processes, say) are serialised too."""
    first = await Storage.open(tmp_path / "bot.sqlite3", tmp_path / "images")
    second = await Storage.open(tmp_path / "bot.sqlite3", tmp_path / "images")
    try:
        comic = await new_comic(first)
        for i in range(12):
            await add(first, comic, f"p{i}")
        await asyncio.gather(shuffle(first, comic, 0, within=7, steps=20), trim(second, comic, 5))
    finally:
        await first.close()
        await second.close()
    raw = sqlite3.connect(tmp_path / "bot.sqlite3")
    try:
        positions = [r[0] for r in raw.execute("SELECT position FROM comic_panels ORDER BY position")]
    finally:
        raw.close()
    assert positions == list(range(1, 8))


async def test_update_panel_changes_text_and_requeues_with_a_plan(storage: Storage) -> None:
    comic = await new_comic(storage)
    first = await add(storage, comic, "a")
    change = await storage.comics.update_panel(comic.id, 1, {"caption": "Later.", "dialogue": "Hi"})
    assert change.job_id is None and change.after.caption == "Later." and change.after.job_id == first.job_id

    def redo(stored: PanelRecord) -> PanelPlan:
        job = NewJob(kind="txt2img", requester_id=FRIEND, guild_id=GUILD, channel_id=5, request_json="{}")
        return PanelPlan(seed=stored.seed + 1, params_json='{"redo": 1}', job=job)

    change = await storage.comics.update_panel(comic.id, 1, {"prompt": "b"}, redo)
    assert change.before is not None and change.before.prompt == "a"
    assert change.after.prompt == "b" and change.after.seed == first.seed + 1
    assert change.job_id is not None and change.after.job_id == change.job_id != first.job_id
    with pytest.raises(ValueError, match="position"):
        await storage.comics.update_panel(comic.id, 1, {"position": "3"})


async def test_images_link_only_to_the_panels_latest_job(storage: Storage) -> None:
    comic = await new_comic(storage)
    panel = await add(storage, comic, "a")
    old_job = panel.job_id
    assert old_job is not None
    change = await storage.comics.update_panel(comic.id, 1, {}, plan_with_job)
    new_job = change.job_id
    assert new_job is not None

    async def image_for(job_id: int) -> int:
        file = await asyncio.to_thread(storage.files.write, f"png of {job_id}".encode())
        [row] = await storage.images.add_many([NewImage(
            job_id=job_id, idx=0, seed=1, params_json="{}", file=file, width=64, height=64,
            parent_image_id=None, requester_id=OWNER, guild_id=GUILD,
        )])
        return row.id

    assert await storage.comics.link_image(old_job, await image_for(old_job)) is None  # superseded
    image = await image_for(new_job)
    linked = await storage.comics.link_image(new_job, image)
    assert linked is not None and linked.image_id == image and linked.id == panel.id


async def test_relink_catches_images_whose_hook_never_ran(storage: Storage) -> None:
    comic = await new_comic(storage)
    panel = await add(storage, comic, "a")
    assert panel.job_id is not None
    file = await asyncio.to_thread(storage.files.write, b"image")
    [row] = await storage.images.add_many([NewImage(
        job_id=panel.job_id, idx=0, seed=1, params_json="{}", file=file, width=64, height=64,
        parent_image_id=None, requester_id=OWNER, guild_id=GUILD,
    )])
    assert await storage.comics.relink_finished() == 1
    assert (await storage.comics.panel_at(comic.id, 1)).image_id == row.id
    assert await storage.comics.relink_finished() == 0


async def test_collaborators_roles_and_active_comics(storage: Storage) -> None:
    comic = await new_comic(storage)
    other = await new_comic(storage, "Other", owner=STRANGER)
    assert await storage.comics.role(comic, OWNER) == "owner"
    assert await storage.comics.role(comic, FRIEND) == "viewer"
    assert await storage.comics.add_collaborator(comic.id, FRIEND)
    assert not await storage.comics.add_collaborator(comic.id, FRIEND)
    assert await storage.comics.role(comic, FRIEND) == "collaborator"
    assert await storage.comics.collaborators(comic.id) == [FRIEND]

    assert (await storage.comics.active(OWNER, GUILD)) == await storage.comics.get(comic.id)
    assert await storage.comics.active(OWNER, GUILD + 1) is None
    assert await storage.comics.set_active_if_none(FRIEND, GUILD, comic.id)
    assert not await storage.comics.set_active_if_none(FRIEND, GUILD, other.id)
    await storage.comics.set_active(FRIEND, GUILD, other.id)
    active = await storage.comics.active(FRIEND, GUILD)
    assert active is not None and active.id == other.id

    listed = await storage.comics.visible(GUILD, FRIEND)
    assert [(s.comic.title, s.role) for s in listed] == [("Night Shift", "collaborator"), ("Other", "viewer")]
    assert await storage.comics.remove_collaborator(comic.id, FRIEND)
    assert not await storage.comics.remove_collaborator(comic.id, FRIEND)
    assert await storage.comics.role(comic, FRIEND) == "viewer"
    with pytest.raises(ComicNotFound, match="no comic #999"):
        await storage.comics.get(999)
    # The comic errors are the storage's one NotFound, and still the errors the cog shows.
    with pytest.raises(NotFound) as caught:
        await storage.comics.panel_at(comic.id, 7)
    assert isinstance(caught.value, PanelNotFound) and str(caught.value) == "This comic has no panels yet."


async def test_characters_are_capped_and_matched_in_any_case(storage: Storage) -> None:
    comic = await new_comic(storage)
    mira, created = await storage.comics.set_character(comic.id, "Mira", "red hair", max_characters=2)
    assert created and mira.name == "Mira"
    again, created = await storage.comics.set_character(comic.id, "MIRA", "red hair, yellow coat", max_characters=2)
    assert not created and again.id == mira.id
    await storage.comics.set_character(comic.id, "Tom", "tall", max_characters=2)
    with pytest.raises(ComicFull, match="limit is 2"):
        await storage.comics.set_character(comic.id, "Zed", "short", max_characters=2)
    assert [(c.name, c.description) for c in await storage.comics.characters(comic.id)] == [
        ("MIRA", "red hair, yellow coat"), ("Tom", "tall"),
    ]
    removed = await storage.comics.remove_character(comic.id, "mira")
    assert removed.name == "MIRA"
    with pytest.raises(CharacterNotFound, match="no character called mira"):
        await storage.comics.remove_character(comic.id, "mira")


async def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    async with await Storage.open(tmp_path / "bot.sqlite3", tmp_path / "images") as storage:
        comic = await new_comic(storage)
        await storage.comics.add_collaborator(comic.id, FRIEND)
        await storage.comics.set_character(comic.id, "Mira", "red hair", max_characters=12)
        for prompt in "abc":
            await add(storage, comic, prompt)
        await storage.comics.move_panel(comic.id, 3, 1)
    async with await Storage.open(tmp_path / "bot.sqlite3", tmp_path / "images") as storage:
        assert await order(storage, comic) == [(1, "c"), (2, "a"), (3, "b")]
        assert await storage.comics.collaborators(comic.id) == [FRIEND]
        assert [c.name for c in await storage.comics.characters(comic.id)] == ["Mira"]
        active = await storage.comics.active(OWNER, GUILD)
        assert active is not None and active.id == comic.id
        assert len(await storage.jobs.active()) == 3


async def test_a_storyboard_adds_its_panels_and_one_job_and_links_image_by_board_index(storage: Storage) -> None:
    from storage.comics import BoardPlan

    comic = await new_comic(storage)
    await add(storage, comic, "before")

    def plan(stored: Sequence[PanelRecord]) -> BoardPlan:
        job = NewJob(kind="txt2img", requester_id=OWNER, guild_id=GUILD, channel_id=5, request_json="{}")
        plans = [PanelPlan(seed=50 + i, params_json=json.dumps({"prompt": p.prompt, "extra": {"board_index": i}}))
                 for i, p in enumerate(stored)]
        return BoardPlan(plans, job)

    panels, job_id = await storage.comics.add_storyboard(
        comic.id, [NewPanel("one", caption="c1"), NewPanel("two", dialogue="hi", speaker="Mira"), NewPanel("three")],
        plan, max_panels=10,
    )
    assert [(p.position, p.prompt, p.seed, p.job_id) for p in panels] == [
        (2, "one", 50, job_id), (3, "two", 51, job_id), (4, "three", 52, job_id)
    ]
    assert (panels[0].caption, panels[1].dialogue, panels[1].speaker) == ("c1", "hi", "Mira")
    with pytest.raises(ComicFull):
        await storage.comics.add_storyboard(comic.id, [NewPanel("x")] * 7, plan, max_panels=10)
    assert await storage.comics.panel_count(comic.id) == 4

    # The middle panel is removed while drawing; the others still get their own image.
    await storage.comics.remove_panel(comic.id, 3)
    files = [await asyncio.to_thread(storage.files.write, bytes([i])) for i in range(3)]
    rows = await storage.images.add_many([NewImage(
        job_id=job_id, idx=i, seed=50 + i, params_json="{}", file=files[i], width=64, height=64,
        parent_image_id=None, requester_id=OWNER, guild_id=GUILD,
    ) for i in range(3)])
    assert await storage.comics.relink_finished() == 2  # a crash before the hook: the restart links them
    shown = {p.prompt: p.image_id for p in await storage.comics.panels(comic.id)}
    assert shown["one"] == rows[0].id and shown["three"] == rows[2].id
    await storage.comics.update_panel(comic.id, 2, {"caption": None})
    linked = await storage.comics.link_images(job_id, [r.id for r in rows])
    assert sorted(p.prompt for p in linked) == ["one", "three"]
    assert await storage.comics.relink_finished() == 0
    assert (await storage.comics.panel_by_id(panels[0].id)) == (await storage.comics.panel_at(comic.id, 2))
    assert await storage.comics.panel_by_id(panels[1].id) is None


async def test_a_characters_likeness_scale_is_stored_and_reset(storage: Storage) -> None:
    comic = await new_comic(storage)
    await storage.comics.set_character(comic.id, "Mira", "a girl", max_characters=5)
    assert (await storage.comics.characters(comic.id))[0].ip_adapter_scale is None
    changed = await storage.comics.set_character_scale(comic.id, "mira", 0.9)
    assert (changed.name, changed.ip_adapter_scale) == ("Mira", 0.9)
    assert (await storage.comics.characters(comic.id))[0].ip_adapter_scale == 0.9
    await storage.comics.set_character_scale(comic.id, "Mira", None)
    assert (await storage.comics.characters(comic.id))[0].ip_adapter_scale is None
    with pytest.raises(CharacterNotFound):
        await storage.comics.set_character_scale(comic.id, "Otto", 0.5)
