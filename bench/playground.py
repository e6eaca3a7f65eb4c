"""Benchmark: the playground as a user meets it (``run_bot.py --playground --tiny``).

Run from the repository root (needs Debian's ``chromium`` and Playwright for Python)::

    python bench/playground.py [--commands 20]

Measures, in a real headless Chromium:

- start to usable: from starting the command to the page showing the bot online with its commands,
  on a fresh folder (the tiny model is built first) and again with the model already built;
- Enter to acknowledgement: from pressing Enter on ``/imagine`` in the page to the bot's answer
  appearing in the page, over ``--commands`` commands (members take turns, as the per-member queue
  limit would refuse a 11th job of one member); p50 and p99.

Prints a table, then one JSON line with the figures in milliseconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from typing import Any

REPO = Path(__file__).resolve().parents[1]

ENTER_TO_ACK = """async (text) => {
  const composer = document.querySelector('#composer');
  composer.value = text;
  composer.dispatchEvent(new Event('input'));
  const known = new Set([...document.querySelectorAll('.message[data-id]')].map((n) => n.dataset.id));
  return await new Promise((resolve) => {
    const observer = new MutationObserver(() => {
      const fresh = [...document.querySelectorAll('.message[data-id]')]
        .find((n) => !known.has(n.dataset.id) && n.querySelector('.used'));
      if (fresh) { observer.disconnect(); resolve(performance.now() - t0); }
    });
    observer.observe(document.querySelector('#messages'), { childList: true, subtree: true });
    const t0 = performance.now();
    composer.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
  });
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(folder: Path, port: int, lines: dict[str, float]) -> subprocess.Popen[bytes]:
    """The playground's own process; ``lines`` gets when it printed its URL and its ready line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("DISCORD_TOKEN", None)
    command = [sys.executable, str(REPO / "run_bot.py"), "--playground", "--tiny", "--port", str(port)]
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            for prefix in ("Playground: ", "Playground ready"):
                if raw.decode(errors="replace").startswith(prefix):
                    lines.setdefault(prefix.strip(": "), time.monotonic())

    threading.Thread(target=read, daemon=True).start()
    return process


def until_usable(browser: Any, url: str, started: float, deadline_s: float = 300) -> tuple[float, Any]:
    """Seconds from ``started`` until the page loads and shows the bot ready; and the page."""
    page = browser.new_page()
    while True:
        try:
            page.goto(url, timeout=2000)
            break
        except Exception:
            if time.monotonic() - started > deadline_s:
                raise
            time.sleep(0.05)
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=deadline_s * 1000)
    return time.monotonic() - started, page


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=20)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        print("bench/playground.py needs chromium on PATH", file=sys.stderr)
        return 1
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        folder = Path(tmp)
        for label in ("start_fresh_ms", "start_model_built_ms"):
            port = free_port()
            started = time.monotonic()
            lines: dict[str, float] = {}
            process = start(folder, port, lines)
            try:
                seconds, page = until_usable(browser, f"http://127.0.0.1:{port}", started)
                figures[label] = round(seconds * 1000)
                figures[label.replace("_ms", "_url_printed_ms")] = round((lines["Playground"] - started) * 1000)
                figures[label.replace("_ms", "_ready_line_ms")] = round((lines["Playground ready"] - started) * 1000)
                if label == "start_model_built_ms":
                    members = page.eval_on_selector_all("#member option", "options => options.map((o) => o.value)")
                    acks: list[float] = []
                    for n in range(args.commands):
                        page.select_option("#member", members[n % len(members)])
                        acks.append(page.evaluate(ENTER_TO_ACK, f"/imagine prompt: bench lighthouse {n}"))
                    figures["enter_to_ack_p50_ms"] = round(statistics.median(acks), 1)
                    figures["enter_to_ack_p99_ms"] = round(percentile(acks, 0.99), 1)
                    figures["enter_to_ack_max_ms"] = round(max(acks), 1)
                    figures["commands"] = len(acks)
                    problems = page.eval_on_selector_all("#problem-list li", "items => items.map((i) => i.textContent)")
                    figures["problems"] = len(problems)
                page.close()
            finally:
                stop(process)
        browser.close()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    for key, name in (("start_fresh", "fresh folder (tiny model built)"), ("start_model_built", "model already built")):
        print(
            f"start, {name}: URL printed {figures[key + '_url_printed_ms'] / 1000:.1f} s, "
            f"ready line {figures[key + '_ready_line_ms'] / 1000:.1f} s, "
            f"usable page {figures[key + '_ms'] / 1000:.1f} s"
        )
    print(
        f"Enter to the bot's acknowledgement in the page, {figures['commands']} /imagine: "
        f"p50 {figures['enter_to_ack_p50_ms']} ms, p99 {figures['enter_to_ack_p99_ms']} ms"
    )
    print(f"problems shown on the page: {figures['problems']}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
