"""Gallery: every image, newest first, with search and filters; ``?image=ID`` shows one image.

A page of thumbnails is one HTML grid of links (:mod:`studio.thumbnail_grid`), and the filters
wait in a "Filters" popover (made after the grid), so a new browser tab paints the thumbnails
first. What the gallery shows is kept in the URL too (:mod:`studio.gallery_links`): a click on a thumbnail
moves the open session to that URL (a page load where scripts are off), and "← Gallery", the
browser's Back and bookmarks come back to the same filters and page.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import streamlit as st

from rules.prompt_flags import reproduce_line
from studio import context
from studio.archive import KINDS, Filters, ImageRow
from studio.gallery_links import IMAGE, GalleryPlace, day_range, filters_on, place_from_query, place_query
from studio.thumbnail_grid import LINK_SCRIPT, HtmlFragment, grid_html

ANY = "Any"

current = context.studio()
context.require_password(current)
database, scope = str(current.config.database), current.scope


def linked_place() -> GalleryPlace:
    """The gallery place the URL names (the page's query, less the image)."""
    return place_from_query({k: v for k, v in st.query_params.to_dict().items() if k != IMAGE})


def close_image() -> None:
    st.query_params.pop(IMAGE, None)


def thumbnails(rows: list[ImageRow], place: GalleryPlace, label: str) -> None:
    """A grid of thumbnails, each a link to its image's page (whose "← Gallery" returns to ``place``)."""
    st.html(HtmlFragment(grid_html(context.grid_cells(current, rows, place), label)))


def image_page(image_id: int) -> None:
    place = linked_place()
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
        thumbnails([lineage.parent], place, "Made from")
    elif row.parent_image_id is not None:
        st.markdown(f"Made from image #{row.parent_image_id}, which is not in the gallery.")
    for title, rows in (("Variations", lineage.variations), ("Upscales", lineage.upscales),
                        ("Also made from it", lineage.others)):
        if rows:
            st.markdown(f"**{title}** ({len(rows)})")
            thumbnails(rows, place, title)
    if lineage.parent is None and row.parent_image_id is None and not (
        lineage.variations or lineage.upscales or lineage.others
    ):
        st.caption("No parent, variations or upscales.")


def widget_value(key: str, linked: Any) -> Any:
    """A filter widget's value this run: what the visitor set in this session, else what the URL says."""
    return st.session_state.get(key, linked)


def choice(box: Any, label: str, options: list[object], key: str, linked: object | None) -> None:
    """A filter's select box ("Any" first; a value from the URL is offered even if it is a rare one)."""
    choices: list[object] = [ANY, *options]
    if linked is not None and linked not in choices:
        choices.append(linked)
    box.selectbox(label, choices, index=choices.index(linked) if linked is not None else 0, key=key)


def filter_widgets(box: Any, linked: GalleryPlace) -> None:
    """The filters, in the "Filters" popover, made after the grid.

    A closed popover's widgets are not drawn, so a new tab paints the thumbnails without first
    loading and laying out nine widgets; they appear when the visitor opens the popover.
    """
    found = context.facets(database, scope)
    filters = linked.filters
    box.text_input("Search prompts", value=filters.search, key="search")
    choice(box, "Server", list(found.guild_ids), "guild", filters.guild_id)
    choice(box, "Channel", list(found.channel_ids), "channel", filters.channel_id)
    choice(box, "Member", list(found.requester_ids), "member", filters.requester_id)
    choice(box, "Model", list(found.models), "model", filters.model)
    choice(box, "Style", list(found.styles), "style", filters.style)
    choice(box, "Kind", list(KINDS), "kind", filters.kind)
    days: list[Any] = [linked.first_day, linked.last_day] if linked.first_day is not None else []
    box.date_input("Made between", value=days, key="dates")


def filters_label(place: GalleryPlace) -> str:
    """The popover's label: how many filters narrow the gallery now."""
    on = filters_on(place)
    return f"Filters ({on} on)" if on else "Filters"


def chosen(key: str, linked: object | None) -> Any:
    picked = widget_value(key, linked)
    return None if picked == ANY else picked


def place_now(linked: GalleryPlace) -> GalleryPlace:
    """What the filters say this run (the widgets' state, else the URL's), on the page this session is at."""
    days = widget_value("dates", (linked.first_day, linked.last_day) if linked.first_day is not None else ())
    first_day: date | None = None
    last_day: date | None = None
    if isinstance(days, tuple | list) and len(days) == 2:
        first_day, last_day = days
    since, until = day_range(first_day, last_day)
    given = linked.filters
    filters = Filters(
        search=widget_value("search", given.search), guild_id=chosen("guild", given.guild_id),
        channel_id=chosen("channel", given.channel_id), requester_id=chosen("member", given.requester_id),
        model=chosen("model", given.model), style=chosen("style", given.style), kind=chosen("kind", given.kind),
        since=since, until=until,
    )
    if "gallery_filters" not in st.session_state:  # a new session: start where the URL says
        st.session_state["gallery_filters"] = filters
        st.session_state["gallery_page"] = linked.page if filters == given else 0
    elif st.session_state["gallery_filters"] != filters:
        st.session_state["gallery_filters"] = filters
        st.session_state["gallery_page"] = 0
    return GalleryPlace(filters, first_day, last_day, int(st.session_state["gallery_page"]))


def gallery_page() -> None:
    st.header("Gallery")
    linked = linked_place()
    place = place_now(linked)
    box = st.popover(filters_label(place), icon=":material/filter_list:")
    st.query_params.from_dict(place_query(place))
    page_number = place.page
    result = context.gallery(database, scope, place.filters, page_number)
    if not result.images:
        st.info("No images match." if page_number == 0 else "No more images.")
    else:
        thumbnails(result.images, place, "Gallery")
    back, where, forward = st.columns([1, 2, 1])
    with back:
        st.button("← Newer", disabled=page_number == 0, on_click=turn, args=(page_number - 1,))
    with where:
        st.caption(f"Page {page_number + 1}")
    with forward:
        st.button("Older →", disabled=not result.has_next, on_click=turn, args=(page_number + 1,))
    filter_widgets(box, linked)
    if result.has_next:  # the likely next click: its rows cached and its thumbnails made ahead
        context.prefetch_thumbnails(current, context.gallery(database, scope, place.filters, page_number + 1).images)


def turn(page_number: int) -> None:
    st.session_state["gallery_page"] = page_number


requested = st.query_params.get(IMAGE)
if requested is not None and requested.isdigit():
    image_page(int(requested))
else:
    gallery_page()
st.html(LINK_SCRIPT, unsafe_allow_javascript=True)  # last: thumbnail clicks stay in this session
