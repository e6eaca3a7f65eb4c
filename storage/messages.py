"""Discord messages the bot posted, linked to their job and images, so reactions and buttons on
them can be looked up after a restart. Holds only ids: no Discord types here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiosqlite

from storage.database import transaction
from storage.errors import NotFound

MessageKind = Literal["status", "result"]


@dataclass(frozen=True)
class PostedMessage:
    """A message the bot posted, with the images it shows in order."""

    message_id: int
    channel_id: int
    guild_id: int | None
    job_id: int
    kind: MessageKind
    image_ids: tuple[int, ...]


class MessageRepository:
    """Reads and writes ``messages`` and ``message_images``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def add(
        self,
        *,
        message_id: int,
        channel_id: int,
        guild_id: int | None,
        job_id: int,
        kind: MessageKind,
        image_ids: Sequence[int] = (),
    ) -> None:
        """Record a posted message (idempotent on message id)."""
        async with transaction(self._db):
            await self._db.execute(
                """INSERT OR REPLACE INTO messages (message_id, channel_id, guild_id, job_id, kind, created_at)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (message_id, channel_id, guild_id, job_id, kind, time.time()),
            )
            await self._db.executemany(
                "INSERT OR REPLACE INTO message_images (message_id, position, image_id) VALUES (?, ?, ?)",
                [(message_id, pos, image_id) for pos, image_id in enumerate(image_ids)],
            )

    async def add_status(self, *, message_id: int, channel_id: int, guild_id: int | None, job_id: int) -> None:
        """Record a job's status message, on the job's row too, in one transaction (:class:`NotFound`
        and nothing written if the job has no row)."""
        async with transaction(self._db):
            async with self._db.execute(
                "UPDATE jobs SET status_message_id = ? WHERE id = ? RETURNING id", (message_id, job_id)
            ) as cursor:
                if await cursor.fetchone() is None:
                    raise NotFound(f"There is no job #{job_id}.")
            await self._db.execute(
                """INSERT OR REPLACE INTO messages (message_id, channel_id, guild_id, job_id, kind, created_at)
                   VALUES (?, ?, ?, ?, 'status', ?)""",
                (message_id, channel_id, guild_id, job_id, time.time()),
            )

    async def get(self, message_id: int) -> PostedMessage:
        """The posted message with this id (:class:`NotFound` if the bot did not post it)."""
        async with self._db.execute("SELECT * FROM messages WHERE message_id = ?", (message_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"The bot has no record of message {message_id}.")
        async with self._db.execute(
            "SELECT image_id FROM message_images WHERE message_id = ? ORDER BY position", (message_id,)
        ) as cur:
            images = tuple(int(r[0]) for r in await cur.fetchall())
        return PostedMessage(
            message_id=row["message_id"],
            channel_id=row["channel_id"],
            guild_id=row["guild_id"],
            job_id=row["job_id"],
            kind=row["kind"],
            image_ids=images,
        )
