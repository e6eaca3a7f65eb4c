"""The README's playground one-liner, started as its own process, and the page it serves."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.e2e.browser import browser_page, chromium_path, screenshot

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

pytestmark = pytest.mark.timeout(420)


def readme_playground_line() -> str:
    """The Quick start's first command: the one line that sets up and starts the playground."""
    lines = [line for line in README.read_text(encoding="utf-8").splitlines() if "run_bot.py --playground" in line]
    assert len(lines) == 1, lines
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_readme_line_is_one_command_without_a_token() -> None:
    line = readme_playground_line()
    steps = [step.strip() for step in line.split("&&")]
    assert steps[0] == "python3 -m venv .venv" and steps[1].startswith(".venv/bin/pip install -e .")
    assert steps[-1].startswith(".venv/bin/python run_bot.py --playground")
    assert "--tiny" in steps[-1]  # offline on a fresh machine: no model download
    assert "TOKEN" not in line and "--config" not in line


async def test_readme_playground_command_serves_the_page(tmp_path: Path) -> None:
    """The line's last step (the venv and install steps are this test run's own environment)."""
    chromium_path()
    start = shlex.split(readme_playground_line().split("&&")[-1])
    assert start[:2] == [".venv/bin/python", "run_bot.py"]
    port = free_port()
    command = [sys.executable, str(REPO / "run_bot.py"), *start[2:], "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("DISCORD_TOKEN", None)
    process = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output: list[str] = []
    ready = asyncio.Event()

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            output.append(line)
            if line.startswith("Playground ready"):
                ready.set()

    reader = asyncio.create_task(read())
    try:
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({waiting, reader}, timeout=240, return_when=asyncio.FIRST_COMPLETED)
        assert ready.is_set(), "no 'Playground ready' line:\n" + "\n".join(output[-40:])
        url = f"http://127.0.0.1:{port}"
        assert any(line.startswith(f"Playground: {url}") for line in output), output[:5]
        async with browser_page() as page:
            from playwright.async_api import expect

            await page.goto(url)
            await expect(page.locator("body[data-ready='1']")).to_be_attached()
            await expect(page.locator("#channels button")).to_have_count(3)
            for name in ("general", "nsfw-art", "comics"):
                await expect(page.locator("#channels button", has_text=name)).to_have_count(1)
            await page.locator("#composer").fill("/imagine prompt: a lighthouse")
            await page.locator("#composer").press("Enter")
            answer = page.locator(".message", has_text="a lighthouse")
            await expect(answer.first).to_be_visible()
            await expect(page.locator("#problems-toggle")).to_be_hidden()
            await screenshot(page, "readme-command")
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 90) == 0, "\n".join(output[-40:])
        assert (tmp_path / "data" / "playground" / "bot.sqlite3").is_file()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
