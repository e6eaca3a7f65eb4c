"""Suspicions about storage (defect 14), confirmed or ruled out on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import Storage
from storage.database import transaction, write
from tests.reliability import record_reliability


async def test_failing_commit_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A COMMIT that fails (a deferred foreign key) rolls back: the connection takes the next write."""
    storage = await Storage.open(tmp_path / "bot.sqlite3", tmp_path / "images")
    try:
        db = storage.db
        await db.execute("PRAGMA defer_foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            async with transaction(db) as tx:
                await db.execute("PRAGMA defer_foreign_keys = ON")
                await tx.execute(
                    "INSERT INTO messages (message_id, channel_id, job_id, kind, created_at) "
                    "VALUES (1, 1, 999, 'status', 0)"
                )
        assert not db.in_transaction
        await write(
            db, "INSERT INTO server_settings (guild_id, key, value_json, updated_at) VALUES (5, 'k', '1', 0)"
        )
        assert not db.in_transaction
    finally:
        await storage.close()
    con = sqlite3.connect(tmp_path / "bot.sqlite3")
    try:
        assert con.execute("SELECT guild_id FROM server_settings").fetchall() == [(5,)]
        assert con.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)
    finally:
        con.close()
    record_reliability("defect", "14. failing COMMIT leaves the transaction open", 1, "confirmed; rolled back")
