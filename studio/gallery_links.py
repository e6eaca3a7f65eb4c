"""The gallery's place in its URL: filters and page as query parameters, and links to one image.

A thumbnail is a link (``?image=ID``) that moves the open session to that URL (a new page load
where scripts are off). The gallery therefore keeps what it shows in the URL as well as in the
session (``?page=3&search=dragon&kind=variation``): the image page's "← Gallery", the browser's
Back button, a bookmark or a shared link all come back to the same filters and page. Nothing here
imports Streamlit: the gallery page reads and writes ``st.query_params`` with these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from studio.archive import KINDS, Filters

#: The query parameter that opens one image's page.
IMAGE = "image"
#: Filters held as whole numbers, and those held as text.
_NUMBERS = ("guild_id", "channel_id", "requester_id")
_TEXTS = ("search", "model", "style")
#: Their names in the URL.
_NAMES = {"search": "search", "guild_id": "server", "channel_id": "channel", "requester_id": "member",
          "model": "model", "style": "style", "kind": "kind"}


@dataclass(frozen=True)
class GalleryPlace:
    """What the gallery shows: its filters, the first and last day of the date filter, and the page."""

    filters: Filters = field(default_factory=Filters)
    first_day: date | None = None
    last_day: date | None = None
    page: int = 0


def day_range(first_day: date | None, last_day: date | None) -> tuple[float | None, float | None]:
    """The Unix times of a range of whole days (UTC): from the first day's start to the last day's end."""
    if first_day is None or last_day is None:
        return None, None
    since = datetime.combine(first_day, time(), UTC).timestamp()
    until = datetime.combine(last_day + timedelta(days=1), time(), UTC).timestamp()
    return since, until


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _number(text: str | None) -> int | None:
    return int(text) if text and text.lstrip("-").isdigit() else None


def place_from_query(query: Mapping[str, str]) -> GalleryPlace:
    """The gallery place a URL's query names; anything unreadable is left out (no narrowing)."""
    values: dict[str, object] = {}
    for name in _NUMBERS:
        values[name] = _number(query.get(_NAMES[name]))
    for name in _TEXTS:
        values[name] = query.get(_NAMES[name]) or (None if name != "search" else "")
    kind = query.get(_NAMES["kind"])
    values["kind"] = kind if kind in KINDS else None
    first_day, last_day = _day(query.get("from")), _day(query.get("to"))
    if first_day is None or last_day is None or last_day < first_day:
        first_day = last_day = None
    since, until = day_range(first_day, last_day)
    filters = Filters(since=since, until=until, **values)  # type: ignore[arg-type]
    page = _number(query.get("page"))
    return GalleryPlace(filters, first_day, last_day, max(page - 1, 0) if page else 0)


def place_query(place: GalleryPlace) -> dict[str, str]:
    """The query parameters naming a gallery place (defaults left out; pages counted from 1)."""
    query: dict[str, str] = {}
    filters = place.filters
    for name in (*_TEXTS[:1], *_NUMBERS, *_TEXTS[1:], "kind"):
        value = getattr(filters, name)
        if value not in (None, ""):
            query[_NAMES[name]] = str(value)
    if place.first_day is not None and place.last_day is not None:
        query["from"], query["to"] = place.first_day.isoformat(), place.last_day.isoformat()
    if place.page > 0:
        query["page"] = str(place.page + 1)
    return query


def filters_on(place: GalleryPlace) -> int:
    """How many filters narrow the gallery (the date range counts once)."""
    return len(place_query(place).keys() - {"page", "to"})


def image_link(image_id: int, place: GalleryPlace) -> str:
    """The relative link that opens an image's page and whose "← Gallery" returns to ``place``."""
    return "?" + urlencode({IMAGE: str(image_id), **place_query(place)})

