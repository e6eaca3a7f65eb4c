"""Comics in SQLite: comics, their ordered panels, characters, collaborators, and each member's active comic.

Panel positions are dense (1..n) and unique per comic. Every read-modify-write (adding a panel,
moving or removing one, editing one and queueing its new job) runs inside one
:func:`~storage.database.transaction`, which takes the connection's write lock and ``BEGIN
IMMEDIATE``: two collaborators editing the same comic at once are serialised, so no update is
lost and positions never gap or collide, even across two connections to the same file.

A panel that needs drawing gets its job row in the same transaction as the panel change, so a
crash can never leave a panel waiting for a job that was never recorded (the job runner re-queues
recorded jobs at start). How a panel's seed and request are built is the caller's business: the
repository hands the new panel's id to a :data:`PanelPlanner` inside the transaction.
Nothing here imports discord or torch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import aiosqlite

from storage.database import transaction
from storage.errors import NotFound
from storage.jobs import NewJob, insert_job

ComicRole = Literal["owner", "collaborator", "viewer"]
#: Panel columns that :meth:`ComicRepository.update_panel` may change.
EDITABLE_PANEL_FIELDS: tuple[str, ...] = ("prompt", "caption", "dialogue", "speaker")


class ComicStorageError(Exception):
    """Base of the errors a comic read or write can raise; ``str()`` is a short message for the user."""


class ComicNotFound(ComicStorageError, NotFound):
    """No comic with this id."""


class PanelNotFound(ComicStorageError, NotFound):
    """No panel at this position."""


class CharacterNotFound(ComicStorageError, NotFound):
    """The comic has no character with this name."""


class ComicFull(ComicStorageError):
    """A cap (panels or characters per comic) was reached; ``limit`` is the cap."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class ComicRecord:
    """One row of ``comics``."""

    id: int
    owner_id: int
    guild_id: int | None
    channel_id: int
    title: str
    style: str | None
    layout: str
    seed: int
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> ComicRecord:
        """Build a record from a ``SELECT c.*`` row (extra columns are ignored)."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ComicSummary:
    """A comic as listed to a member: the comic, how many panels it has, and the member's role in it."""

    comic: ComicRecord
    panel_count: int
    role: ComicRole


@dataclass(frozen=True)
class PanelRecord:
    """One row of ``comic_panels``, with the status of its latest job (None when it has no job)."""

    id: int
    comic_id: int
    position: int
    prompt: str
    caption: str | None
    dialogue: str | None
    speaker: str | None
    seed: int
    params_json: str
    job_id: int | None
    image_id: int | None
    created_at: float
    job_status: str | None = None

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> PanelRecord:
        """Build a record from a row of :data:`_PANEL_SELECT`."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def drawing(self) -> bool:
        """Whether the panel's latest job is still queued or running."""
        return self.job_status in ("queued", "running")


@dataclass(frozen=True)
class CharacterRecord:
    """One row of ``comic_characters``."""

    id: int
    comic_id: int
    name: str
    description: str
    #: How strongly the character's reference pictures weigh through IP-Adapter (None: the default).
    ip_adapter_scale: float | None = None


@dataclass(frozen=True)
class NewPanel:
    """What a member gives for a new panel."""

    prompt: str
    caption: str | None = None
    dialogue: str | None = None
    speaker: str | None = None
    #: An existing image (the 📖 reaction): the panel is drawn already and needs no job.
    image_id: int | None = None


@dataclass(frozen=True)
class PanelPlan:
    """How a panel is drawn: its seed, its full parameters, and the job to queue (None: none)."""

    seed: int
    params_json: str
    job: NewJob | None = None


#: Called inside the transaction with the panel as it will be stored (its id known, its seed
#: and params not yet decided); returns how to draw it.
PanelPlanner = Callable[[PanelRecord], PanelPlan]


@dataclass(frozen=True)
class BoardPlan:
    """How a storyboard is drawn: each panel's seed and parameters, and the one job that draws them all."""

    panels: Sequence[PanelPlan]
    job: NewJob


#: Called inside the transaction with the storyboard's panels as they will be stored (ids known).
BoardPlanner = Callable[[Sequence[PanelRecord]], BoardPlan]
#: In a storyboard panel's parameters (``extra``): which image of the storyboard's job is the panel's.
BOARD_INDEX_KEY = "board_index"


