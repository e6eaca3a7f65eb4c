"""SQLite storage (aiosqlite): schema and migrations, repositories, and image files on disk.

Nothing here imports discord or torch. A method given the key of a row that does not exist
(an id, a message id, a panel position, a character name) raises :class:`NotFound`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from storage.characters import CharacterRepository
from storage.comics import ComicRepository
from storage.database import connect
from storage.errors import NotFound
from storage.guild_settings import GuildSettingsRepository
from storage.images import ImageRepository, ImageStore
from storage.jobs import JobRepository
from storage.messages import MessageRepository
from storage.stats import StatsRepository

__all__ = ["NotFound", "Storage"]


@dataclass
class Storage:
    """The open database and image folder, with one repository per table group."""

    db: aiosqlite.Connection
    files: ImageStore
    jobs: JobRepository
    images: ImageRepository
    messages: MessageRepository
    comics: ComicRepository
    guild_settings: GuildSettingsRepository
    stats: StatsRepository
    characters: CharacterRepository

    @classmethod
    async def open(cls, database: Path | str, images_dir: Path | str) -> Storage:
        """Open the database (migrating it) and the image folder."""
        db = await connect(database)
        await asyncio.to_thread(Path(images_dir).mkdir, parents=True, exist_ok=True)
        return cls(
            db=db,
            files=ImageStore(Path(images_dir)),
            jobs=JobRepository(db),
            images=ImageRepository(db),
            messages=MessageRepository(db),
            comics=ComicRepository(db),
            guild_settings=GuildSettingsRepository(db),
            stats=StatsRepository(db),
            characters=CharacterRepository(db),
        )

    async def close(self) -> None:
        """Close the database; queued writes are finished first."""
        await self.db.close()

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
