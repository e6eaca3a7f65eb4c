"""What every studio page shares: the config, the archive, the password gate and cached lookups.

Streamlit caches live here (``st.cache_resource`` for the config, ``st.cache_data`` for query
results, thumbnail files and their data URIs), keyed by plain values so every page and session shares them.
"""

from __future__ import annotations

import hmac
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import streamlit as st

from studio.archive import Archive, Facets, Filters, GalleryPage, ImageRow, Lineage, Scope
from studio.bot_client import BotClient
from studio.gallery_links import GalleryPlace, image_link
from studio.settings import StudioConfig, config_path, load_config
from studio.thumbnail_grid import Cell, data_uri
from studio.thumbnails import thumbnail_path

#: Gallery results are fresh for this long (new images show up within it).
QUERY_TTL_S = 5
PER_PAGE = 24
#: Thumbnails are made on these threads (Pillow works outside the GIL): a page's missing ones in
#: parallel, and the next page's ahead of the click that shows them.
_THUMBNAILERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="studio-thumbnails")


@dataclass(frozen=True)
class Studio:
    """The loaded config and what is built from it."""

    config: StudioConfig
    archive: Archive
    client: BotClient

    @property
    def scope(self) -> Scope:
        """What this studio may show."""
        return self.archive.scope


@st.cache_resource
def _load(path: str) -> Studio:
    config = load_config(path)
    settings = config.studio
    scope = Scope(settings.public_guild_ids, settings.public_channel_ids, public=settings.public)
    return Studio(config=config, archive=Archive(config.database, scope), client=BotClient(settings))


def studio() -> Studio:
    """The studio for the config named on the command line (``-- --config PATH``) or in the environment."""
    return _load(str(config_path(sys.argv)))


def require_password(current: Studio) -> None:
    """Stop the page until the visitor gave ``[studio] password`` (when one is set)."""
    password = current.config.studio.password
    if not password or st.session_state.get("studio_authenticated"):
        return
    st.title("panelbot studio")
    given = st.text_input("Password", type="password", key="studio_password")
    if given:
        if hmac.compare_digest(given.encode(), password.encode()):
            st.session_state["studio_authenticated"] = True
            st.rerun()
        st.error("That password is not right.")
    st.stop()


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def gallery(database: str, scope: Scope, filters: Filters, page: int, per_page: int = PER_PAGE) -> GalleryPage:
    """One gallery page (cached briefly)."""
    return Archive(database, scope).gallery(filters, page=page, per_page=per_page)


@st.cache_data(ttl=60, show_spinner=False)
def facets(database: str, scope: Scope) -> Facets:
    """The filters' choices (cached for a minute)."""
    return Archive(database, scope).facets()


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False)
def image(database: str, scope: Scope, image_id: int) -> tuple[ImageRow | None, Lineage | None]:
    """One image and its lineage (None when it may not be shown)."""
    archive = Archive(database, scope)
    row = archive.image(image_id)
    return row, archive.lineage(row) if row is not None else None


@st.cache_data(max_entries=20_000, show_spinner=False)
def thumbnail(images_dir: str, relative_path: str, cache_dir: str, blur: bool = False) -> str | None:
    """The cached thumbnail file of one image (made on first use)."""
    path = thumbnail_path(Path(images_dir), relative_path, Path(cache_dir), blur=blur)
    return str(path) if path is not None else None


def thumb_of(current: Studio, row: ImageRow) -> str | None:
    """A gallery thumbnail for this image (spoilered ones blurred)."""
    config = current.config
    return thumbnail(
        str(config.images_dir), row.path, str(config.studio.thumbnails_dir), blur=row.safety == "spoiler"
    )


@st.cache_data(max_entries=2_000, show_spinner=False)
def _picture(path: str) -> str:
    """A thumbnail file as a data URI (files are content-addressed, so never stale)."""
    return data_uri(Path(path))


def grid_cells(current: Studio, rows: Sequence[ImageRow], place: GalleryPlace) -> list[Cell]:
    """The thumbnail grid's cells for these images (thumbnails made first, in parallel), linking back to ``place``."""
    make_thumbnails(current, rows)
    cells = []
    for row in rows:
        path = thumb_of(current, row)
        cells.append(Cell(row.id, image_link(row.id, place), _picture(path) if path else None, row.prompt))
    return cells


def _thumbnail_job(current: Studio, row: ImageRow) -> Path | None:
    config = current.config
    return thumbnail_path(config.images_dir, row.path, config.studio.thumbnails_dir, blur=row.safety == "spoiler")


def make_thumbnails(current: Studio, rows: Sequence[ImageRow]) -> None:
    """Make the missing thumbnails of these images in parallel, and wait for them."""
    list(_THUMBNAILERS.map(lambda row: _thumbnail_job(current, row), rows))


def prefetch_thumbnails(current: Studio, rows: Sequence[ImageRow]) -> None:
    """Start making these images' thumbnails in the background (the next page's, say)."""
    for row in rows:
        _THUMBNAILERS.submit(_thumbnail_job, current, row)


def when(timestamp: float) -> str:
    """A Unix time as a short UTC date and time."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
