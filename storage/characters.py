"""A comic character's reference pictures and trained LoRA (``character_references``, ``character_loras``).

References are files in the content-addressed image store (the same picture added twice is one
reference); a character has at most a configured number of them, in the order they were added.
A trained LoRA is a file in the bot's data folder, recorded with the rare token it was trained
under; the weight panels apply it at is a column of the character.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from storage.database import transaction, write
from storage.errors import NotFound


class TooManyReferences(ValueError):
    """The character already has the most reference pictures allowed; ``str()`` says so."""


@dataclass(frozen=True)
class ReferenceRecord:
    """One reference picture of a character."""

    id: int
    character_id: int
    file: str
    sha256: str
    position: int


@dataclass(frozen=True)
class CharacterLora:
    """A character's trained LoRA."""

    character_id: int
    path: str
    token: str
    steps: int
    job_id: int | None
    trained_at: float


@dataclass(frozen=True)
class TrainedCharacter:
    """A character of a comic with its trained LoRA and weight (what a panel naming it applies)."""

    character_id: int
    name: str
    lora: CharacterLora
    weight: float


class CharacterRepository:
    """Reference pictures, trained LoRAs and LoRA weights of comic characters."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def add_reference(self, character_id: int, file: str, sha256: str, *, max_references: int) -> tuple[
        ReferenceRecord, bool
    ]:
        """Add a picture (by its stored file) to a character; returns it and whether it is new.

        The same picture again returns the existing reference; a new one past ``max_references``
        raises :class:`TooManyReferences`.
        """
        async with transaction(self._db):
            rows = list(await self._db.execute_fetchall(
                "SELECT * FROM character_references WHERE character_id = ? ORDER BY position", (character_id,)
            ))
            for row in rows:
                if row["sha256"] == sha256:
                    return _reference(row), False
            if len(rows) >= max_references:
                raise TooManyReferences(
                    f"This character already has {len(rows)} reference pictures (the most is {max_references})."
                )
            position = (rows[-1]["position"] + 1) if rows else 1
            inserted = await self._db.execute_fetchall(
                "INSERT INTO character_references (character_id, file, sha256, position, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING *",
                (character_id, file, sha256, position, time.time()),
            )
            return _reference(next(iter(inserted))), True

    async def references(self, character_id: int) -> list[ReferenceRecord]:
        """A character's reference pictures in the order they were added."""
        rows = await self._db.execute_fetchall(
            "SELECT * FROM character_references WHERE character_id = ? ORDER BY position", (character_id,)
        )
        return [_reference(row) for row in rows]

    async def references_of(self, character_ids: Sequence[int]) -> dict[int, list[ReferenceRecord]]:
        """The reference pictures of several characters (each in order); characters without any are left out."""
        if not character_ids:
            return {}
        marks = ",".join("?" * len(character_ids))
        rows = await self._db.execute_fetchall(
            f"SELECT * FROM character_references WHERE character_id IN ({marks}) ORDER BY character_id, position",
            list(character_ids),
        )
        found: dict[int, list[ReferenceRecord]] = {}
        for row in rows:
            found.setdefault(row["character_id"], []).append(_reference(row))
        return found

    async def set_lora(self, character_id: int, *, path: str, token: str, steps: int, job_id: int | None) -> None:
        """Record (or replace) the character's trained LoRA."""
        await write(
            self._db,
            "INSERT INTO character_loras (character_id, path, token, steps, job_id, trained_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (character_id) DO UPDATE SET path = excluded.path, "
            "token = excluded.token, steps = excluded.steps, job_id = excluded.job_id, "
            "trained_at = excluded.trained_at",
            (character_id, path, token, steps, job_id, time.time()),
        )

    async def lora(self, character_id: int) -> CharacterLora | None:
        """The character's trained LoRA, if it has one."""
        rows = list(await self._db.execute_fetchall(
            "SELECT * FROM character_loras WHERE character_id = ?", (character_id,)
        ))
        return _lora(rows[0]) if rows else None

    async def trained(self, comic_id: int) -> list[TrainedCharacter]:
        """The comic's characters that have a trained LoRA, with their weights, in the order they were added."""
        rows = await self._db.execute_fetchall(
            "SELECT c.id AS cid, c.name, c.lora_weight, l.* FROM comic_characters c "
            "JOIN character_loras l ON l.character_id = c.id WHERE c.comic_id = ? ORDER BY c.id",
            (comic_id,),
        )
        return [TrainedCharacter(row["cid"], row["name"], _lora(row), float(row["lora_weight"])) for row in rows]

    async def weight(self, character_id: int) -> float:
        """The weight the character's LoRA is applied at."""
        rows = list(await self._db.execute_fetchall(
            "SELECT lora_weight FROM comic_characters WHERE id = ?", (character_id,)
        ))
        if not rows:
            raise NotFound(f"no character {character_id}")
        return float(rows[0]["lora_weight"])

    async def set_weight(self, character_id: int, weight: float) -> None:
        """Set the weight the character's LoRA is applied at."""
        changed = await write(
            self._db, "UPDATE comic_characters SET lora_weight = ? WHERE id = ? RETURNING id", (weight, character_id)
        )
        if not changed:
            raise NotFound(f"no character {character_id}")


def _reference(row: aiosqlite.Row) -> ReferenceRecord:
    return ReferenceRecord(row["id"], row["character_id"], row["file"], row["sha256"], row["position"])


def _lora(row: aiosqlite.Row) -> CharacterLora:
    return CharacterLora(row["character_id"], row["path"], row["token"], row["steps"], row["job_id"],
                         row["trained_at"])
