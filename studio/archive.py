"""Read-only queries over the bot's archive: the gallery, one image and its lineage, comics.

Plain :mod:`sqlite3` opened with ``mode=ro``: the studio can never write the bot's database, and
WAL lets it read while the bot writes. Gallery pages are paged queries (newest first, ``LIMIT``
one more than a page to know whether another follows) served by indexes; nothing counts all rows.

Withheld images (the safety policy kept them from Discord) and deleted results never appear, and
in public mode only the chosen servers and channels do (:class:`Scope`). Nothing here imports
Streamlit: the pages cache these results.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ImageKind = Literal["txt2img", "variation", "upscale", "img2img", "panel"]
KINDS: tuple[ImageKind, ...] = ("txt2img", "variation", "upscale", "img2img", "panel")
#: The oldest schema the studio reads (images.safety and images.deleted_at came in version 3).
MIN_SCHEMA = 3
#: The filters offer the models and styles of this many newest images.
FACET_WINDOW = 5000

#: How an image came to be, from its request and its job: see :data:`KINDS`.
KIND_SQL = """CASE
    WHEN EXISTS (SELECT 1 FROM comic_panels p WHERE p.job_id = i.job_id) THEN 'panel'
    WHEN json_extract(i.params_json, '$.kind') = 'upscale' THEN 'upscale'
    WHEN json_extract(i.params_json, '$.kind') IN ('img2img', 'inpaint') AND i.parent_image_id IS NOT NULL
        THEN 'variation'
    WHEN json_extract(i.params_json, '$.kind') IN ('img2img', 'inpaint') THEN 'img2img'
    ELSE 'txt2img' END"""
#: An image the studio may show at all.
VISIBLE_SQL = "(i.safety IS NULL OR i.safety != 'withhold') AND i.deleted_at IS NULL"
_IMAGE_COLUMNS = f"""i.id, i.job_id, i.idx, i.seed, i.params_json, i.path, i.width, i.height, i.parent_image_id,
    i.requester_id, i.guild_id, j.channel_id, i.created_at, i.safety, {KIND_SQL} AS kind"""


class SchemaTooOld(RuntimeError):
    """The database predates the studio: start the bot once to upgrade it."""


@dataclass(frozen=True)
class Scope:
    """What the studio may show: everything (private), or only some servers and channels (public)."""

    guild_ids: tuple[int, ...] = ()
    channel_ids: tuple[int, ...] = ()
    public: bool = False

    def sql(self, guild: str, channel: str) -> tuple[str, list[Any]]:
        """A condition on the given guild and channel columns, and its parameters."""
        if not self.public:
            return "1", []
        parts: list[str] = []
        args: list[Any] = []
        if self.guild_ids:
            parts.append(f"{guild} IN ({', '.join('?' * len(self.guild_ids))})")
            args.extend(self.guild_ids)
        if self.channel_ids:
            parts.append(f"{channel} IN ({', '.join('?' * len(self.channel_ids))})")
            args.extend(self.channel_ids)
        return f"({' OR '.join(parts) or '0'})", args


@dataclass(frozen=True)
class Filters:
    """What the gallery is narrowed to (None or empty: no narrowing)."""

    search: str = ""
    guild_id: int | None = None
    channel_id: int | None = None
    requester_id: int | None = None
    model: str | None = None
    style: str | None = None
    kind: ImageKind | None = None
    #: Unix times: images made at or after ``since`` and before ``until``.
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class ImageRow:
    """One image as the studio shows it."""

    id: int
    job_id: int
    idx: int
    seed: int
    params: dict[str, Any]
    path: str
    width: int
    height: int
    parent_image_id: int | None
    requester_id: int
    guild_id: int | None
    channel_id: int
    created_at: float
    safety: str | None
    kind: ImageKind

    @property
    def prompt(self) -> str:
        """The prompt the image was drawn with (style words included)."""
        return str(self.params.get("prompt", ""))

    @property
    def model(self) -> str | None:
        """The model that drew it, where recorded."""
        value = self.params.get("extra", {}).get("model")
        return str(value) if value else None

    @property
    def style(self) -> str | None:
        """The style preset it was asked with, where recorded."""
        value = self.params.get("extra", {}).get("style")
        return str(value) if value else None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ImageRow:
        """From a row selected with ``_IMAGE_COLUMNS``."""
        data = dict(row)
        data["params"] = json.loads(data.pop("params_json") or "{}")
        return cls(**data)


@dataclass(frozen=True)
class GalleryPage:
    """One page of the gallery and whether another follows."""

    images: list[ImageRow]
    page: int
    has_next: bool


@dataclass(frozen=True)
class Lineage:
    """Where an image came from and what was made from it (visible images only)."""

    parent: ImageRow | None = None
    variations: list[ImageRow] = field(default_factory=list)
    upscales: list[ImageRow] = field(default_factory=list)
    others: list[ImageRow] = field(default_factory=list)


@dataclass(frozen=True)
class ComicRow:
    """One comic with what its card shows."""

    id: int
    title: str
    owner_id: int
    guild_id: int | None
    channel_id: int
    layout: str
    style: str | None
    created_at: float
    updated_at: float
    panel_count: int
    collaborators: tuple[int, ...]
    cover_path: str | None


@dataclass(frozen=True)
class PanelRow:
    """One panel of a comic: its text and the picture it shows now (None: not drawn yet)."""

    position: int
    prompt: str
    caption: str | None
    dialogue: str | None
    speaker: str | None
    image_path: str | None


@dataclass(frozen=True)
class Facets:
    """The values the gallery's filters offer."""

    guild_ids: list[int]
    channel_ids: list[int]
    requester_ids: list[int]
    models: list[str]
    styles: list[str]


