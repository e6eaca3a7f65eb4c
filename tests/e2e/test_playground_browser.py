"""The playground's page in a real headless Chromium, with the real bot behind the local Discord.

What a member does in the page (type a slash command, click buttons, react, switch members) goes
through the emulator to the unchanged bot; the test waits on the emulator's records and on the page
showing them, never on time. Screenshots go to ``test-artifacts/playground/``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from playground import DiscordEmulator, EmuInteraction, EmuMessage, Limit, RateLimits
from playground.app import MEMBERS
from playground.web import PlaygroundPage
from tests.e2e.browser import browser_page, chromium_path, screenshot
from tests.harness import RunningBot, settings_for, start_bot

pytestmark = pytest.mark.timeout(300)


@dataclass
class Playground:
    emu: DiscordEmulator
    page: PlaygroundPage
    url: str
    bot: RunningBot | None = None

    def member(self, name: str) -> int:
        return next(u.id for u in self.emu.world.users.values() if u.username == name)


async def open_playground(rate_limits: RateLimits) -> Playground:
    emu = DiscordEmulator(rate_limits=rate_limits)
    page = PlaygroundPage(emu)
    await emu.start(routes=page.install)
    for name, moderator in MEMBERS:
        emu.add_member(name, moderator=moderator)
    return Playground(emu, page, f"http://127.0.0.1:{emu.port}/")


@pytest.fixture
async def playground(engine: Any, tmp_path: Path) -> AsyncIterator[Playground]:
    """The local Discord with Discord's rate limits, the page, and the real bot (tiny model)."""
    chromium_path()
    pg = await open_playground(RateLimits())
    try:
        pg.bot = await start_bot(pg.emu, engine, settings_for(pg.emu, tmp_path))
        yield pg
    finally:
        if pg.bot is not None:
            await pg.bot.stop()
        await pg.page.close()
        await pg.emu.stop()
    assert pg.emu.problems == [], pg.emu.problems


def results(emu: DiscordEmulator) -> list[EmuMessage]:
    """Posted results: messages with an image and a "Job N" embed footer, oldest first."""
    return [
        m
        for m in emu.messages()
        if m.attachments and m.embeds and str((m.embeds[0].get("footer") or {}).get("text", "")).startswith("Job ")
    ]


async def slash(pg: Playground, page: Any, text: str) -> EmuInteraction:
    """Type a command into the page's box and press Enter; returns the interaction the bot got."""
    before = len(pg.emu.interactions)
    composer = page.locator("#composer")
    await composer.fill(text)
    await composer.press("Enter")
    inter = await pg.emu.wait_for(lambda: len(pg.emu.interactions) > before and pg.emu.interactions[before], 30)
    await pg.emu.wait_for(lambda: inter.responded_at is not None, 30)
    return inter


async def image_loaded(page: Any, message_id: int) -> None:
    """Until the page shows the message with an image the browser actually decoded."""
    await page.wait_for_function(
        """id => [...document.querySelectorAll(`.message[data-id="${id}"] img`)]
                 .some(img => img.complete && img.naturalWidth > 0)""",
        arg=str(message_id),
    )


async def next_result(pg: Playground, count_before: int) -> EmuMessage:
    found = await pg.emu.wait_for(lambda: len(results(pg.emu)) > count_before and results(pg.emu), 120)
    return found[count_before]