@dataclass(frozen=True)
class PanelChange:
    """The result of a panel write: the panel before and after, and the job queued for it (if any)."""

    before: PanelRecord | None
    after: PanelRecord
    job_id: int | None


#: SQL for a panel's ``board_index`` (0 for a panel that is not part of a storyboard).
_BOARD_SQL = f"COALESCE(json_extract(comic_panels.params_json, '$.extra.{BOARD_INDEX_KEY}'), 0)"


def _board_index(params_json: str) -> int:
    """Which image of its job is a panel's picture: its ``board_index`` in a storyboard, else the first."""
    try:
        extra = json.loads(params_json).get("extra") or {}
    except (ValueError, AttributeError):
        return 0
    index = extra.get(BOARD_INDEX_KEY, 0) if isinstance(extra, dict) else 0
    return index if isinstance(index, int) and index >= 0 else 0


_PANEL_SELECT = """
    SELECT p.*, j.status AS job_status
    FROM comic_panels AS p LEFT JOIN jobs AS j ON j.id = p.job_id
"""


class ComicRepository:
    """Reads and writes the comic tables."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    # -- comics ----------------------------------------------------------------------------------

    async def create(
        self,
        *,
        owner_id: int,
        guild_id: int | None,
        channel_id: int,
        title: str,
        style: str | None,
        layout: str,
        seed: int,
    ) -> ComicRecord:
        """Create a comic and make it the owner's active comic in its guild."""
        now = time.time()
        async with transaction(self._db):
            cursor = await self._db.execute(
                """INSERT INTO comics (owner_id, guild_id, channel_id, title, style, layout, seed,
                                       created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (owner_id, guild_id, channel_id, title, style, layout, seed, now, now),
            )
            comic_id = cursor.lastrowid
            assert comic_id is not None
            await self._set_active(owner_id, guild_id, comic_id)
        return await self.get(comic_id)

    async def get(self, comic_id: int) -> ComicRecord:
        """The comic with this id (:class:`ComicNotFound` if there is none)."""
        async with self._db.execute("SELECT * FROM comics WHERE id = ?", (comic_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise ComicNotFound(f"There is no comic #{comic_id}.")
        return ComicRecord.from_row(row)

    async def visible(self, guild_id: int | None, user_id: int, *, limit: int = 15) -> list[ComicSummary]:
        """Comics of a guild as ``user_id`` sees them: own ones first, then shared ones, then the rest.

        Within each group the most recently changed come first.
        """
        async with self._db.execute(
            """SELECT c.*,
                      (SELECT COUNT(*) FROM comic_panels AS p WHERE p.comic_id = c.id) AS panel_count,
                      CASE WHEN c.owner_id = :user THEN 0
                           WHEN EXISTS (SELECT 1 FROM comic_collaborators AS k
                                        WHERE k.comic_id = c.id AND k.user_id = :user) THEN 1
                           ELSE 2 END AS rank
               FROM comics AS c
               WHERE c.guild_id IS :guild
               ORDER BY rank, c.updated_at DESC, c.id DESC
               LIMIT :limit""",
            {"user": user_id, "guild": guild_id, "limit": limit},
        ) as cursor:
            rows = await cursor.fetchall()
        roles: tuple[ComicRole, ...] = ("owner", "collaborator", "viewer")
        return [ComicSummary(ComicRecord.from_row(row), int(row["panel_count"]), roles[row["rank"]]) for row in rows]

    async def role(self, comic: ComicRecord, user_id: int) -> ComicRole:
        """What ``user_id`` may do with ``comic``: the owner and collaborators edit, anyone views."""
        if comic.owner_id == user_id:
            return "owner"
        async with self._db.execute(
            "SELECT 1 FROM comic_collaborators WHERE comic_id = ? AND user_id = ?", (comic.id, user_id)
        ) as cursor:
            return "collaborator" if await cursor.fetchone() else "viewer"

    # -- the active comic --------------------------------------------------------------------------

    async def set_active(self, user_id: int, guild_id: int | None, comic_id: int) -> None:
        """Make ``comic_id`` the member's active comic in this guild."""
        async with transaction(self._db):
            await self._set_active(user_id, guild_id, comic_id)

    async def set_active_if_none(self, user_id: int, guild_id: int | None, comic_id: int) -> bool:
        """Make ``comic_id`` the member's active comic unless they have one; True if it was set."""
        async with transaction(self._db):
            cursor = await self._db.execute(
                "INSERT OR IGNORE INTO active_comics (user_id, guild_id, comic_id) VALUES (?, ?, ?)",
                (user_id, guild_id or 0, comic_id),
            )
            return cursor.rowcount > 0

    async def _set_active(self, user_id: int, guild_id: int | None, comic_id: int) -> None:
        await self._db.execute(
            """INSERT INTO active_comics (user_id, guild_id, comic_id) VALUES (?, ?, ?)
               ON CONFLICT (user_id, guild_id) DO UPDATE SET comic_id = excluded.comic_id""",
            (user_id, guild_id or 0, comic_id),
        )

    async def active(self, user_id: int, guild_id: int | None) -> ComicRecord | None:
        """The member's active comic in this guild, or None."""
        async with self._db.execute(
            """SELECT c.* FROM active_comics AS a JOIN comics AS c ON c.id = a.comic_id
               WHERE a.user_id = ? AND a.guild_id = ?""",
            (user_id, guild_id or 0),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else ComicRecord.from_row(row)

    # -- collaborators -----------------------------------------------------------------------------

    async def add_collaborator(self, comic_id: int, user_id: int) -> bool:
        """Let ``user_id`` add and edit panels; False if they already could."""
        async with transaction(self._db):
            cursor = await self._db.execute(
                "INSERT OR IGNORE INTO comic_collaborators (comic_id, user_id) VALUES (?, ?)", (comic_id, user_id)
            )
            added = cursor.rowcount > 0
            if added:
                await self._touch(comic_id)
        return added

    async def remove_collaborator(self, comic_id: int, user_id: int) -> bool:
        """Take editing back from ``user_id``; False if they were not a collaborator."""
        async with transaction(self._db):
            cursor = await self._db.execute(
                "DELETE FROM comic_collaborators WHERE comic_id = ? AND user_id = ?", (comic_id, user_id)
            )
            removed = cursor.rowcount > 0
            if removed:
                await self._touch(comic_id)
        return removed

    async def collaborators(self, comic_id: int) -> list[int]:
        """User ids of the comic's collaborators, in the order they were added."""
        async with self._db.execute(
            "SELECT user_id FROM comic_collaborators WHERE comic_id = ? ORDER BY rowid", (comic_id,)
        ) as cursor:
            return [int(row[0]) for row in await cursor.fetchall()]

    # -- characters --------------------------------------------------------------------------------

    async def set_character(
        self, comic_id: int, name: str, description: str, *, max_characters: int
    ) -> tuple[CharacterRecord, bool]:
        """Add a character, or change the description of one with this name (any case).

        Returns the character and whether it is new; raises :class:`ComicFull` when adding would
        pass ``max_characters``.
        """
        async with transaction(self._db):
            async with self._db.execute(
                "SELECT id FROM comic_characters WHERE comic_id = ? AND name = ?", (comic_id, name)
            ) as cursor:
                existing = await cursor.fetchone()
            if existing is None:
                async with self._db.execute(
                    "SELECT COUNT(*) FROM comic_characters WHERE comic_id = ?", (comic_id,)
                ) as cursor:
                    row = await cursor.fetchone()
                count = int(row[0]) if row else 0
                if count >= max_characters:
                    raise ComicFull(
                        f"This comic already has {count} characters (the limit is {max_characters}); "
                        "remove one first.",
                        limit=max_characters,
                    )
                cursor = await self._db.execute(
                    "INSERT INTO comic_characters (comic_id, name, description) VALUES (?, ?, ?)",
                    (comic_id, name, description),
                )
                character_id = cursor.lastrowid
            else:
                character_id = existing[0]
                await self._db.execute(
                    "UPDATE comic_characters SET name = ?, description = ? WHERE id = ?",
                    (name, description, character_id),
                )
            await self._touch(comic_id)
        return CharacterRecord(int(character_id or 0), comic_id, name, description), existing is None

    async def characters(self, comic_id: int) -> list[CharacterRecord]:
        """The comic's characters in the order they were added."""
        async with self._db.execute(
            "SELECT * FROM comic_characters WHERE comic_id = ? ORDER BY id", (comic_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            CharacterRecord(row["id"], row["comic_id"], row["name"], row["description"], row["ip_adapter_scale"])
            for row in rows
        ]

    async def set_character_scale(self, comic_id: int, name: str, scale: float | None) -> CharacterRecord:
        """Set (None: reset) the character's IP-Adapter scale; :class:`CharacterNotFound` if there is none."""
        async with transaction(self._db):
            async with self._db.execute(
                "UPDATE comic_characters SET ip_adapter_scale = ? WHERE comic_id = ? AND name = ? RETURNING *",
                (scale, comic_id, name),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise CharacterNotFound(f"This comic has no character called {name}.")
            await self._touch(comic_id)
        return CharacterRecord(row["id"], row["comic_id"], row["name"], row["description"], row["ip_adapter_scale"])

    async def remove_character(self, comic_id: int, name: str) -> CharacterRecord:
        """Remove the character with this name (any case) and return it (:class:`CharacterNotFound` if none)."""
        async with transaction(self._db):
            async with self._db.execute(
                "DELETE FROM comic_characters WHERE comic_id = ? AND name = ? RETURNING *", (comic_id, name)
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise CharacterNotFound(f"This comic has no character called {name}.")
            await self._touch(comic_id)
        return CharacterRecord(row["id"], row["comic_id"], row["name"], row["description"])

    # -- panels ------------------------------------------------------------------------------------

    async def panels(self, comic_id: int) -> list[PanelRecord]:
        """The comic's panels in reading order."""
        async with self._db.execute(
            _PANEL_SELECT + " WHERE p.comic_id = ? ORDER BY p.position", (comic_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [PanelRecord.from_row(row) for row in rows]

    async def panel_count(self, comic_id: int) -> int:
        """How many panels the comic has."""
        async with self._db.execute("SELECT COUNT(*) FROM comic_panels WHERE comic_id = ?", (comic_id,)) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def panel_at(self, comic_id: int, position: int) -> PanelRecord:
        """The panel at ``position`` (1-based); :class:`PanelNotFound` if there is none."""
        async with self._db.execute(
            _PANEL_SELECT + " WHERE p.comic_id = ? AND p.position = ?", (comic_id, position)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise PanelNotFound(self._no_panel_text(position, await self.panel_count(comic_id)))
        return PanelRecord.from_row(row)

    async def add_panel(
        self, comic_id: int, panel: NewPanel, plan: PanelPlanner, *, max_panels: int
    ) -> PanelChange:
        """Append a panel, and the job that draws it, in one transaction.

        ``plan`` gets the stored panel (id and position known) and returns its seed, parameters
        and job. Raises :class:`ComicFull` when the comic already has ``max_panels`` panels.
        """
        now = time.time()
        async with transaction(self._db):
            await self._require_comic(comic_id)
            count = await self.panel_count(comic_id)
            if count >= max_panels:
                raise ComicFull(
                    f"This comic already has {count} panels (the limit is {max_panels}); "
                    "remove one or start a new comic.",
                    limit=max_panels,
                )
            cursor = await self._db.execute(
                """INSERT INTO comic_panels (comic_id, position, prompt, caption, dialogue, speaker, seed,
                                             params_json, image_id, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, 0, '{}', ?, ?)""",
                (comic_id, count + 1, panel.prompt, panel.caption, panel.dialogue, panel.speaker,
                 panel.image_id, now),
            )
            panel_id = cursor.lastrowid
            assert panel_id is not None
            stored = await self._panel_by_id(panel_id)
            job_id = await self._apply_plan(stored, plan(stored))
            await self._touch(comic_id)
            after = await self._panel_by_id(panel_id)
        return PanelChange(None, after, job_id)

    async def add_storyboard(
        self, comic_id: int, panels: Sequence[NewPanel], plan: BoardPlanner, *, max_panels: int
    ) -> tuple[list[PanelRecord], int]:
        """Append several panels drawn by one job (a storyboard), all in one transaction.

        ``plan`` gets the stored panels and returns each one's seed and parameters (whose
        ``extra.board_index`` says which image of the job is its picture) and the job. Returns the
        panels and the job's id; raises :class:`ComicFull` when they would pass ``max_panels``.
        """
        now = time.time()
        async with transaction(self._db):
            await self._require_comic(comic_id)
            count = await self.panel_count(comic_id)
            if count + len(panels) > max_panels:
                raise ComicFull(
                    f"This comic has {count} panels and the limit is {max_panels}, so {len(panels)} more do not fit; "
                    "remove some or draw fewer.",
                    limit=max_panels,
                )
            ids: list[int] = []
            for offset, new in enumerate(panels, start=1):
                cursor = await self._db.execute(
                    """INSERT INTO comic_panels (comic_id, position, prompt, caption, dialogue, speaker, seed,
                                                 params_json, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, 0, '{}', ?)""",
                    (comic_id, count + offset, new.prompt, new.caption, new.dialogue, new.speaker, now),
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
            stored = [await self._panel_by_id(panel_id) for panel_id in ids]
            board = plan(stored)
            job_id = await insert_job(self._db, board.job)
            for panel, panel_plan in zip(stored, board.panels, strict=True):
                await self._db.execute(
                    "UPDATE comic_panels SET seed = ?, params_json = ?, job_id = ? WHERE id = ?",
                    (panel_plan.seed, panel_plan.params_json, job_id, panel.id),
                )
            await self._touch(comic_id)
            after = [await self._panel_by_id(panel_id) for panel_id in ids]
        return after, job_id

    async def panel_by_id(self, panel_id: int) -> PanelRecord | None:
        """The panel with this id, or None (removed)."""
        async with self._db.execute(_PANEL_SELECT + " WHERE p.id = ?", (panel_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else PanelRecord.from_row(row)

    async def update_panel(
        self,
        comic_id: int,
        position: int,
        changes: Mapping[str, str | None],
        plan: PanelPlanner | None = None,
    ) -> PanelChange:
        """Change a panel's text (``prompt``, ``caption``, ``dialogue``, ``speaker``) and/or redraw it.

        With ``plan`` the panel gets a new seed/parameters and a new job (a redo, or a new prompt);
        its current image stays until the new one is linked. All in one transaction, so the panel
        changed is the one at ``position`` when the change is made.
        """
        unknown = set(changes) - set(EDITABLE_PANEL_FIELDS)
        if unknown:
            raise ValueError(f"panel fields {sorted(unknown)} cannot be edited")
        async with transaction(self._db):
            before = await self.panel_at(comic_id, position)
            if changes:
                assignments = ", ".join(f"{name} = ?" for name in changes)
                await self._db.execute(
                    f"UPDATE comic_panels SET {assignments} WHERE id = ?", (*changes.values(), before.id)
                )
            job_id = None
            if plan is not None:
                job_id = await self._apply_plan(before, plan(await self._panel_by_id(before.id)))
            await self._touch(comic_id)
            after = await self._panel_by_id(before.id)
        return PanelChange(before, after, job_id)

    async def move_panel(self, comic_id: int, position: int, to: int) -> list[PanelRecord]:
        """Move the panel at ``position`` to ``to``, shifting the ones between; the new order."""
        async with transaction(self._db):
            ids = await self._ordered_ids(comic_id)
            for wanted in (position, to):
                if not 1 <= wanted <= len(ids):
                    raise PanelNotFound(self._no_panel_text(wanted, len(ids)))
            moving = ids.pop(position - 1)
            ids.insert(to - 1, moving)
            await self._renumber(comic_id, ids)
            await self._touch(comic_id)
        return await self.panels(comic_id)

    async def remove_panel(self, comic_id: int, position: int) -> PanelRecord:
        """Delete the panel at ``position``; later panels move up one. Returns the removed panel."""
        async with transaction(self._db):
            removed = await self.panel_at(comic_id, position)
            await self._db.execute("DELETE FROM comic_panels WHERE id = ?", (removed.id,))
            await self._renumber(comic_id, await self._ordered_ids(comic_id))
            await self._touch(comic_id)
        return removed

    async def panel_for_job(self, job_id: int) -> PanelRecord | None:
        """The panel whose latest job is ``job_id``, or None."""
        async with self._db.execute(_PANEL_SELECT + " WHERE p.job_id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else PanelRecord.from_row(row)

    async def link_image(self, job_id: int, image_id: int) -> PanelRecord | None:
        """A panel's job finished: show ``image_id`` in the panel whose latest job it is.

        Returns that panel, or None when no panel waits for this job (it was removed, or redone
        since and a newer job will bring its image).
        """
        async with transaction(self._db):
            cursor = await self._db.execute(
                "UPDATE comic_panels SET image_id = ? WHERE job_id = ?", (image_id, job_id)
            )
            linked = cursor.rowcount > 0
        return await self.panel_for_job(job_id) if linked else None

    async def link_images(self, job_id: int, image_ids: Sequence[int]) -> list[PanelRecord]:
        """A job finished: each panel whose latest job it is shows its image (a storyboard panel the
        image at its ``board_index``, any other panel the first). Returns the panels linked."""
        linked: list[int] = []
        async with transaction(self._db):
            async with self._db.execute(
                "SELECT id, params_json FROM comic_panels WHERE job_id = ?", (job_id,)
            ) as cursor:
                waiting = [(int(row[0]), _board_index(str(row[1]))) for row in await cursor.fetchall()]
            for panel_id, index in waiting:
                if index < len(image_ids):
                    await self._db.execute(
                        "UPDATE comic_panels SET image_id = ? WHERE id = ?", (image_ids[index], panel_id)
                    )
                    linked.append(panel_id)
        return [await self._panel_by_id(panel_id) for panel_id in linked]

    async def relink_finished(self) -> int:
        """Link every finished panel job's first image to its panel; how many panels changed.

        The result hook links images as jobs finish; this catches a job that finished just
        before a crash, before its hook ran.
        """
        async with transaction(self._db):
            cursor = await self._db.execute(
                f"""UPDATE comic_panels
                   SET image_id = (SELECT i.id FROM images AS i WHERE i.job_id = comic_panels.job_id
                                   AND i.idx >= {_BOARD_SQL} ORDER BY i.idx LIMIT 1)
                   WHERE job_id IS NOT NULL
                     AND EXISTS (SELECT 1 FROM images AS i WHERE i.job_id = comic_panels.job_id
                                 AND i.idx >= {_BOARD_SQL})
                     AND image_id IS NOT (SELECT i.id FROM images AS i WHERE i.job_id = comic_panels.job_id
                                          AND i.idx >= {_BOARD_SQL} ORDER BY i.idx LIMIT 1)"""
            )
            return cursor.rowcount

    # -- inside a transaction ----------------------------------------------------------------------

    async def _require_comic(self, comic_id: int) -> None:
        async with self._db.execute("SELECT 1 FROM comics WHERE id = ?", (comic_id,)) as cursor:
            if await cursor.fetchone() is None:
                raise ComicNotFound(f"There is no comic #{comic_id}.")

    async def _ordered_ids(self, comic_id: int) -> list[int]:
        async with self._db.execute(
            "SELECT id FROM comic_panels WHERE comic_id = ? ORDER BY position", (comic_id,)
        ) as cursor:
            return [int(row[0]) for row in await cursor.fetchall()]

    async def _renumber(self, comic_id: int, ordered_ids: Sequence[int]) -> None:
        """Give the panels positions 1..n in this order.

        Positions are unique per comic and SQLite checks that row by row, so every position is
        first moved out of the way (negated), then set to its final value.
        """
        await self._db.execute(
            "UPDATE comic_panels SET position = -position WHERE comic_id = ? AND position > 0", (comic_id,)
        )
        await self._db.executemany(
            "UPDATE comic_panels SET position = ? WHERE id = ?",
            [(number, panel_id) for number, panel_id in enumerate(ordered_ids, start=1)],
        )

    async def _panel_by_id(self, panel_id: int) -> PanelRecord:
        async with self._db.execute(_PANEL_SELECT + " WHERE p.id = ?", (panel_id,)) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return PanelRecord.from_row(row)

    async def _apply_plan(self, panel: PanelRecord, plan: PanelPlan) -> int | None:
        """Record the panel's seed and parameters, and insert its job (returning its id)."""
        job_id = await insert_job(self._db, plan.job) if plan.job is not None else None
        await self._db.execute(
            "UPDATE comic_panels SET seed = ?, params_json = ?, job_id = COALESCE(?, job_id) WHERE id = ?",
            (plan.seed, plan.params_json, job_id, panel.id),
        )
        return job_id

    async def _touch(self, comic_id: int) -> None:
        await self._db.execute("UPDATE comics SET updated_at = ? WHERE id = ?", (time.time(), comic_id))

    @staticmethod
    def _no_panel_text(position: int, count: int) -> str:
        if count == 0:
            return "This comic has no panels yet."
        return f"There is no panel {position}; this comic has panels 1 to {count}."
