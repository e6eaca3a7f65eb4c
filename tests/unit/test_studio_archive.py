"""The studio's read-only archive queries on a real SQLite file written by the bot's repositories."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from rules.request import GenerationRequest
from storage import Storage
from storage.comics import NewPanel, PanelPlan, PanelRecord
from storage.images import ImageRecord, NewImage
from storage.jobs import NewJob
from studio.archive import Archive, Filters, SchemaTooOld, Scope, open_readonly
from studio.settings import ConfigError, config_path, parse_config, studio_settings
from studio.thumbnails import THUMBNAIL_SIDE, thumbnail_path

GUILD_A, GUILD_B = 10, 20
CHANNEL_A, CHANNEL_B = 100, 200
ALICE, BOB = 1001, 1002


def png(colour: tuple[int, int, int], size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


async def make(
    storage: Storage,
    prompt: str,
    *,
    user: int = ALICE,
    guild: int = GUILD_A,
    channel: int = CHANNEL_A,
    kind: str = "txt2img",
    parent: ImageRecord | None = None,
    style: str | None = None,
    decision: str = "post",
    colour: tuple[int, int, int] = (10, 20, 30),
) -> ImageRecord:
    """One finished job with one image, recorded as the job runner records it."""
    extra = {"model": "tiny-sd", **({"style": style} if style else {})}
    request = GenerationRequest(
        prompt=prompt, seed=len(prompt), steps=3, width=64, height=64, kind=kind,  # type: ignore[arg-type]
        init_image=parent.path if parent else None, strength=0.5 if parent else None, extra=extra,
    )
    job = await storage.jobs.create(
        NewJob(kind=kind, requester_id=user, guild_id=guild, channel_id=channel, request_json=request.to_json(),
               parent_image_id=parent.id if parent else None)
    )
    file = storage.files.write(png(colour))
    [row] = await storage.images.add_many([
        NewImage(job_id=job.id, idx=0, seed=request.seed, params_json=request.to_json(), file=file, width=64,
                 height=64, parent_image_id=parent.id if parent else None, requester_id=user, guild_id=guild)
    ])
    await storage.images.record_safety([row.id], [decision])
    await storage.jobs.finish(job.id, "done")
    return row


@pytest.fixture
async def archive_db(tmp_path: Path) -> dict[str, object]:
    storage = await Storage.open(tmp_path / "bot.sqlite3", tmp_path / "images")
    try:
        made: dict[str, object] = {}
        made["lighthouse"] = base = await make(storage, "a lighthouse at dusk", style="watercolor")
        made["variation"] = await make(storage, "a lighthouse at dusk", kind="img2img", parent=base,
                                       colour=(40, 40, 40))
        made["upscale"] = await make(storage, "a lighthouse at dusk", kind="upscale", parent=base,
                                     colour=(50, 50, 50))
        made["forest"] = await make(storage, "a misty Forest", user=BOB, guild=GUILD_B, channel=CHANNEL_B,
                                    colour=(0, 90, 0))
        made["withheld"] = await make(storage, "a forbidden lighthouse", decision="withhold", colour=(9, 9, 9))
        made["spoiler"] = await make(storage, "a spoiler lighthouse", decision="spoiler", colour=(8, 8, 8))
        deleted = await make(storage, "a deleted lighthouse", colour=(7, 7, 7))
        await storage.images.mark_job_deleted(deleted.job_id)
        made["deleted"] = deleted
        comic = await storage.comics.create(owner_id=BOB, guild_id=GUILD_B, channel_id=CHANNEL_B, title="Night Shift",
                                            style=None, layout="auto", seed=1)
        await storage.comics.add_collaborator(comic.id, ALICE)
        forest = made["forest"]
        assert isinstance(forest, ImageRecord)

        def plan(stored: PanelRecord) -> PanelPlan:
            return PanelPlan(seed=forest.seed, params_json=forest.params_json, job=None)

        await storage.comics.add_panel(comic.id, NewPanel("a misty forest", caption="Dawn", image_id=forest.id),
                                       plan, max_panels=60)
        made["comic"] = comic
    finally:
        await storage.close()
    made["db"] = tmp_path / "bot.sqlite3"
    made["images"] = tmp_path / "images"
    return made


def ids(archive: Archive, filters: Filters = Filters(), **kw: int) -> list[int]:  # noqa: B008
    return [row.id for row in archive.gallery(filters, **kw).images]


def test_newest_first_without_withheld_or_deleted(archive_db: dict[str, object]) -> None:
    archive = Archive(archive_db["db"])  # type: ignore[arg-type]
    shown = ids(archive)
    every = [archive_db[name].id for name in ("lighthouse", "variation", "upscale", "forest", "spoiler")]  # type: ignore[attr-defined]
    assert shown == sorted(every, reverse=True)
    for hidden in ("withheld", "deleted"):
        image_id = archive_db[hidden].id  # type: ignore[attr-defined]
        assert image_id not in shown and archive.image(image_id) is None


def test_pages_split_without_gaps(archive_db: dict[str, object]) -> None:
    archive = Archive(archive_db["db"])  # type: ignore[arg-type]
    first = archive.gallery(page=0, per_page=2)
    second = archive.gallery(page=1, per_page=2)
    third = archive.gallery(page=2, per_page=2)
    assert first.has_next and second.has_next and not third.has_next
    assert [r.id for r in first.images + second.images + third.images] == ids(archive)


def test_search_and_filters_narrow(archive_db: dict[str, object]) -> None:
    archive = Archive(archive_db["db"])  # type: ignore[arg-type]
    d = {name: getattr(value, "id", None) for name, value in archive_db.items()}
    assert ids(archive, Filters(search="FOREST")) == [d["forest"]]
    assert ids(archive, Filters(guild_id=GUILD_B)) == [d["forest"]]
    assert ids(archive, Filters(channel_id=CHANNEL_B)) == [d["forest"]]
    assert ids(archive, Filters(requester_id=BOB)) == [d["forest"]]
    assert ids(archive, Filters(style="watercolor")) == [d["lighthouse"]]
    assert ids(archive, Filters(model="tiny-sd")) == ids(archive)
    assert ids(archive, Filters(kind="variation")) == [d["variation"]]
    assert ids(archive, Filters(kind="upscale")) == [d["upscale"]]
    assert set(ids(archive, Filters(kind="txt2img"))) == {d["lighthouse"], d["forest"], d["spoiler"]}
    assert ids(archive, Filters(since=2**40)) == []
    assert ids(archive, Filters(search="lighthouse", requester_id=BOB)) == []
    found = archive.facets()
    assert found.guild_ids == [GUILD_A, GUILD_B] and found.styles == ["watercolor"] and found.models == ["tiny-sd"]


def test_lineage_links_parent_variations_and_upscales(archive_db: dict[str, object]) -> None:
    archive = Archive(archive_db["db"])  # type: ignore[arg-type]
    base = archive.image(archive_db["lighthouse"].id)  # type: ignore[attr-defined]
    assert base is not None and base.style == "watercolor" and base.model == "tiny-sd"
    lineage = archive.lineage(base)
    assert lineage.parent is None
    assert [r.id for r in lineage.variations] == [archive_db["variation"].id]  # type: ignore[attr-defined]
    assert [r.id for r in lineage.upscales] == [archive_db["upscale"].id]  # type: ignore[attr-defined]
    child = archive.image(archive_db["upscale"].id)  # type: ignore[attr-defined]
    assert child is not None and archive.lineage(child).parent == base


def test_public_scope_shows_only_chosen_servers_and_channels(archive_db: dict[str, object]) -> None:
    public = Archive(archive_db["db"], Scope(channel_ids=(CHANNEL_B,), public=True))  # type: ignore[arg-type]
    assert ids(public) == [archive_db["forest"].id]  # type: ignore[attr-defined]
    assert public.image(archive_db["lighthouse"].id) is None  # type: ignore[attr-defined]
    assert [c.title for c in public.comics()] == ["Night Shift"]
    assert Archive(archive_db["db"], Scope(guild_ids=(GUILD_A,), public=True)).comics() == []  # type: ignore[arg-type]
    found = public.facets()
    assert (found.guild_ids, found.channel_ids, found.requester_ids) == ([], [CHANNEL_B], [BOB])


def test_comics_with_cover_count_owner_and_collaborators(archive_db: dict[str, object]) -> None:
    archive = Archive(archive_db["db"])  # type: ignore[arg-type]
    [comic] = archive.comics()
    forest = archive_db["forest"]
    assert (comic.title, comic.panel_count, comic.owner_id, comic.collaborators) == ("Night Shift", 1, BOB, (ALICE,))
    assert comic.cover_path == forest.path  # type: ignore[attr-defined]
    [panel] = archive.panels(comic.id)
    assert (panel.position, panel.caption, panel.image_path) == (1, "Dawn", forest.path)  # type: ignore[attr-defined]


def test_the_archive_is_opened_read_only(archive_db: dict[str, object]) -> None:
    con = open_readonly(archive_db["db"])  # type: ignore[arg-type]
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            con.execute("DELETE FROM images")
    finally:
        con.close()


def test_an_old_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    sqlite3.connect(path).execute("PRAGMA user_version = 2").connection.close()
    with pytest.raises(SchemaTooOld, match="start the bot once"):
        open_readonly(path)
    with pytest.raises(FileNotFoundError):
        open_readonly(tmp_path / "missing.sqlite3")


def test_thumbnails_are_made_once_and_blurred_for_spoilers(archive_db: dict[str, object], tmp_path: Path) -> None:
    spoiler = archive_db["spoiler"]
    images = archive_db["images"]
    plain = thumbnail_path(images, spoiler.path, tmp_path / "thumbs")  # type: ignore[arg-type, attr-defined]
    blurred = thumbnail_path(images, spoiler.path, tmp_path / "thumbs", blur=True)  # type: ignore[arg-type, attr-defined]
    assert plain is not None and blurred is not None and plain != blurred
    with Image.open(plain) as image:
        assert max(image.size) <= THUMBNAIL_SIDE and image.format == "WEBP"
    made = plain.stat().st_mtime_ns
    assert thumbnail_path(images, spoiler.path, tmp_path / "thumbs") == plain  # type: ignore[arg-type, attr-defined]
    assert plain.stat().st_mtime_ns == made
    assert thumbnail_path(images, "ab/missing.png", tmp_path / "thumbs") is None  # type: ignore[arg-type]


def test_studio_settings_are_checked() -> None:
    config = parse_config({"storage": {"database": "x.sqlite3"}, "studio": {"secret": "s", "channel_id": 5}})
    assert config.database == Path("x.sqlite3") and config.studio.generation_enabled
    assert config.studio.api_url == "http://127.0.0.1:8765"
    assert "secret" not in repr(config.studio) or "'s'" not in repr(config.studio)
    with pytest.raises(ConfigError, match=r"studio\.colour"):
        studio_settings({"studio": {"colour": "red"}})
    with pytest.raises(ConfigError, match=r"studio\.public"):
        studio_settings({"studio": {"public": True}})
    with pytest.raises(ConfigError, match=r"studio\.api_port"):
        studio_settings({"studio": {"api_port": "80"}})
    assert config_path(["--config", "a.toml"]) == Path("a.toml")
    assert config_path(["--config=b.toml"]) == Path("b.toml")
    json.dumps(studio_settings({}).public_guild_ids)


def test_the_studio_never_loads_torch() -> None:
    """The studio's modules (pages' code included) import no torch or diffusers: it never holds the GPU."""
    import subprocess
    import sys

    code = (
        "import sys, studio.archive, studio.context, studio.comics_render, studio.bot_client, studio.launch;"
        "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
