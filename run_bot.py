"""Start the bot: load the config, open storage, load the model, run the Discord client.

    python run_bot.py --config config.toml
    python run_bot.py --playground [--tiny] [--port 8080]   # no token: a local Discord in the browser

A bad config prints one line naming the key and exits with status 2. Ctrl-C (or SIGTERM) shuts
down cleanly: the running job is stopped and re-queued, the database is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings

log = logging.getLogger("run_bot")

EXIT_CONFIG = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="Run the Discord art bot.")
    parser.add_argument("--config", type=Path, default=Path("config.toml"), help="TOML settings file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING...")
    from playground.app import add_arguments

    add_arguments(parser)
    return parser.parse_args(argv)


async def run(settings: Settings) -> None:
    """Build config -> storage -> engine -> queue -> bot, exactly as the tests do, and run until stopped."""
    from bot.bot import ArtBot
    from bot.local_api import start_local_api
    from generation.performance import PerformanceOptions
    from generation.workers import build_queue, load_engines
    from storage import Storage

    storage = await Storage.open(settings.storage.database, settings.storage.images_dir)
    try:
        model = settings.model
        engines = await load_engines(
            model.id, model.all_devices(), dtype=model.dtype, preview_decoder=model.preview_decoder,
            performance=PerformanceOptions(**dataclasses.asdict(settings.performance)),
        )
        queue = build_queue(engines, **dataclasses.asdict(settings.queue))
        bot = ArtBot(settings, storage=storage, queue=queue, model=engines[0])
        api = await start_local_api(bot, settings.studio)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with bot:
            client = asyncio.create_task(bot.start(settings.discord.token), name="discord-client")
            waiter = asyncio.create_task(stop.wait(), name="stop-signal")
            done, _ = await asyncio.wait({client, waiter}, return_when=asyncio.FIRST_COMPLETED)
            log.info("shutting down...")
            await bot.close()
            waiter.cancel()
            if client in done:
                client.result()  # re-raise a login failure
            else:
                await asyncio.gather(client, return_exceptions=True)
            if api is not None:
                await api.cleanup()
    finally:
        await storage.close()
        log.info("database closed; goodbye")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    if args.playground:
        from playground.app import run as run_playground

        return run_playground(args)
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except Exception as error:
        import discord

        if isinstance(error, discord.LoginFailure):
            print("config error: discord.token: Discord refused the token", file=sys.stderr)
            return EXIT_CONFIG
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
