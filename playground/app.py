"""``python run_bot.py --playground``: the whole bot, no Discord token, in a local Discord in the browser.

Starts the emulator (with Discord's checks on, rate limits included) on ``127.0.0.1:PORT``, serves
the page there too, and runs the unchanged bot against it with the config's model and settings
(``config.toml`` when present, else ``config.example.toml``). The playground keeps its own
database under ``data/playground/``, new on every start (the local guild is new too).
``--tiny`` builds and uses the tiny random-weight model: an instant, offline look.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import shutil
import signal
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .ratelimit import RateLimits
from .server import DiscordEmulator
from .web import PlaygroundPage

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 8080
#: The members the page can switch between (besides the server owner).
MEMBERS = (("mia", True), ("alice", False), ("bob", False))


def playground_config(
    raw: dict[str, Any], emu: DiscordEmulator, data_dir: Path, *, tiny_model: Path | None
) -> dict[str, Any]:
    """The config's sections, pointed at the local Discord and the playground's own storage."""
    out = {name: dict(values) if isinstance(values, dict) else values for name, values in raw.items()}
    out["discord"] = {
        **out.get("discord", {}),
        "token": emu.token,
        "guild_ids": [emu.guild_id],
        "api_base": emu.api_base,
        "gateway_url": emu.gateway_url,
    }
    out["storage"] = {"database": str(data_dir / "bot.sqlite3"), "images_dir": str(data_dir / "images")}
    if tiny_model is not None:
        out["model"] = {
            **out.get("model", {}),
            "id": str(tiny_model),
            "device": "cpu",
            "dtype": "float32",
            "devices": [],
            "preview_decoder": "",
            "upscaler": "",
        }
    return out


def read_config(path: Path | None) -> tuple[Path, dict[str, Any]]:
    """``path``, else ``config.toml`` if present, else the shipped ``config.example.toml``."""
    if path is None:
        path = Path("config.toml") if Path("config.toml").is_file() else REPO / "config.example.toml"
    return path, tomllib.loads(path.read_text(encoding="utf-8"))


def ensure_tiny_model(folder: Path) -> Path:
    """The tiny random-weight model in ``folder``, built there (in seconds, offline) when missing."""
    if not (folder / "model_index.json").is_file():
        from generation.tiny_model import save_tiny_pipeline

        log.info("building the tiny model in %s", folder)
        save_tiny_pipeline(folder)
    return folder


def _as_kwargs(section: Any) -> dict[str, Any]:
    dump = getattr(section, "model_dump", None)
    return dict(dump()) if callable(dump) else dataclasses.asdict(section)


async def serve(
    *,
    port: int,
    config: Path | None,
    tiny: bool,
    data_dir: Path,
    stop: asyncio.Event,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the local Discord, the page and the bot until ``stop`` is set."""
    from bot.bot import ArtBot
    from bot.config import parse_settings
    from generation.workers import build_queue, load_engines
    from storage import Storage

    started = time.monotonic()
    config_path, raw = read_config(config)
    emu = DiscordEmulator(rate_limits=RateLimits())
    page = PlaygroundPage(emu)
    await emu.start(port=port, routes=page.install)
    url = f"http://127.0.0.1:{emu.port}"
    announce(f"Playground: {url}  (settings from {config_path.name}; Ctrl-C stops)")
    for name, moderator in MEMBERS:
        emu.add_member(name, moderator=moderator)
    emu.world.add_channel("comics")  # beside #general and the age-restricted #nsfw-art
    try:
        tiny_model = ensure_tiny_model(data_dir.parent / "tiny-sd") if tiny else None
        shutil.rmtree(data_dir, ignore_errors=True)  # the local guild is new: so is its database
        settings = parse_settings(playground_config(raw, emu, data_dir, tiny_model=tiny_model), env={})
        storage = await Storage.open(settings.storage.database, settings.storage.images_dir)
        try:
            model = settings.model
            engines = await load_engines(
                model.id, model.all_devices(), dtype=model.dtype, preview_decoder=model.preview_decoder,
                models=settings.model_specs(), max_loaded_models=settings.queue.max_loaded_models,
            )
            queue = build_queue(engines, **_as_kwargs(settings.queue))
            bot = ArtBot(settings, storage=storage, queue=queue, model=engines[0])
            async with bot:
                client = asyncio.create_task(bot.start(settings.discord.token), name="discord-client")
                waiter = asyncio.create_task(stop.wait(), name="stop-signal")
                ready = asyncio.create_task(emu.wait_for(lambda: emu.gateway.ready and emu.commands(emu.guild_id), 600))
                await asyncio.wait({client, waiter, ready}, return_when=asyncio.FIRST_COMPLETED)
                if ready.done() and not ready.cancelled() and ready.exception() is None:
                    announce(f"Playground ready in {time.monotonic() - started:.1f}s: open {url}")
                ready.cancel()
                await asyncio.wait({client, waiter}, return_when=asyncio.FIRST_COMPLETED)
                log.info("shutting down...")
                await bot.close()
                waiter.cancel()
                if client.done():
                    client.result()
                else:
                    await asyncio.gather(client, return_exceptions=True)
        finally:
            await storage.close()
    finally:
        await page.close()
        await emu.stop()


def run(args: argparse.Namespace) -> int:
    """Entry point behind ``run_bot.py --playground``; returns the exit status."""
    logging.basicConfig(
        level=str(getattr(args, "log_level", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = getattr(args, "config", None)
    if config is not None and not Path(config).is_file():
        config = None  # the default config.toml is optional here

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve(
            port=args.port,
            config=config,
            tiny=args.tiny,
            data_dir=Path("data") / "playground",
            stop=stop,
            announce=lambda line: print(line, flush=True),
        )

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as error:  # e.g. the port is taken
        print(f"playground: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # the config's ConfigError (one line naming the key)
        print(error, file=sys.stderr)
        return 2
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The playground's options, shared by ``run_bot.py`` and ``panelbot-playground``."""
    parser.add_argument("--playground", action="store_true", help="run in a local Discord in the browser, no token")
    parser.add_argument("--tiny", action="store_true", help="playground: use the tiny offline model")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="playground: the page's port (8080)")


def cli(argv: list[str] | None = None) -> int:
    """``panelbot-playground [--tiny] [--port N] [--config FILE]``."""
    parser = argparse.ArgumentParser(description="The bot in a local Discord in the browser (no token).")
    parser.add_argument("--config", type=Path, default=None, help="TOML settings (default: config.toml or the example)")
    parser.add_argument("--log-level", default="INFO")
    add_arguments(parser)
    return run(parser.parse_args(argv))
