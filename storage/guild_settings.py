"""Per-server settings rows (``server_settings``): one row per server and key, the value as JSON.

A key with no row means the config file's value applies; what a value may be is checked before
it is written (``rules.server_settings``), so this module only stores and reads.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiosqlite

from storage.database import write


class GuildSettingsRepository:
    """Reads and writes the ``server_settings`` rows."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def all(self) -> dict[int, dict[str, Any]]:
        """Every server's stored values: guild id to (key to value)."""
        found: dict[int, dict[str, Any]] = {}
        async with self._db.execute("SELECT guild_id, key, value_json FROM server_settings") as cursor:
            async for row in cursor:
                found.setdefault(int(row[0]), {})[str(row[1])] = json.loads(row[2])
        return found

    async def get(self, guild_id: int) -> dict[str, Any]:
        """One server's stored values, by key (empty: it uses the config for everything)."""
        async with self._db.execute(
            "SELECT key, value_json FROM server_settings WHERE guild_id = ?", (guild_id,)
        ) as cursor:
            return {str(row[0]): json.loads(row[1]) async for row in cursor}

    async def set(self, guild_id: int, key: str, value: Any, *, updated_by: int | None = None) -> None:
        """Store one value (replacing the key's old one)."""
        await write(
            self._db,
            "INSERT INTO server_settings (guild_id, key, value_json, updated_by, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (guild_id, key) DO UPDATE SET value_json = excluded.value_json, "
            "updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (guild_id, key, json.dumps(value, sort_keys=True), updated_by, time.time()),
        )

    async def reset(self, guild_id: int, key: str | None = None) -> int:
        """Forget one key (None: every key) of a server, so the config's value applies; how many rows went."""
        if key is None:
            rows = await write(self._db, "DELETE FROM server_settings WHERE guild_id = ? RETURNING key", (guild_id,))
        else:
            rows = await write(
                self._db, "DELETE FROM server_settings WHERE guild_id = ? AND key = ? RETURNING key", (guild_id, key)
            )
        return len(rows)
