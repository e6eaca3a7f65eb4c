"""The studio (Streamlit's own AppTest) on an archive the real bot filled through the Discord emulator.

The bot runs in this process against the emulator with the tiny model; the studio pages run in
AppTest, reading the same SQLite file read-only, and generate through the bot's local API.
AppTest runs block, so they run in a thread while the bot keeps serving on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import html
import io
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import pytest
from aiohttp import web
from PIL import Image
from streamlit.testing.v1 import AppTest

from bot.local_api import start_local_api
from playground import DiscordEmulator, EmuMessage
from studio.bot_client import BotClient, BotUnavailable
from studio.settings import CONFIG_ENV, StudioSettings
from tests.harness import RunningBot, results, rows, settings_for, start_bot

REPO = Path(__file__).resolve().parents[2]
PAGES = REPO / "studio" / "pages"
CHECKER = "tests.safety_checkers:flag_keyword"
SECRET = "test-secret"
WAIT = 60
STUDIO_USER = 4242
#: The longest one AppTest run may take (a generation followed live included).
RUN_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])




async def settle(db: Path) -> None:
    """Wait (bounded) until no job is queued or running and every finished panel job is linked."""
    for _ in range(int(WAIT / 0.05)):
        pending = rows(db, "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]
        unlinked = rows(
            db, "SELECT COUNT(*) FROM comic_panels p JOIN images i ON i.job_id = p.job_id WHERE p.image_id IS NOT i.id"
        )[0][0]
        if not pending and not unlinked:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("jobs still pending")


async def imagine(emu: DiscordEmulator, user: int, prompt: str, **options: object) -> EmuMessage:
    before = len(results(emu))
    await emu.send_slash_command("imagine", {"prompt": prompt, "count": 1, **options}, user_id=user)
    message = await emu.wait_for(lambda: results(emu)[before] if len(results(emu)) > before else None, WAIT)
    await emu.wait_for(lambda: "🔄" in message.reactions, 10)
    return message


def image_of(db: Path, message: EmuMessage) -> int:
    [(image_id,)] = rows(db, "SELECT image_id FROM message_images WHERE message_id = ? ORDER BY position", message.id)
    return int(image_id)


@dataclass
class Studio:
    """A running bot with its archive filled, and the studio's config pointing at it."""

    emulator: DiscordEmulator
    bot: RunningBot
    db: Path
    config: Path
    settings: StudioSettings
    images: dict[str, int]
    comic_id: int
    comic_page: EmuMessage


def write_studio_config(path: Path, data: Path, settings: StudioSettings) -> None:
    path.write_text(
        f"""
[storage]
database = "{data / 'bot.sqlite3'}"
images_dir = "{data / 'images'}"

[comic]
panels_per_page = 6

[studio]
secret = "{settings.secret}"
api_port = {settings.api_port}
channel_id = {settings.channel_id}
user_id = {settings.user_id}
thumbnails_dir = "{data / 'thumbnails'}"
""",
        encoding="utf-8",
    )


