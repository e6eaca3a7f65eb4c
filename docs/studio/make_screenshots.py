"""Screenshots of the studio's pages, in headless Chromium, on an archive the real bot filled.

    python docs/studio/make_screenshots.py

Runs the bot in-process against the local Discord emulator (the playground) with the tiny
random-weight model (so the pictures are noise: no model is downloaded), fills the archive
through slash commands and reactions, starts the bot's local API, serves
``streamlit run studio/app.py`` on a free 127.0.0.1 port and saves one PNG per page here:
gallery.png, image.png, comics.png, generate.png. Needs Debian's ``chromium`` package and the
``playwright`` Python package (its own browser download is not used).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from playwright.async_api import Page, async_playwright  # noqa: E402

from bot.local_api import start_local_api  # noqa: E402
from generation.engine import DiffusionEngine  # noqa: E402
from generation.tiny_model import save_tiny_pipeline  # noqa: E402
from playground import DiscordEmulator, EmuMessage  # noqa: E402
from studio.launch import free_port, serve  # noqa: E402
from studio.settings import StudioSettings  # noqa: E402
from tests.harness import settings_for, start_bot  # noqa: E402

OUT = Path(__file__).resolve().parent
WAIT = 120
PROMPTS = [
    ("a lighthouse at dusk", "noir"), ("a misty forest", None), ("a red kite over dunes", None),
    ("a harbour in the rain", "noir"), ("a clockwork owl", None), ("a night market", None),
]


def results(emu: DiscordEmulator) -> list[EmuMessage]:
    return [
        m for m in emu.messages()
        if m.embeds and (m.embeds[0].get("footer") or {}).get("text", "").startswith("Job ")
    ]


async def until(emu: DiscordEmulator, count: int) -> None:
    await emu.wait_for(lambda: len(results(emu)) >= count or None, WAIT)


async def fill(emu: DiscordEmulator) -> int:
    """Images, a variation, an upscale and a three-panel comic; the comic's id."""
    alice, bob = emu.add_member("alice"), emu.add_member("bob")
    for number, (prompt, style) in enumerate(PROMPTS):
        options: dict[str, object] = {"prompt": prompt, "count": 1, "seed": 100 + number}
        if style:
            options["style"] = style
        await emu.send_slash_command("imagine", options, user_id=alice if number % 2 == 0 else bob)
        await until(emu, number + 1)
    first = results(emu)[0]
    await emu.wait_for(lambda: "🔄" in first.reactions or None, WAIT)
    await emu.add_reaction(first.id, "🎨", user_id=alice)
    await until(emu, len(PROMPTS) + 1)
    await emu.add_reaction(first.id, "🔍", user_id=alice)
    await until(emu, len(PROMPTS) + 2)
    made = len(PROMPTS) + 2
    new = await emu.send_slash_command("comic", {"title": "Night Shift"}, user_id=bob, subcommand="new")
    await emu.wait_for(lambda: new.original if new.original and not new.original.loading else None, WAIT)
    panels = [
        {"prompt": "a diner at night", "caption": "3 am. The coffee is cold."},
        {"prompt": "a cook behind the counter", "dialogue": "Another long shift?", "speaker": "Mira"},
        {"prompt": "rain on the window", "dialogue": "They all are.", "speaker": "Sam"},
    ]
    for panel in panels:
        await emu.send_slash_command("comic", panel, user_id=bob, subcommand="panel")
        made += 1
        await until(emu, made)
    return 1


async def shoot(page: Page, url: str, name: str, ready: str) -> None:
    await page.goto(url)
    await page.get_by_text(ready, exact=False).first.wait_for(timeout=WAIT * 1000)
    await page.wait_for_function(
        "() => [...document.querySelectorAll('img')].every((image) => image.complete)", timeout=WAIT * 1000
    )
    await page.wait_for_timeout(500)
    await page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print("wrote", OUT / f"{name}.png")


async def main() -> None:
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("needs Debian's chromium package (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        engine = DiffusionEngine(str(save_tiny_pipeline(data / "tiny-sd")), device="cpu", dtype="float32")
        engine.load()
        emu = DiscordEmulator()
        await emu.start()
        settings = settings_for(
            emu, data, styles={"noir": {"prefix": "noir", "negative": "color", "description": "film noir"}},
        )
        bot = await start_bot(emu, engine, settings)
        api = None
        try:
            comic_id = await fill(emu)
            studio = StudioSettings(
                secret="screenshots", api_port=free_port(), channel_id=emu.channel_id, user_id=4242,
                thumbnails_dir=data / "thumbnails",
            )
            api = await start_local_api(bot.bot, studio)
            config = data / "config.toml"
            config.write_text(
                f'[storage]\ndatabase = "{data / "bot.sqlite3"}"\nimages_dir = "{data / "images"}"\n'
                f'[studio]\nsecret = "{studio.secret}"\napi_port = {studio.api_port}\n'
                f'channel_id = {studio.channel_id}\nuser_id = {studio.user_id}\n'
                f'thumbnails_dir = "{studio.thumbnails_dir}"\n',
                encoding="utf-8",
            )
            server = serve(config, log=data / "streamlit.log")
            url = await asyncio.to_thread(server.__enter__)
            try:
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(executable_path=executable)
                    page = await browser.new_page(viewport={"width": 1440, "height": 900})
                    await shoot(page, url, "gallery", "Page 1")
                    await shoot(page, f"{url}/?image=1", "image", "Make it again")
                    await shoot(page, f"{url}/comics?comic={comic_id}", "comics", "Download CBZ")
                    await page.goto(f"{url}/generate")
                    await page.locator("textarea").first.fill("a paper boat on a pond --ar 3:2")
                    await page.get_by_role("button", name="Generate").click()
                    await page.get_by_text("is done").wait_for(timeout=WAIT * 1000)
                    await page.wait_for_timeout(500)
                    await page.screenshot(path=str(OUT / "generate.png"), full_page=True)
                    print("wrote", OUT / "generate.png")
                    await browser.close()
            finally:
                await asyncio.to_thread(server.__exit__, None, None, None)
        finally:
            if api is not None:
                await api.cleanup()
            await bot.stop()
            await emu.stop()


if __name__ == "__main__":
    asyncio.run(main())
