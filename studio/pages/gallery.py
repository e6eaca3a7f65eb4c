"""Gallery: every image, newest first, with search and filters; ``?image=ID`` shows one image."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import streamlit as st

from rules.prompt_flags import reproduce_line
from studio import context
from studio.archive import KINDS, Filters, ImageRow

COLUMNS = 6
ANY = "Any"

current = context.studio()
context.require_password(current)
database, scope = str(current.config.database), current.scope


def open_image(image_id: int) -> None:
    """Show one image's page."""
    st.query_params["image"] = str(image_id)


def close_image() -> None:
    st.query_params.pop("image", None)


def thumbnails(rows: list[ImageRow], key: str, columns: int = COLUMNS) -> None:
    """A grid of thumbnails, each with a button that opens its page."""
    context.make_thumbnails(current, rows)
    cells = st.columns(columns)
    for index, row in enumerate(rows):
        with cells[index % columns]:
            path = context.thumb_of(current, row)
            if path is not None:
                st.image(path, width="stretch")
            st.button(f"#{row.id}", key=f"{key}-{row.id}", on_click=open_image, args=(row.id,),
                      help=context.shorten(row.prompt, 200))
            st.caption(context.shorten(row.prompt, 60))


def image_page(image_id: int) -> None:
    row, lineage = context.image(database, scope, image_id)
    st.button("← Gallery", on_click=close_image)
    if row is None or lineage is None:
        st.error(f"Image #{image_id} is not in the gallery.")
        return
    st.header(f"Image #{row.id}")
    left, right = st.columns([3, 2])
    full = current.config.images_dir / row.path
    with left:
        if row.safety == "spoiler":
            st.warning("The safety checker flagged this image; it was posted behind a spoiler.")
        if full.exists():
            st.image(str(full), width="stretch")
        else:
            st.error("The image file is missing from the image folder.")
    params = row.params
    with right:
        st.subheader("Parameters")
        table = {
            "Kind": row.kind,
            "Prompt": row.prompt,
            "Negative prompt": params.get("negative_prompt") or "",
            "Seed": row.seed,
            "Steps": params.get("steps"),
            "Guidance": params.get("guidance"),
            "Size": f"{row.width}x{row.height}",
            "Scheduler": params.get("scheduler") or "default",
            "Strength": params.get("strength"),
            "Model": row.model or "not recorded",
            "Style": row.style or "none",
            "Member": row.requester_id,
            "Server": row.guild_id,
            "Channel": row.channel_id,
            "Job": row.job_id,
            "Made": context.when(row.created_at),
        }
        st.table({"Parameter": list(table), "Value": [str(v) if v is not None else "" for v in table.values()]})
        st.subheader("Make it again")
        st.code(
            reproduce_line(
                prompt=row.prompt, negative_prompt=str(params.get("negative_prompt") or ""), seed=row.seed,
                steps=int(params.get("steps", 30)), guidance=float(params.get("guidance", 7.0)),
                width=row.width, height=row.height,
            ),
            language=None,
        )
        if full.exists():
            st.download_button(
                "Download PNG", data=full.read_bytes(), file_name=f"panelbot-{row.id}-{row.seed}.png",
                mime="image/png",
            )
    st.subheader("Lineage")
    if lineage.parent is not None:
        st.markdown(f"**Made from** #{lineage.parent.id}")
        thumbnails([lineage.parent], "parent")
    elif row.parent_image_id is not None:
        st.markdown(f"Made from image #{row.parent_image_id}, which is not in the gallery.")
    for title, rows in (("Variations", lineage.variations), ("Upscales", lineage.upscales),
                        ("Also made from it", lineage.others)):
        if rows:
            st.markdown(f"**{title}** ({len(rows)})")
            thumbnails(rows, title.lower())
    if lineage.parent is None and row.parent_image_id is None and not (
        lineage.variations or lineage.upscales or lineage.others
    ):
        st.caption("No parent, variations or upscales.")


def choice(label: str, options: list[object], key: str) -> object | None:
    picked = st.sidebar.selectbox(label, [ANY, *options], key=key)
    return None if picked == ANY else picked


def gallery_page() -> None:
    st.header("Gallery")
    found = context.facets(database, scope)
    search = st.sidebar.text_input("Search prompts", key="search")
    guild = choice("Server", list(found.guild_ids), "guild")
    channel = choice("Channel", list(found.channel_ids), "channel")
    member = choice("Member", list(found.requester_ids), "member")
    model = choice("Model", list(found.models), "model")
    style = choice("Style", list(found.styles), "style")
    kind = choice("Kind", list(KINDS), "kind")
    dates = st.sidebar.date_input("Made between", value=[], key="dates")
    since = until = None
    if isinstance(dates, tuple | list) and len(dates) == 2:
        since = datetime.combine(dates[0], time(), UTC).timestamp()
        until = datetime.combine(dates[1] + timedelta(days=1), time(), UTC).timestamp()
    filters = Filters(
        search=search, guild_id=guild, channel_id=channel, requester_id=member,  # type: ignore[arg-type]
        model=model, style=style, kind=kind, since=since, until=until,  # type: ignore[arg-type]
    )
    if st.session_state.get("gallery_filters") != filters:
        st.session_state["gallery_filters"] = filters
        st.session_state["gallery_page"] = 0
    page_number = int(st.session_state.get("gallery_page", 0))
    result = context.gallery(database, scope, filters, page_number)
    if not result.images:
        st.info("No images match." if page_number == 0 else "No more images.")
    thumbnails(result.images, "gallery")
    back, where, forward = st.columns([1, 2, 1])
    with back:
        st.button("← Newer", disabled=page_number == 0, on_click=turn, args=(page_number - 1,))
    with where:
        st.caption(f"Page {page_number + 1}")
    with forward:
        st.button("Older →", disabled=not result.has_next, on_click=turn, args=(page_number + 1,))
    if result.has_next:  # the likely next click: its rows cached and its thumbnails made ahead
        context.prefetch_thumbnails(current, context.gallery(database, scope, filters, page_number + 1).images)


def turn(page_number: int) -> None:
    st.session_state["gallery_page"] = page_number


requested = st.query_params.get("image")
if requested is not None and requested.isdigit():
    image_page(int(requested))
else:
    gallery_page()