@pytest.fixture
async def studio(
    emulator: DiscordEmulator, engine: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Studio]:
    """The bot (keyword safety checker) with a filled archive; the studio's config in the environment."""
    running = await start_bot(emulator, engine, settings_for(
        emulator, tmp_path, safety={"checker": CHECKER},
        # The tiny model reads 77 characters at most: a short style of our own.
        styles={"noir": {"prefix": "noir", "negative": "color"}},
    ))
    try:
        db = tmp_path / "bot.sqlite3"
        alice, bob = emulator.add_member("alice"), emulator.add_member("bob")
        lighthouse = await imagine(emulator, alice, "a lighthouse at dusk", seed=11, style="noir")
        forest = await imagine(emulator, bob, "a misty forest", seed=12)
        await imagine(emulator, alice, "a forbidden castle", seed=13)  # flagged: withheld
        deleted = await imagine(emulator, alice, "a deleted dune", seed=14)
        deleted_id = image_of(db, deleted)
        await emulator.add_reaction(deleted.id, "❌", user_id=alice)
        await emulator.wait_for(lambda: deleted.deleted or None, WAIT)
        await emulator.add_reaction(lighthouse.id, "🎨", user_id=alice)
        await emulator.add_reaction(lighthouse.id, "🔍", user_id=alice)
        # The deleted result no longer counts among the channel's messages.
        await emulator.wait_for(lambda: len(results(emulator)) >= 5 or None, WAIT)
        comic = await emulator.send_slash_command("comic", {"title": "Night Shift"}, user_id=bob, subcommand="new")
        await emulator.wait_for(lambda: comic.original if comic.original and not comic.original.loading else None, WAIT)
        await emulator.send_slash_command(
            "comic", {"prompt": "a diner at night", "caption": "3 am."}, user_id=bob, subcommand="panel"
        )
        await emulator.wait_for(lambda: len(results(emulator)) >= 6 or None, WAIT)
        await settle(db)
        [(comic_id,)] = rows(db, "SELECT id FROM comics")
        show = await emulator.send_slash_command("comic", {"page": 1}, user_id=bob, subcommand="show")
        page = await emulator.wait_for(
            lambda: next((m for m in show.followups if m.attachments), None)
            or (show.original if show.original and show.original.attachments else None),
            WAIT,
        )
        ids = {
            "lighthouse": image_of(db, lighthouse),
            "forest": image_of(db, forest),
            "withheld": rows(db, "SELECT id FROM images WHERE safety = 'withhold'")[0][0],
            "deleted": deleted_id,
            "variation": rows(db, "SELECT id FROM images WHERE json_extract(params_json, '$.kind') = 'img2img' "
                                  "AND parent_image_id IS NOT NULL")[0][0],
            "upscale": rows(db, "SELECT id FROM images WHERE json_extract(params_json, '$.kind') = 'upscale'")[0][0],
            "panel": rows(db, "SELECT image_id FROM comic_panels")[0][0],
        }
        settings = StudioSettings(
            secret=SECRET, api_port=free_port(), channel_id=emulator.channel_id, user_id=STUDIO_USER,
            thumbnails_dir=tmp_path / "thumbnails",
        )
        config = tmp_path / "studio.toml"
        write_studio_config(config, tmp_path, settings)
        monkeypatch.setenv(CONFIG_ENV, str(config))
        yield Studio(emulator, running, db, config, settings, ids, int(comic_id), page)
    finally:
        await running.stop()


async def run(app: AppTest) -> AppTest:
    """Run (or re-run) the page in a thread: the bot keeps serving on this event loop meanwhile."""
    return await asyncio.to_thread(app.run, timeout=RUN_TIMEOUT_S)


def page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / name), default_timeout=RUN_TIMEOUT_S)


def grid(app: AppTest, label: str) -> list[tuple[int, str]]:
    """The thumbnails of the grid named ``label``: each image's id and the link it opens."""
    found = [e.value for e in app.html if f'aria-label="{label}"' in e.value]
    assert len(found) <= 1, found
    links = re.findall(r'<a role="listitem" href="([^"]+)" data-image="(\d+)"', found[0]) if found else []
    return [(int(image_id), html.unescape(href)) for href, image_id in links]


def gallery_ids(app: AppTest) -> list[int]:
    return [image_id for image_id, _ in grid(app, "Gallery")]


def follow(href: str) -> AppTest:
    """What clicking a thumbnail opens: a new page load (a new session) of the gallery page at that link."""
    assert href.startswith("?"), href
    opened = page("gallery.py")
    for name, value in parse_qsl(href[1:]):
        opened.query_params[name] = value
    return opened


