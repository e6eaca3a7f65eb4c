"""Image files on disk (content-addressed) and their rows in ``images``."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from storage.database import transaction, write
from storage.errors import NotFound


@dataclass(frozen=True)
class StoredFile:
    """A file written by :class:`ImageStore`."""

    path: Path
    relative_path: str
    sha256: str


class ImageStore:
    """Writes image bytes under ``root`` with names derived from their SHA-256.

    Identical bytes land on the same file, so writing twice is harmless. Files are written to a
    temporary name, fsynced and renamed (and the folder fsynced), so a crash never leaves a
    half-written image under a real name.
    These methods block: call them from a worker thread or executor.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, data: bytes, suffix: str = ".png") -> StoredFile:
        """Store ``data`` and return where it went."""
        digest = hashlib.sha256(data).hexdigest()
        relative = f"{digest[:2]}/{digest}{suffix}"
        path = self.root / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
        return StoredFile(path=path, relative_path=relative, sha256=digest)

    def path_of(self, relative_path: str) -> Path:
        """The absolute path of a stored file."""
        return self.root / relative_path


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a power cut after the rename keeps the new name)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ImageRecord:
    """One row of ``images``."""

    id: int
    job_id: int
    idx: int
    seed: int
    params_json: str
    path: str
    sha256: str
    width: int
    height: int
    parent_image_id: int | None
    requester_id: int
    guild_id: int | None
    created_at: float
    #: What the safety policy decided when the image was posted: post, spoiler or withhold (None: not known).
    safety: str | None = None
    #: The safety checker flagged it: never shown outside its own (spoilered or withheld) result.
    flagged: bool = False
    #: When its result message was deleted (❌ or 🗑️); None while it stands.
    deleted_at: float | None = None

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> ImageRecord:
        """Build a record from a row selected with ``SELECT *``."""
        values = {key: row[key] for key in row.keys()}  # noqa: SIM118
        values["flagged"] = bool(values.get("flagged", 0))
        return cls(**values)


@dataclass(frozen=True)
class NewImage:
    """An image the worker made, ready to be recorded."""

    job_id: int
    idx: int
    seed: int
    params_json: str
    file: StoredFile
    width: int
    height: int
    parent_image_id: int | None
    requester_id: int
    guild_id: int | None
    #: The safety checker flagged it.
    flagged: bool = False


class ImageRepository:
    """Reads and writes ``images`` rows."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def add_many(self, images: list[NewImage]) -> list[ImageRecord]:
        """Record a job's images in one transaction; a re-run of the same job replaces its rows."""
        now = time.time()
        ids: list[int] = []
        async with transaction(self._db):
            for image in images:
                cursor = await self._db.execute(
                    """INSERT INTO images (job_id, idx, seed, params_json, path, sha256, width, height,
                                           parent_image_id, requester_id, guild_id, created_at, flagged)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (job_id, idx) DO UPDATE SET
                           seed = excluded.seed, params_json = excluded.params_json,
                           path = excluded.path, sha256 = excluded.sha256,
                           width = excluded.width, height = excluded.height, flagged = excluded.flagged
                       RETURNING id""",
                    (
                        image.job_id,
                        image.idx,
                        image.seed,
                        image.params_json,
                        image.file.relative_path,
                        image.file.sha256,
                        image.width,
                        image.height,
                        image.parent_image_id,
                        image.requester_id,
                        image.guild_id,
                        now,
                        int(image.flagged),
                    ),
                )
                row = await cursor.fetchone()
                assert row is not None
                ids.append(int(row[0]))
        return [await self.get(image_id) for image_id in ids]

    async def record_safety(self, image_ids: Sequence[int], decisions: Sequence[str]) -> None:
        """Remember what the safety policy decided for each image (``post``, ``spoiler`` or ``withhold``)."""
        async with transaction(self._db):
            await self._db.executemany(
                "UPDATE images SET safety = ? WHERE id = ?",
                [(decision, image_id) for image_id, decision in zip(image_ids, decisions, strict=True)],
            )

    async def mark_job_deleted(self, job_id: int) -> None:
        """The job's result message was deleted: its images are no longer shown anywhere."""
        await write(
            self._db, "UPDATE images SET deleted_at = ? WHERE job_id = ? AND deleted_at IS NULL", (time.time(), job_id)
        )

    async def get(self, image_id: int) -> ImageRecord:
        """The image with this id (:class:`NotFound` if there is none)."""
        async with self._db.execute("SELECT * FROM images WHERE id = ?", (image_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"There is no image #{image_id}.")
        return ImageRecord.from_row(row)

    async def for_job(self, job_id: int) -> list[ImageRecord]:
        """A job's images in order."""
        async with self._db.execute("SELECT * FROM images WHERE job_id = ? ORDER BY idx", (job_id,)) as cur:
            rows = await cur.fetchall()
        return [ImageRecord.from_row(row) for row in rows]

    async def history(
        self, requester_id: int, *, guild_id: int | None, before_id: int | None = None, limit: int = 10
    ) -> list[ImageRecord]:
        """A member's images made in one server (None: in DMs), newest first, a page at a time.

        Images the safety checker flagged and images whose result was deleted are left out.
        """
        async with self._db.execute(
            """SELECT * FROM images
               WHERE requester_id = ? AND guild_id IS ? AND id < ? AND flagged = 0 AND deleted_at IS NULL
               ORDER BY id DESC LIMIT ?""",
            (requester_id, guild_id, before_id if before_id is not None else 2**63 - 1, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [ImageRecord.from_row(row) for row in rows]

    async def mark_deleted(self, image_ids: list[int]) -> None:
        """Their result message was deleted: keep them out of /history and comics from now on."""
        if not image_ids:
            return
        marks = ", ".join("?" for _ in image_ids)
        async with transaction(self._db):
            await self._db.execute(
                f"UPDATE images SET deleted_at = ? WHERE id IN ({marks}) AND deleted_at IS NULL",
                (time.time(), *image_ids),
            )