async def test_imagine_buttons_reactions_and_comic_in_the_browser(playground: Playground, tmp_path: Path) -> None:
    pg = playground
    emu = pg.emu
    async with browser_page() as page:
        from playwright.async_api import expect

        await page.goto(pg.url)
        await expect(page.locator("body[data-ready='1']")).to_be_attached()
        # The command box offers what the bot registered; Tab completes; options and files follow.
        composer = page.locator("#composer")
        await composer.fill("/ima")
        await expect(page.locator("#popup .item-name", has_text="/imagine")).to_be_visible()
        await composer.press("Tab")
        await expect(composer).to_have_value("/imagine ")
        await expect(page.locator("#popup .item-name", has_text="prompt")).to_be_visible()
        await expect(page.locator('#attachments input[type="file"][data-option="image"]')).to_be_attached()
        # The style option's suggestions come from the bot (an autocomplete interaction).
        await composer.fill("/imagine prompt: a cat style: wat")
        await expect(page.locator("#popup .popup-title")).to_contain_text("suggestions from panelbot")
        await expect(page.locator("#popup .item-name", has_text="watercolor").first).to_be_visible()
        await composer.press("Escape")

        inter = await slash(pg, page, "/imagine prompt: a lighthouse --ar 3:2")
        status = await emu.wait_for(lambda: inter.original, 10)
        grid = await next_result(pg, 0)
        await image_loaded(page, grid.id)
        await emu.wait_for(lambda: "✅" in status.content, 30)
        status_node = page.locator(f'.message[data-id="{status.id}"]')
        await expect(status_node).to_contain_text("Done")
        shown = await page.evaluate(f"playground.history.filter(h => h.id === '{status.id}').map(h => h.content)")
        assert any("Queued" in text for text in shown), shown  # the first state, later edited live
        assert len(grid.attachments) == 1 and "U1" in [label for _, label, _ in grid.buttons()]  # one 2x2 grid
        await screenshot(page, "imagine-grid")

        grid_node = page.locator(f'.message[data-id="{grid.id}"]')
        for label in ("U1", "V2"):
            before = len(results(emu))
            button = grid_node.get_by_role("button", name=label, exact=True)
            if label == "U1":
                await button.click()
            else:  # keyboard: a focused button answers Enter
                await button.focus()
                await page.keyboard.press("Enter")
            made = await next_result(pg, before)
            await image_loaded(page, made.id)

        # 🔄 seeded by the bot: one more click (ours) re-rolls.
        before = len(results(emu))
        reroll = grid_node.locator('.reaction[data-emoji="🔄"]')
        await expect(reroll).to_contain_text("1")
        await reroll.click()
        await expect(reroll).to_have_class("reaction mine")
        await expect(reroll.locator(".count")).to_have_text("2")
        rerolled = await next_result(pg, before)
        await image_loaded(page, rerolled.id)

        # An image option takes a file from the picker: img2img from it.
        start_png = tmp_path / "start.png"
        grid.attachments[0].image().convert("RGB").resize((64, 64)).save(start_png)
        before = len(results(emu))
        await composer.fill("/imagine prompt: the lighthouse at night")
        await page.locator('#attachments input[data-option="image"]').set_input_files(str(start_png))
        await composer.press("Enter")
        drawn = await next_result(pg, before)
        await image_loaded(page, drawn.id)
        assert any(a.filename == "start.png" for a in emu.world.attachments.values())

        # A plain member may not delete the owner's image: refused, only to them.
        bob = pg.member("bob")
        await page.select_option("#member", str(bob))
        await grid_node.locator('button[aria-label^="🗑"]').click()
        refusal = page.locator(".message.ephemeral", has_text="can delete it")
        await expect(refusal).to_be_visible()
        await expect(refusal).to_contain_text("Only you can see this")
        await screenshot(page, "delete-refused")
        assert not emu.message(grid.id).deleted
        await page.select_option("#member", str(emu.owner_id))
        await expect(refusal).to_have_count(0)
        await expect(grid_node).to_be_visible()

        # A comic: a new one, three panels, and the rendered page.
        created = await slash(pg, page, "/comic new title: The Lighthouse")
        await expect(page.locator(f'.message[data-id="{created.original.id}"]')).to_contain_text("The Lighthouse")
        for prompt in ("a lighthouse at dusk", "the keeper climbs the stairs", "the lamp shines over the sea"):
            before = len(results(emu))
            await slash(pg, page, f"/comic panel prompt: {prompt}")
            made = await next_result(pg, before)
            await image_loaded(page, made.id)
        shown_page = await slash(pg, page, "/comic show")
        comic_page = await emu.wait_for(
            lambda: shown_page.original if shown_page.original and shown_page.original.attachments else None, 60
        )
        await image_loaded(page, comic_page.id)
        await page.locator(f'.message[data-id="{comic_page.id}"]').scroll_into_view_if_needed()
        await screenshot(page, "comic-page")