async def test_gallery_order_search_filters_and_image_page(studio: Studio) -> None:
    ids = studio.images
    app = await run(page("gallery.py"))
    assert not app.exception, app.exception
    shown = gallery_ids(app)
    expected = sorted(i for name, i in ids.items() if name not in ("withheld", "deleted"))
    assert shown == expected[::-1]  # newest first; the withheld and the deleted image never show
    assert ids["withheld"] not in shown and ids["deleted"] not in shown
    assert rows(studio.db, "SELECT COUNT(*) FROM images WHERE id IN (?, ?)", ids["withheld"], ids["deleted"]) == [(2,)]
    # Each thumbnail is inline in the page: a WebP picture no bigger than a thumbnail.
    pictures = re.findall(r'<img src="data:image/webp;base64,([^"]+)"', app.html[0].value)
    assert len(pictures) == len(shown)
    assert all(max(Image.open(io.BytesIO(base64.b64decode(p))).size) <= 256 for p in pictures)

    app.text_input(key="search").input("FOREST")
    await run(app)
    assert gallery_ids(app) == [ids["forest"]]
    app.text_input(key="search").input("")
    [bob] = rows(studio.db, "SELECT requester_id FROM images WHERE id = ?", ids["forest"])[0]
    app.selectbox(key="member").select(bob)
    await run(app)
    assert gallery_ids(app) == sorted([ids["forest"], ids["panel"]], reverse=True)
    app.selectbox(key="member").select("Any")
    app.selectbox(key="kind").select("upscale")
    await run(app)
    assert gallery_ids(app) == [ids["upscale"]]
    app.selectbox(key="kind").select("panel")
    await run(app)
    assert gallery_ids(app) == [ids["panel"]]
    app.selectbox(key="kind").select("Any")
    app.selectbox(key="style").select("noir")
    await run(app)
    # Variations and upscales keep their source's style.
    assert gallery_ids(app) == sorted([ids["lighthouse"], ids["variation"], ids["upscale"]], reverse=True)

    # Thumbnails link to their image's page, keeping the gallery's filters for the way back.
    links = dict(grid(app, "Gallery"))
    assert links[ids["lighthouse"]] == f"?image={ids['lighthouse']}&style=noir"

    # The image page: every parameter, the /imagine line, lineage as clickable thumbnails, a download.
    detail = follow(links[ids["lighthouse"]])
    await run(detail)
    assert not detail.exception, detail.exception
    assert detail.header[0].value == f"Image #{ids['lighthouse']}"
    table = detail.table[0].value
    values = dict(zip(table["Parameter"], table["Value"], strict=True))
    assert values["Seed"] == "11" and values["Size"] == "64x64" and values["Style"] == "noir"
    assert values["Model"] == "tiny-sd" and values["Kind"] == "txt2img"
    assert "lighthouse at dusk" in values["Prompt"]
    line = detail.code[0].value
    assert line.startswith("/imagine prompt: ") and "--seed 11" in line and "--size 64x64" in line
    assert [i for i, _ in grid(detail, "Variations")] == [ids["variation"]]
    assert [i for i, _ in grid(detail, "Upscales")] == [ids["upscale"]]
    assert len(detail.get("download_button")) == 1
    upscale = follow(dict(grid(detail, "Upscales"))[ids["upscale"]])
    await run(upscale)
    assert upscale.header[0].value == f"Image #{ids['upscale']}"
    assert [i for i, _ in grid(upscale, "Made from")] == [ids["lighthouse"]]
    # "← Gallery" comes back to the gallery as it was left: filtered by the style.
    next(b for b in upscale.button if b.label == "← Gallery").click()
    await run(upscale)
    assert not upscale.exception, upscale.exception
    assert upscale.header[0].value == "Gallery"
    assert gallery_ids(upscale) == sorted([ids["lighthouse"], ids["variation"], ids["upscale"]], reverse=True)
    assert upscale.selectbox(key="style").value == "noir"

    for name in ("withheld", "deleted"):
        hidden = page("gallery.py")
        hidden.query_params["image"] = str(ids[name])
        await run(hidden)
        assert hidden.error[0].value == f"Image #{ids[name]} is not in the gallery."
        assert not hidden.table


async def test_comics_list_and_reader_render_like_comic_show(studio: Studio) -> None:
    app = await run(page("comics.py"))
    assert not app.exception, app.exception
    assert [s.value for s in app.subheader] == ["Night Shift"]
    assert "1 panel(s)" in app.caption[0].value
    app.button(key=f"read-{studio.comic_id}").click()
    await run(app)
    assert app.header[0].value == "Night Shift"
    assert len(app.get("download_button")) == 2
    from studio import comics_render
    from studio.archive import Archive

    [studio_page] = comics_render.pages_png(Archive(studio.db), studio.comic_id, studio.db.parent / "images", 6)
    shown = np.asarray(Image.open(io.BytesIO(studio_page)).convert("RGB"))
    posted = np.asarray(studio.comic_page.attachments[0].image().convert("RGB"))
    assert shown.shape == posted.shape == (2339, 1654, 3)
    assert np.array_equal(shown, posted)  # the same renderer as /comic show


async def test_generate_refuses_like_imagine_and_queues_through_the_bot(studio: Studio) -> None:
    bad_prompt = "a lighthouse --ar banana"
    inter = await studio.emulator.send_slash_command(
        "imagine", {"prompt": bad_prompt}, user_id=studio.emulator.add_member("carol")
    )
    reply = await studio.emulator.wait_for(lambda: inter.original, 10)
    assert reply.ephemeral

    app = await run(page("generate.py"))
    assert app.warning and "not running" in app.warning[0].value  # no API yet

    api: web.AppRunner | None = await start_local_api(studio.bot.bot, studio.settings)
    assert api is not None
    try:
        stranger = BotClient(dataclasses.replace(studio.settings, secret="guess"))
        with pytest.raises(BotUnavailable, match="secret"):
            await asyncio.to_thread(stranger.status)
        app = await run(page("generate.py"))
        assert not app.exception and not app.warning, (app.exception, app.warning)
        app.text_area(key="prompt").input(bad_prompt)
        app.button[0].click()
        await run(app)
        assert [e.value for e in app.error] == [reply.content]  # the same message as /imagine
        assert rows(studio.db, "SELECT COUNT(*) FROM jobs WHERE requester_id = ?", STUDIO_USER) == [(0,)]

        app.text_area(key="prompt").input("a red kite over the dunes")
        app.number_input(key="seed").set_value(77)
        app.number_input(key="count").set_value(1)
        app.button[0].click()
        await run(app)
        assert not app.exception, app.exception
        [(job_id, status, channel)] = rows(
            studio.db, "SELECT id, status, channel_id FROM jobs WHERE requester_id = ?", STUDIO_USER
        )
        assert status == "done" and channel == studio.emulator.channel_id
        [(image_id, seed)] = rows(studio.db, "SELECT id, seed FROM images WHERE job_id = ?", job_id)
        assert seed == 77
        assert f"#{image_id}" in app.success[0].value
        posted = [m for m in results(studio.emulator) if f"Job {job_id}" in m.embeds[0]["footer"]["text"]]
        assert len(posted) == 1 and posted[0].attachments  # posted to the studio's channel

        gallery = await run(page("gallery.py"))
        assert gallery_ids(gallery)[0] == image_id  # lands in the gallery, newest first
    finally:
        await api.cleanup()


