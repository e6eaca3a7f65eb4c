"""Comics: every comic with its cover, panel count, owner and collaborators; ``?comic=ID`` reads one."""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import streamlit as st

from studio import comics_render, context
from studio.archive import Archive, ComicRow, Scope

COLUMNS = 4

current = context.studio()
context.require_password(current)
database, scope = str(current.config.database), current.scope


@st.cache_data(ttl=context.QUERY_TTL_S, show_spinner=False)
def comic_list(database: str, scope: Scope) -> list[ComicRow]:
    return list(Archive(database, scope).comics())


@st.cache_data(max_entries=32, show_spinner="Rendering the pages…")
def rendered(database: str, scope: Scope, comic_id: int, updated_at: float, panels_per_page: int,
             images_dir: str) -> list[bytes]:
    """The comic's pages as PNG, rendered as /comic show renders them (cached until the comic changes)."""
    return comics_render.pages_png(Archive(database, scope), comic_id, Path(images_dir), panels_per_page)


@st.cache_data(max_entries=16, show_spinner="Preparing the file…")
def exported(database: str, scope: Scope, comic_id: int, updated_at: float, panels_per_page: int,
             images_dir: str, fmt: str) -> bytes:
    return comics_render.export(Archive(database, scope), comic_id, Path(images_dir), panels_per_page, fmt)


def open_comic(comic_id: int) -> None:
    st.query_params["comic"] = str(comic_id)
    st.session_state["comic_page"] = 1


def close_comic() -> None:
    st.query_params.pop("comic", None)


def listing() -> None:
    st.header("Comics")
    comics = comic_list(database, scope)
    if not comics:
        st.info("No comics yet: start one in Discord with /comic new.")
        return
    cells = st.columns(COLUMNS)
    for index, comic in enumerate(comics):
        with cells[index % COLUMNS], st.container(border=True):
            cover = None
            if comic.cover_path:
                cover = context.thumbnail(
                    str(current.config.images_dir), comic.cover_path,
                    str(current.config.studio.thumbnails_dir),
                )
            if cover is not None:
                st.image(cover, width="stretch")
            st.subheader(comic.title)
            collaborators = ", ".join(str(c) for c in comic.collaborators) or "none"
            st.caption(
                f"{comic.panel_count} panel(s) · owner {comic.owner_id} · "
                f"collaborators: {collaborators}"
            )
            st.button("Read", key=f"read-{comic.id}", on_click=open_comic, args=(comic.id,))


def reader(comic_id: int) -> None:
    st.button("← Comics", on_click=close_comic)
    comic = Archive(database, scope).comic(comic_id)
    if comic is None:
        st.error(f"Comic #{comic_id} is not here.")
        return
    st.header(comic.title)
    st.caption(f"{comic.panel_count} panel(s) · owner {comic.owner_id} · layout {comic.layout}")
    config = current.config
    args = (database, scope, comic.id, comic.updated_at, config.panels_per_page, str(config.images_dir))
    pages = rendered(*args)
    if not pages:
        st.info("This comic has no panels yet.")
        return
    page = int(st.number_input("Page", min_value=1, max_value=len(pages), step=1, key="comic_page"))
    st.caption(f"Page {page} of {len(pages)}")
    st.image(io.BytesIO(pages[page - 1]).getvalue(), width="stretch")
    stem = comics_render.basename(comic.title, comic.id)
    pdf, cbz = st.columns(2)
    with pdf:
        st.download_button("Download PDF", data=exported(*args, "pdf"), file_name=f"{stem}.pdf",
                           mime="application/pdf")
    with cbz:
        st.download_button("Download CBZ", data=exported(*args, "cbz"), file_name=f"{stem}.cbz",
                           mime="application/vnd.comicbook+zip")


requested = st.query_params.get("comic")
if requested is not None and requested.isdigit():
    reader(int(requested))
else:
    listing()
