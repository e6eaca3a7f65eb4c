"""Retention and maintenance: expired uploads, files no row references, interaction tokens, VACUUM.

Uploads (the source images and masks of /imagine) are referenced only by their jobs'
``request_json``; generated images by ``images.path``. With ``[storage] retention_days`` above 0,
an upload whose jobs all finished longer ago than that is deleted (a job that still needs it is
never touched). A file no row references at all (left by a crash, or an upload refused after it
was stored) is deleted once it is older than :data:`ORPHAN_GRACE_S`, so a file being written for
a job whose row is not committed yet is never taken. These functions block: run them in a thread.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: A file no row references is left alone this long (its row may be on its way).
ORPHAN_GRACE_S = 3600.0
#: Discord accepts an interaction token for 15 minutes; after that it is only a secret to lose.
INTERACTION_TOKEN_TTL_S = 15 * 60.0
_DAY_S = 86400.0


@dataclass
class VacuumReport:
    """What a maintenance run removed."""

    expired_uploads: int = 0
    orphan_files: int = 0
    file_bytes: int = 0
    tokens_forgotten: int = 0
    database_bytes_before: int = 0
    database_bytes_after: int = 0
    deleted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the operator."""
        freed_db = max(self.database_bytes_before - self.database_bytes_after, 0)
        return (
            f"vacuum: deleted {self.expired_uploads} expired upload(s) and {self.orphan_files} unreferenced file(s) "
            f"({self.file_bytes / 1e6:.1f} MB); forgot {self.tokens_forgotten} expired interaction token(s); "
            f"database {self.database_bytes_before / 1e6:.1f} MB -> {self.database_bytes_after / 1e6:.1f} MB "
            f"({freed_db / 1e6:.1f} MB freed)"
        )


def forget_expired_tokens(con: sqlite3.Connection, now: float | None = None) -> int:
    """Clear interaction tokens older than Discord's 15 minutes; how many were cleared."""
    cutoff = (time.time() if now is None else now) - INTERACTION_TOKEN_TTL_S
    cursor = con.execute(
        "UPDATE jobs SET interaction_token = NULL WHERE interaction_token IS NOT NULL AND interaction_at < ?",
        (cutoff,),
    )
    return cursor.rowcount


def _uploads(request_json: str) -> list[str]:
    try:
        request = json.loads(request_json)
    except ValueError:
        return []
    if not isinstance(request, dict):
        return []
    return [str(request[key]) for key in ("init_image", "mask_image") if isinstance(request.get(key), str)]


def _database_bytes(database: Path) -> int:
    return sum(p.stat().st_size for p in (database, Path(f"{database}-wal")) if p.exists())


def vacuum(database: Path, images_dir: Path, *, retention_days: float, now: float | None = None) -> VacuumReport:
    """Delete expired uploads and unreferenced files, forget expired tokens, VACUUM the database."""
    now = time.time() if now is None else now
    report = VacuumReport(database_bytes_before=_database_bytes(database))
    con = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout = 30000")
        keep = {row[0] for row in con.execute("SELECT path FROM images")}
        expired: set[str] = set()
        cutoff = now - retention_days * _DAY_S
        for request_json, status, created_at in con.execute("SELECT request_json, status, created_at FROM jobs"):
            paths = _uploads(request_json)
            finished = status not in ("queued", "running")
            if retention_days > 0 and finished and created_at < cutoff:
                expired.update(paths)
            else:
                keep.update(paths)
        root = images_dir.resolve()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            if relative in keep:
                continue
            stat = path.stat()
            if relative in expired:
                report.expired_uploads += 1
            elif now - stat.st_mtime >= ORPHAN_GRACE_S:
                report.orphan_files += 1
            else:
                continue
            path.unlink()
            report.file_bytes += stat.st_size
            report.deleted.append(relative)
        report.tokens_forgotten = forget_expired_tokens(con, now)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    for folder in sorted((p for p in images_dir.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            os.rmdir(folder)
    report.database_bytes_after = _database_bytes(database)
    log.info("%s", report.summary())
    return report