async def test_password_gate_and_navigation(studio: Studio) -> None:
    text = studio.config.read_text(encoding="utf-8").replace("[studio]\n", '[studio]\npassword = "open sesame"\n')
    studio.config.write_text(text, encoding="utf-8")
    app = await run(AppTest.from_file(str(REPO / "studio" / "app.py"), default_timeout=RUN_TIMEOUT_S))
    assert not app.exception, app.exception
    assert app.title[0].value == "panelbot studio" and not app.button
    app.text_input(key="studio_password").input("wrong")
    await run(app)
    assert app.error[0].value == "That password is not right."
    app.text_input(key="studio_password").input("open sesame")
    await run(app)
    assert not app.exception, app.exception
    assert app.header[0].value == "Gallery" and gallery_ids(app)


#: True once the gallery grid shows exactly these images (in this order), every picture decoded.
GRID_SHOWS = """(ids) => {
    const links = [...document.querySelectorAll('.panelbot-grid[aria-label="Gallery"] a')];
    const shown = links.map((link) => Number(link.dataset.image));
    const painted = links.every((link) => { const image = link.querySelector('img');
        return image !== null && image.complete && image.naturalWidth > 0; });
    return painted && JSON.stringify(shown) === JSON.stringify(ids);
}"""


async def test_gallery_in_a_browser_opens_an_image_and_comes_back(studio: Studio, tmp_path: Path) -> None:
    """``streamlit run studio/app.py`` in Chromium: thumbnails paint, a click opens the image, filters narrow."""
    from studio.launch import serve
    from tests.e2e.browser import browser_page, screenshot

    ids = studio.images
    everything = sorted((i for name, i in ids.items() if name not in ("withheld", "deleted")), reverse=True)
    server = serve(studio.config, log=tmp_path / "streamlit.log")
    url = await asyncio.to_thread(server.__enter__)
    try:
        async with browser_page(1440, 900) as tab:
            await tab.goto(url)
            await tab.wait_for_function(GRID_SHOWS, arg=everything)
            await screenshot(tab, "studio-gallery")
            await tab.evaluate("window.sameSession = true")  # gone if a click loaded a new page
            await tab.locator(f'.panelbot-grid a[data-image="{ids["lighthouse"]}"]').click()
            await tab.get_by_role("heading", name=f"Image #{ids['lighthouse']}").wait_for()
            assert tab.url.endswith(f"/?image={ids['lighthouse']}")
            assert await tab.evaluate("window.sameSession === true")  # the click stayed in the session
            await tab.locator(f'.panelbot-grid[aria-label="Upscales"] a[data-image="{ids["upscale"]}"]').click()
            await tab.get_by_role("heading", name=f"Image #{ids['upscale']}").wait_for()
            await tab.get_by_role("button", name="← Gallery").click()
            await tab.wait_for_function(GRID_SHOWS, arg=everything)

            await tab.get_by_role("button", name=re.compile("Filters")).click()
            search = tab.get_by_label("Search prompts")
            await search.fill("forest")
            await search.press("Enter")
            await tab.wait_for_function(GRID_SHOWS, arg=[ids["forest"]])
            assert "search=forest" in tab.url  # the URL keeps the filter: Back and bookmarks come back to it
            await tab.get_by_role("heading", name="Gallery").click()  # closes the popover
            await tab.locator(f'.panelbot-grid a[data-image="{ids["forest"]}"]').click()
            await tab.get_by_role("heading", name=f"Image #{ids['forest']}").wait_for()
            await tab.go_back()
            await tab.wait_for_function(GRID_SHOWS, arg=[ids["forest"]])
            assert await tab.evaluate("window.sameSession === true")
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)
