"""Retention and maintenance on a real database and image folder: ``storage.maintenance`` and ``--vacuum``."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from PIL import Image

from bot.cogs.comic import _pages
from composition.comic_export import ComicInfo
from rules.request import GenerationRequest
from storage import Storage
from storage.images import NewImage
from storage.jobs import NewJob
from storage.maintenance import ORPHAN_GRACE_S, vacuum
from tests.reliability import record_reliability

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0


async def fill(tmp_path: Path) -> dict[str, str]:
    """Jobs and files as weeks of use leave them; the stored files' relative paths by role."""
    storage = await Storage.open(tmp_path / "bot.sqlite3", tmp_path / "images")
    paths: dict[str, str] = {}
    try:
        for role in ("old_upload", "recent_upload", "queued_upload", "result", "old_orphan", "fresh_orphan"):
            paths[role] = storage.files.write(role.encode() * 1000).relative_path
        request = GenerationRequest(prompt="p", seed=1, steps=2, width=64, height=64)

        def job(upload: str) -> NewJob:
            return NewJob(kind="imagine", requester_id=1, guild_id=2, channel_id=3,
                          request_json=request.replace(init_image=upload, strength=0.5).to_json(),
                          interaction_token="interaction.secret", application_id=9)

        old = await storage.jobs.create(job(paths["old_upload"]))
        recent = await storage.jobs.create(job(paths["recent_upload"]))
        queued = await storage.jobs.create(job(paths["queued_upload"]))
        for record in (old, recent):
            await storage.jobs.finish(record.id, "done")
        await storage.images.add_many([NewImage(
            job_id=recent.id, idx=0, seed=1, params_json="{}", file=storage.files.write(b"result" * 1000),
            width=64, height=64, parent_image_id=None, requester_id=1, guild_id=2,
        )])
    finally:
        await storage.close()
    con = sqlite3.connect(tmp_path / "bot.sqlite3")
    con.execute("UPDATE jobs SET created_at = ?, interaction_at = ? WHERE id IN (?, ?)",
                (time.time() - 40 * DAY, time.time() - 40 * DAY, old.id, queued.id))
    con.commit()
    con.close()
    stale = time.time() - ORPHAN_GRACE_S - 60
    os.utime(tmp_path / "images" / paths["old_orphan"], (stale, stale))
    return paths


async def test_vacuum_deletes_expired_uploads_and_orphans_only(tmp_path: Path) -> None:
    paths = await fill(tmp_path)
    report = vacuum(tmp_path / "bot.sqlite3", tmp_path / "images", retention_days=30)
    left = {p.relative_to(tmp_path / "images").as_posix() for p in (tmp_path / "images").rglob("*") if p.is_file()}
    assert paths["old_upload"] not in left and paths["old_orphan"] not in left
    for kept in ("recent_upload", "queued_upload", "result", "fresh_orphan"):
        assert paths[kept] in left, kept
    assert (report.expired_uploads, report.orphan_files) == (1, 1)
    assert report.tokens_forgotten == 2
    con = sqlite3.connect(tmp_path / "bot.sqlite3")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tokens = con.execute("SELECT COUNT(*) FROM jobs WHERE interaction_token IS NOT NULL").fetchone()
        assert tokens == (1,)  # only the job asked for just now keeps its (still valid) token
    finally:
        con.close()
    record_reliability("retention", "vacuum: expired uploads and unreferenced files", 6, "only those deleted")


async def test_retention_zero_keeps_uploads_forever(tmp_path: Path) -> None:
    paths = await fill(tmp_path)
    report = vacuum(tmp_path / "bot.sqlite3", tmp_path / "images", retention_days=0)
    assert report.expired_uploads == 0
    assert (tmp_path / "images" / paths["old_upload"]).exists()


async def test_run_bot_vacuum_prints_what_it_freed(tmp_path: Path) -> None:
    paths = await fill(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[discord]\ntoken = "t"\n[storage]\ndatabase = "{tmp_path / "bot.sqlite3"}"\n'
        f'images_dir = "{tmp_path / "images"}"\nretention_days = 30\n'
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(REPO / "run_bot.py"), "--config", str(config), "--vacuum"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "deleted 1 expired upload(s) and 1 unreferenced file(s)" in result.stdout
    assert not (tmp_path / "images" / paths["old_upload"]).exists()


HOSTILE_TITLES = [
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "</Title><Writer>evil</Writer>",
    "a\x00b\x1bc\x7f",
    "\u202egnp.exe",
    "CON",
    "/absolute/path",
    "x" * 500,
    "🦊" * 40,
    "'\"&<>]]>",
]


def test_hostile_titles_never_leave_their_folder_nor_break_comicinfo() -> None:
    page = Image.new("RGB", (400, 560), "white")
    from composition.comic_export import fit_to_limit

    for index, title in enumerate(HOSTILE_TITLES):
        basename = _pages.file_basename(title, index + 1)
        assert "/" not in basename and "\\" not in basename and ".." not in basename and basename
        info = ComicInfo(title=title, writer=title)
        [cbz] = fit_to_limit([page], fmt="cbz", limit_bytes=8_000_000, title=title, author=title, info=info,
                             basename=basename)
        assert "/" not in cbz.filename and ".." not in cbz.filename
        with zipfile.ZipFile(io.BytesIO(cbz.data)) as archive:
            for name in archive.namelist():
                assert not name.startswith("/") and ".." not in name
            root = ET.fromstring(archive.read("ComicInfo.xml"))
        assert root.tag == "ComicInfo"
        assert root.find("Writer") is not None and root.findtext("Writer") != "evil"
    record_reliability("secrets", "hostile comic titles in file names and ComicInfo.xml", len(HOSTILE_TITLES),
                       "stay in their folder, XML well formed")
