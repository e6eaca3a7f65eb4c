"""A grid of thumbnails as one HTML element: each image inline (a WebP ``data:`` URI) inside its link.

The gallery sends a page of thumbnails as a single ``st.html`` element: one message, no request
per image and no widget per cell, so a new browser tab paints the page as soon as the script's
output arrives. Each cell is a link to the image's page (``?image=ID``), with the image number and
the start of its prompt below the picture; spoilered images come blurred already (their thumbnail).
Prompts are escaped; the grid has no script (the click handler is :data:`LINK_SCRIPT`).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

COLUMNS = 6
#: Shown under each thumbnail, and in its tooltip.
CAPTION_CHARS = 60
TOOLTIP_CHARS = 200

_STYLE = """<style>
.panelbot-grid{display:grid;grid-template-columns:repeat(var(--columns),minmax(0,1fr));gap:1rem;margin:0 0 1rem}
.panelbot-grid a{color:inherit;text-decoration:none;display:block;min-width:0}
.panelbot-grid a:hover img{outline:2px solid currentColor;outline-offset:2px}
.panelbot-grid img,.panelbot-grid .missing{width:100%;aspect-ratio:1;object-fit:cover;border-radius:.5rem;display:block}
.panelbot-grid .missing{background:rgba(128,128,128,.15)}
.panelbot-grid .number{font-weight:600;font-size:.9rem;margin-top:.3rem}
.panelbot-grid .prompt{font-size:.8rem;opacity:.65;overflow-wrap:anywhere}
</style>"""


#: Makes a click on any grid's thumbnail stay in the open Streamlit session: the link's URL is pushed
#: onto the browser's history and Streamlit, as for Back and Forward, reruns the page with that
#: query. No new session (a password given stays given) and no page load; a click with a modifier
#: key, or a browser without scripts, follows the link as usual. Sent once a page as its own small
#: element (``st.html(LINK_SCRIPT, unsafe_allow_javascript=True)``), so the big grid itself goes
#: through ``st.html``'s plain path.
LINK_SCRIPT = """<script>
if (!window.panelbotGridLinks) {
  window.panelbotGridLinks = true;
  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest(".panelbot-grid a[data-image]") : null;
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey
        || event.altKey) return;
    event.preventDefault();
    window.history.pushState(null, "", link.href);
    window.dispatchEvent(new PopStateEvent("popstate"));
  });
}
</script>"""


@dataclass(frozen=True)
class HtmlFragment:
    """HTML that ``st.html`` takes as it is: through ``_repr_html_``, so Streamlit does not first look
    for a file of that name or dedent half a megabyte of inline pictures (10-20 ms a page)."""

    text: str

    def _repr_html_(self) -> str:
        return self.text


@dataclass(frozen=True)
class Cell:
    """One thumbnail: the image it links to, the picture (a data URI; None when the file is missing), its prompt."""

    image_id: int
    href: str
    picture: str | None
    prompt: str


def data_uri(path: Path) -> str:
    """A WebP thumbnail file as a ``data:`` URI."""
    return "data:image/webp;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _cell(cell: Cell) -> str:
    number = f"#{cell.image_id}"
    picture = (
        f'<img src="{cell.picture}" alt="{number}" decoding="sync">' if cell.picture is not None
        else '<div class="missing" role="img" aria-label="image file missing"></div>'
    )
    return (
        f'<a role="listitem" href="{html.escape(cell.href)}" data-image="{cell.image_id}" '
        f'title="{html.escape(shorten(cell.prompt, TOOLTIP_CHARS))}">{picture}'
        f'<div class="number">{number}</div>'
        f'<div class="prompt">{html.escape(shorten(cell.prompt, CAPTION_CHARS))}</div></a>'
    )


def grid_html(cells: Sequence[Cell], label: str, *, columns: int = COLUMNS) -> str:
    """The grid as one HTML fragment (its style included), named ``label`` for screen readers."""
    body = "".join(_cell(cell) for cell in cells)
    return (
        f'{_STYLE}<div class="panelbot-grid" role="list" aria-label="{html.escape(label)}" '
        f'style="--columns:{columns}">{body}</div>'
    )
