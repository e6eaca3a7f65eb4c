"""Debian's Chromium driven by Playwright (never a downloaded browser), for the playground's page tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Screenshots of the page tests land here (CI keeps the folder as an artifact).
ARTIFACTS = Path(os.environ.get("PLAYGROUND_ARTIFACTS", REPO / "test-artifacts" / "playground"))


def chromium_path() -> str:
    """The system Chromium, or skip the test with the reason (install it with apt: chromium)."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("browser test skipped: Playwright for Python is not installed (pip install -e '.[dev]')")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("browser test skipped: no chromium on PATH (apt-get install chromium)")
    return path


@asynccontextmanager
async def browser_page(width: int = 1280, height: int = 900) -> AsyncIterator[Any]:
    """A fresh page in headless Chromium; console errors and page errors fail the test."""
    from playwright.async_api import async_playwright

    executable = chromium_path()
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            context = await browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
            page.set_default_timeout(60_000)
            yield page
        finally:
            await browser.close()
    assert errors == [], errors


async def screenshot(page: Any, name: str) -> Path:
    """Save the page as ``ARTIFACTS/name.png`` (Playwright creates the folder)."""
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
