"""Start the bot: load the config, open storage, load the model, run the Discord client.

    python run_bot.py --config config.toml

A bad config prints one line naming the key and exits with status 2. Ctrl-C (or SIGTERM) shuts
down cleanly: the running job is stopped and re-queued, the database is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path

from bot.cluster_config import ClusterSettings, load_settings_with_cluster
from bot.config import ConfigError, Settings

log = logging.getLogger("run_bot")

EXIT_CONFIG = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="Run the Discord art bot.")
    parser.add_argument("--config", type=Path, default=Path("config.toml"), help="TOML settings file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING...")
    return parser.parse_args(argv)


async def run(settings: Settings, cluster: ClusterSettings | None = None) -> None:
    """Build config -> storage -> engine -> queue -> bot, exactly as the tests do, and run until stopped."""
    from bot.bot import ArtBot
    from generation.workers import build_queue, load_engines
    from storage import Storage

    # [cluster] backend = "ray": GPU workers are Ray actors (see docs/SCALE.md); the cluster
    # unreachable at start raises ClusterUnavailable (one line, exit status 2 in main()).
    pool = None
    if cluster is not None and cluster.backend == "ray":
        from generation.cluster import RayWorkerPool, pool_settings, start_ray_queue

        pool = RayWorkerPool(pool_settings(cluster, settings.model))
        ray_queue = await start_ray_queue(pool, dataclasses.asdict(settings.queue), cluster.max_worker_losses)
    storage = await Storage.open(settings.storage.database, settings.storage.images_dir)
    try:
        model = settings.model
        if pool is not None:
            queue, model_info = ray_queue, pool.model_info
        else:
            engines = await load_engines(
                model.id, model.all_devices(), dtype=model.dtype, preview_decoder=model.preview_decoder
            )
            queue, model_info = build_queue(engines, **dataclasses.asdict(settings.queue)), engines[0]
        bot = ArtBot(settings, storage=storage, queue=queue, model=model_info)
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
    finally:
        await storage.close()
        if pool is not None:
            await pool.close()
        log.info("database closed; goodbye")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    try:
        settings, cluster = load_settings_with_cluster(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(run(settings, cluster))
    except KeyboardInterrupt:
        pass
    except Exception as error:
        import discord

        from generation.cluster import ClusterUnavailable

        if isinstance(error, ClusterUnavailable):
            print(error, file=sys.stderr)
            sys.stderr.flush()
            os._exit(EXIT_CONFIG)  # Ray may still be retrying in a thread: nothing more to print or wait for

        if isinstance(error, discord.LoginFailure):
            print("config error: discord.token: Discord refused the token", file=sys.stderr)
            return EXIT_CONFIG
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