MARKDOWN_CASES = [
    (
        "**bold** *it* _it2_ __under__ ~~gone~~",
        ["<strong>bold</strong>", "<em>it</em>", "<em>it2</em>", "<u>under</u>", "<s>gone</s>"],
    ),
    ("`a *b*` and ```\nx **y**\n```", ["<code>a *b*</code>", "<pre><code>x **y**\n</code></pre>"]),
    ("||secret||", ['<span class="spoiler"']),
    ("<script>alert(1)</script>", ["&lt;script&gt;"]),
    ("[docs](https://example.com/a)", ['<a href="https://example.com/a"', ">docs</a>"]),
    ("[https://evil.example](https://example.com)", ["[https://evil.example]("]),
    ("# Big\n-# small\n> quoted", ['class="md-h1"', 'class="md-sub"', "<blockquote>quoted</blockquote>"]),
    ("\\*not italic\\*", ["*not italic*"]),
]


async def test_markdown_renders_like_discord(tmp_path: Path) -> None:
    chromium_path()
    pg = await open_playground(RateLimits())
    try:
        # A problem from before any tab was open is listed once, also after later changes.
        headers = {"Authorization": f"Bot {pg.emu.token}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http:
            url = f"{pg.emu.api_base}/channels/{pg.emu.channel_id}/messages"
            async with http.post(url, data=json.dumps({"content": 5}), headers=headers) as bad:
                assert bad.status == 400
        async with browser_page() as page:
            from playwright.async_api import expect

            await page.goto(pg.url)
            await page.locator("#composer").fill("**after** the _problem_")
            await page.locator("#composer").press("Enter")
            posted = page.locator(".message .content", has_text="after the problem")
            await expect(posted.locator("strong")).to_have_text("after")
            await expect(posted.locator("em")).to_have_text("problem")
            await expect(page.locator("#problem-list li")).to_have_count(1)
            for text, wanted in MARKDOWN_CASES:
                html = await page.evaluate("t => DiscordMarkdown.render(t, {links: true, blocks: true})", text)
                for piece in wanted:
                    assert piece in html, (text, html)
            assert "<script>" not in await page.evaluate("t => DiscordMarkdown.render(t)", "<script>x</script>")
            # Where Discord allows no masked links (titles, field names, footers) they stay as typed.
            plain = await page.evaluate("t => DiscordMarkdown.render(t, {links: false})", "[docs](https://example.com/a)")
            assert plain == "[docs](https://example.com/a)"
    finally:
        await pg.page.close()
        await pg.emu.stop()


async def test_every_problem_shows_on_the_page() -> None:
    """A body Discord's spec refuses and a request over a rate limit both appear as warnings."""
    chromium_path()
    pg = await open_playground(RateLimits(default=Limit(2, 3600.0)))
    emu = pg.emu
    try:
        async with browser_page() as page:
            from playwright.async_api import expect

            await page.goto(pg.url)
            await expect(page.locator("#status")).to_have_text("the bot is starting…")
            headers = {"Authorization": f"Bot {emu.token}", "Content-Type": "application/json"}
            url = f"{emu.api_base}/channels/{emu.channel_id}/messages"
            async with aiohttp.ClientSession() as http:
                async with http.post(url, data=json.dumps({"content": 5}), headers=headers) as bad:
                    assert bad.status == 400
                statuses = []
                for n in range(3):
                    async with http.post(url, data=json.dumps({"content": f"hello {n}"}), headers=headers) as answer:
                        statuses.append(answer.status)
                        limited = answer
                        body = await answer.json()
            # The spec-refused body used one request of the bucket too: 1 accepted, then 429s.
            assert statuses == [200, 429, 429], statuses
            assert body["retry_after"] > 0 and body["global"] is False
            assert limited.headers["X-RateLimit-Remaining"] == "0"
            problems = page.locator("#problem-list li")
            await expect(problems).to_have_count(3)
            await expect(problems.nth(0)).to_contain_text("spec:")
            await expect(problems.nth(1)).to_contain_text("rate limit: POST /channels/{channel_id}/messages")
            await expect(page.locator("#problems-toggle")).to_have_text("⚠ 3 problems")
            # The accepted message shows in the channel, live, in every open tab.
            await expect(page.locator(".message .content", has_text="hello 0")).to_be_visible()
            second = await page.context.new_page()
            await second.goto(pg.url)
            await expect(second.locator(".message .content", has_text="hello 0")).to_be_visible()
            await expect(second.locator("#problem-list li")).to_have_count(3)
            await page.locator("#composer").fill("from the first tab")
            await page.locator("#composer").press("Enter")
            await expect(second.locator(".message .content", has_text="from the first tab")).to_be_visible()
    finally:
        await pg.page.close()
        await pg.emu.stop()