def open_readonly(path: Path | str) -> sqlite3.Connection:
    """Open the database read-only (it must exist); rows come back as :class:`sqlite3.Row`."""
    resolved = Path(path).resolve()
    if not resolved.exists():
        raise FileNotFoundError(f"no database at {path}: start the bot once to create it")
    con = sqlite3.connect(f"{resolved.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA busy_timeout = 5000")
    version = int(con.execute("PRAGMA user_version").fetchone()[0])
    if version < MIN_SCHEMA:
        con.close()
        raise SchemaTooOld(f"the database is at schema version {version}; start the bot once to upgrade it")
    return con


class Archive:
    """The read-only queries the studio's pages make."""

    def __init__(self, database: Path | str, scope: Scope | None = None) -> None:
        self.database = Path(database)
        self.scope = scope or Scope()

    def _connect(self) -> sqlite3.Connection:
        return open_readonly(self.database)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        # A connection per query: cheap for SQLite, and safe across Streamlit's script threads.
        con = self._connect()
        try:
            return con.execute(sql, list(args)).fetchall()
        finally:
            con.close()

    def _where(self, filters: Filters) -> tuple[str, list[Any]]:
        scope_sql, args = self.scope.sql("i.guild_id", "j.channel_id")
        parts = [VISIBLE_SQL, scope_sql]
        if filters.search.strip():
            parts.append("instr(lower(json_extract(i.params_json, '$.prompt')), ?) > 0")
            args.append(filters.search.strip().lower())
        for column, value in (
            ("i.guild_id", filters.guild_id), ("j.channel_id", filters.channel_id),
            ("i.requester_id", filters.requester_id),
        ):
            if value is not None:
                parts.append(f"{column} = ?")
                args.append(value)
        if filters.model:
            parts.append("json_extract(i.params_json, '$.extra.model') = ?")
            args.append(filters.model)
        if filters.style:
            parts.append("json_extract(i.params_json, '$.extra.style') = ?")
            args.append(filters.style)
        if filters.kind:
            parts.append(f"({KIND_SQL}) = ?")
            args.append(filters.kind)
        if filters.since is not None:
            parts.append("i.created_at >= ?")
            args.append(filters.since)
        if filters.until is not None:
            parts.append("i.created_at < ?")
            args.append(filters.until)
        return " AND ".join(parts), args

    def gallery(self, filters: Filters = Filters(), *, page: int = 0, per_page: int = 24) -> GalleryPage:
        """One page of visible images, newest first."""
        where, args = self._where(filters)
        rows = self._query(
            f"""SELECT {_IMAGE_COLUMNS} FROM images i JOIN jobs j ON j.id = i.job_id
                WHERE {where} ORDER BY i.id DESC LIMIT ? OFFSET ?""",
            [*args, per_page + 1, max(page, 0) * per_page],
        )
        images = [ImageRow.from_row(row) for row in rows[:per_page]]
        return GalleryPage(images=images, page=max(page, 0), has_next=len(rows) > per_page)

    def image(self, image_id: int) -> ImageRow | None:
        """One visible image, or None (missing, withheld, deleted or outside the scope)."""
        scope_sql, args = self.scope.sql("i.guild_id", "j.channel_id")
        rows = self._query(
            f"""SELECT {_IMAGE_COLUMNS} FROM images i JOIN jobs j ON j.id = i.job_id
                WHERE i.id = ? AND {VISIBLE_SQL} AND {scope_sql}""",
            [image_id, *args],
        )
        return ImageRow.from_row(rows[0]) if rows else None

    def lineage(self, image: ImageRow) -> Lineage:
        """The image's parent and the variations, upscales and others made from it."""
        parent = self.image(image.parent_image_id) if image.parent_image_id is not None else None
        scope_sql, args = self.scope.sql("i.guild_id", "j.channel_id")
        rows = self._query(
            f"""SELECT {_IMAGE_COLUMNS} FROM images i JOIN jobs j ON j.id = i.job_id
                WHERE i.parent_image_id = ? AND {VISIBLE_SQL} AND {scope_sql} ORDER BY i.id LIMIT 200""",
            [image.id, *args],
        )
        children = [ImageRow.from_row(row) for row in rows]
        return Lineage(
            parent=parent,
            variations=[c for c in children if c.kind == "variation"],
            upscales=[c for c in children if c.kind == "upscale"],
            others=[c for c in children if c.kind not in ("variation", "upscale")],
        )

    def facets(self) -> Facets:
        """The servers, channels and members that have images, and the models and styles of recent ones.

        Servers, channels and members are read off their indexes (every image counts, shown or not:
        only ids, never an image); models and styles from the newest :data:`FACET_WINDOW` images,
        so the choices cost the same at any archive size. Public mode lists only what it shows.
        """
        scope = self.scope
        guilds = [r[0] for r in self._query("SELECT DISTINCT guild_id FROM images WHERE guild_id IS NOT NULL")]
        channels = [r[0] for r in self._query("SELECT DISTINCT channel_id FROM jobs")]
        if scope.public:
            guilds = [g for g in guilds if g in scope.guild_ids]
            channels = [c for c in channels if c in scope.channel_ids or self._channel_in_guilds(c)]
        scope_sql, args = scope.sql("i.guild_id", "j.channel_id")
        members = [r[0] for r in self._query(
            f"""SELECT DISTINCT i.requester_id FROM images i JOIN jobs j ON j.id = i.job_id
                WHERE {scope_sql} ORDER BY i.requester_id LIMIT 1000""" if scope.public
            else "SELECT DISTINCT requester_id FROM images ORDER BY requester_id LIMIT 1000",
            args if scope.public else [],
        )]
        recent = self._query(
            f"""SELECT DISTINCT json_extract(i.params_json, '$.extra.model') AS model,
                       json_extract(i.params_json, '$.extra.style') AS style
                FROM (SELECT * FROM images ORDER BY id DESC LIMIT ?) i JOIN jobs j ON j.id = i.job_id
                WHERE {VISIBLE_SQL} AND {scope_sql}""",
            [FACET_WINDOW, *args],
        )
        return Facets(
            guild_ids=sorted(guilds),
            channel_ids=sorted(channels),
            requester_ids=members,
            models=sorted({r["model"] for r in recent if r["model"]}),
            styles=sorted({r["style"] for r in recent if r["style"]}),
        )

    def _channel_in_guilds(self, channel_id: int) -> bool:
        rows = self._query(
            f"SELECT 1 FROM jobs WHERE channel_id = ? AND guild_id IN ({', '.join('?' * len(self.scope.guild_ids))})"
            " LIMIT 1",
            [channel_id, *self.scope.guild_ids],
        ) if self.scope.guild_ids else []
        return bool(rows)

    # -- comics ------------------------------------------------------------------------------------

    def _panel_image_sql(self) -> str:
        """The picture a panel shows now: its latest job's first visible image, else the image it links."""
        return f"""COALESCE(
            (SELECT i.path FROM images i WHERE i.job_id = p.job_id AND {VISIBLE_SQL} ORDER BY i.idx LIMIT 1),
            (SELECT i.path FROM images i WHERE i.id = p.image_id AND {VISIBLE_SQL}))"""

    def comics(self, *, limit: int = 200) -> list[ComicRow]:
        """Comics, most recently changed first, with their cover (first panel's picture)."""
        scope_sql, args = self.scope.sql("c.guild_id", "c.channel_id")
        rows = self._query(
            f"""SELECT c.*, (SELECT COUNT(*) FROM comic_panels p WHERE p.comic_id = c.id) AS panel_count,
                       (SELECT group_concat(user_id) FROM comic_collaborators k WHERE k.comic_id = c.id)
                           AS collaborator_ids,
                       (SELECT {self._panel_image_sql()} FROM comic_panels p
                        WHERE p.comic_id = c.id ORDER BY p.position LIMIT 1) AS cover_path
                FROM comics c WHERE {scope_sql} ORDER BY c.updated_at DESC, c.id DESC LIMIT ?""",
            [*args, limit],
        )
        return [_comic_row(row) for row in rows]

    def comic(self, comic_id: int) -> ComicRow | None:
        """One comic in scope, or None."""
        return next((c for c in self.comics(limit=10_000) if c.id == comic_id), None)

    def panels(self, comic_id: int) -> list[PanelRow]:
        """A comic's panels in order, each with the picture it shows now."""
        rows = self._query(
            f"""SELECT p.position, p.prompt, p.caption, p.dialogue, p.speaker,
                       {self._panel_image_sql()} AS image_path
                FROM comic_panels p WHERE p.comic_id = ? ORDER BY p.position""",
            [comic_id],
        )
        return [PanelRow(**dict(row)) for row in rows]


def _comic_row(row: sqlite3.Row) -> ComicRow:
    ids = row["collaborator_ids"]
    return ComicRow(
        id=row["id"], title=row["title"], owner_id=row["owner_id"], guild_id=row["guild_id"],
        channel_id=row["channel_id"], layout=row["layout"], style=row["style"], created_at=row["created_at"],
        updated_at=row["updated_at"], panel_count=row["panel_count"],
        collaborators=tuple(int(v) for v in str(ids).split(",")) if ids else (),
        cover_path=row["cover_path"],
    )
