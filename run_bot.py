"""Start the bot: load the config, open storage, load the model, run the Discord client.

    python run_bot.py --config config.toml
    python run_bot.py --playground [--tiny] [--port 8080]   # no token: a local Discord in the browser
    python run_bot.py --config config.toml --vacuum    # maintenance (bot stopped), then exit

A bad config prints one line naming the key and exits with status 2, as does any start-up failure
the operator must fix: a model that can't be found or loaded, a CUDA device without a GPU, a token
Discord refuses (checked before the model loads), a database that is locked, unwritable or newer
than this code. Ctrl-C (or SIGTERM) shuts
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
from typing import TYPE_CHECKING

from bot.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from storage import Storage

log = logging.getLogger("run_bot")

EXIT_CONFIG = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="Run the Discord art bot.")
    parser.add_argument("--config", type=Path, default=Path("config.toml"), help="TOML settings file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING...")
    from playground.app import add_arguments

    add_arguments(parser)
    parser.add_argument(
        "--vacuum", action="store_true",
        help="maintenance, then exit: delete expired uploads and unreferenced files, VACUUM the database",
    )
    return parser.parse_args(argv)


async def run(settings: Settings) -> None:
    """Build config -> storage -> engine -> queue -> bot, exactly as the tests do, and run until stopped."""
    from bot.bot import ArtBot
    from bot.local_api import start_local_api
    from generation.performance import PerformanceOptions
    from generation.workers import build_queue, load_engines

    # [cluster] backend = "ray": GPU workers are Ray actors (see docs/SCALE.md); the cluster
    # unreachable at start raises ClusterUnavailable (one line, exit status 2 in main()).
    pool = None
    cluster = settings.cluster
    if cluster.backend == "ray":
        from generation.cluster import RayWorkerPool, pool_settings, start_ray_queue

        pool = RayWorkerPool(pool_settings(cluster, settings.model))
        ray_queue = await start_ray_queue(pool, dataclasses.asdict(settings.queue), cluster.max_worker_losses)
    storage = await open_storage(settings)
    try:
        await check_token(settings)
        model = settings.model
        if pool is not None:
            queue, model_info = ray_queue, pool.model_info
        else:
            engines = await load_engines(
                model.id, model.all_devices(), dtype=model.dtype, preview_decoder=model.preview_decoder,
                performance=PerformanceOptions(**dataclasses.asdict(settings.performance)),
                models=settings.model_specs(), max_loaded_models=settings.queue.max_loaded_models,
                embeddings=settings.embeddings,
            )
            queue, model_info = build_queue(engines, **dataclasses.asdict(settings.queue)), engines[0]
        bot = ArtBot(settings, storage=storage, queue=queue, model=model_info)
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
        if pool is not None:
            await pool.close()
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
    logging.captureWarnings(True)  # libraries' warnings go to the log, not loose onto stderr
    try:
        asyncio.run(maintain(settings) if args.vacuum else run(settings))
    except KeyboardInterrupt:
        pass
    except Exception as error:
        from generation.cluster import ClusterUnavailable

        if isinstance(error, ClusterUnavailable):
            print(error, file=sys.stderr)
            sys.stderr.flush()
            os._exit(EXIT_CONFIG)  # Ray may still be retrying in a thread: nothing more to print or wait for
        line = startup_error_line(error)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return EXIT_CONFIG
    return 0


async def maintain(settings: Settings) -> None:
    """``--vacuum``: bring the schema up to date, then delete what retention allows and VACUUM; print what was freed.

    Run it while the bot is stopped (VACUUM needs the database to itself).
    """
    from storage.maintenance import vacuum

    storage = await open_storage(settings)
    await storage.close()
    report = await asyncio.to_thread(
        vacuum, Path(settings.storage.database), Path(settings.storage.images_dir),
        retention_days=settings.storage.retention_days,
    )
    print(report.summary())


class StartupError(Exception):
    """The bot can't start for a reason the operator must fix; the message is the one line shown."""


def startup_error_line(error: BaseException) -> str | None:
    """The one line printed for a start-up failure the operator can fix, or None (a bug: traceback)."""
    import discord

    from generation.errors import ModelLoadError

    if isinstance(error, discord.LoginFailure):
        return "config error: discord.token: Discord refused the token; copy it again from the developer portal"
    if isinstance(error, ModelLoadError):
        return f"model error: {error}"
    if isinstance(error, StartupError):
        return str(error)
    return None


async def open_storage(settings: Settings) -> Storage:
    """Open the database and image folder; a locked, unwritable or too new database is a :class:`StartupError`."""
    import sqlite3

    from storage import Storage
    from storage.database import SchemaTooNewError

    where = f"storage.database: {settings.storage.database}"
    try:
        storage = await Storage.open(settings.storage.database, settings.storage.images_dir)
    except SchemaTooNewError as error:
        raise StartupError(f"storage error: {where}: {error}") from error
    except sqlite3.OperationalError as error:
        text = str(error)
        if "locked" in text or "busy" in text:
            hint = "it is locked by another process (is another copy of the bot running?)"
        elif "readonly" in text or "unable to open" in text:
            hint = "it can't be opened for writing; check the path and its folder's permissions"
        else:
            hint = text
        raise StartupError(f"storage error: {where}: {hint} ({text})") from error
    except sqlite3.DatabaseError as error:
        raise StartupError(f"storage error: {where}: not a usable SQLite database ({error})") from error
    except OSError as error:
        raise StartupError(
            f"storage error: {where} / storage.images_dir: {settings.storage.images_dir}: "
            f"can't be created or written ({error.strerror or error})"
        ) from error
    await log_storage_size(storage, settings)
    return storage


async def log_storage_size(storage: Storage, settings: Settings) -> None:
    """Log how much room the database and the image folder take."""

    def sizes() -> tuple[int, int, int]:
        database = Path(settings.storage.database)
        db_bytes = sum(
            p.stat().st_size for p in (database, Path(f"{database}-wal")) if p.exists()
        )
        files = [p for p in Path(settings.storage.images_dir).rglob("*") if p.is_file()]
        return db_bytes, sum(p.stat().st_size for p in files), len(files)

    db_bytes, image_bytes, count = await asyncio.to_thread(sizes)
    log.info(
        "storage: database %.1f MB, image folder %.1f MB in %d files",
        db_bytes / 1e6, image_bytes / 1e6, count,
    )


async def check_token(settings: Settings) -> None:
    """Log in once with the token (``GET /users/@me``) before the model loads: a wrong token fails in seconds.

    Loading a model can take minutes (gigabytes on a first start); a token Discord refuses should
    be found before that, not after.
    """
    import discord

    from bot.discord_endpoints import use_endpoints

    client = discord.Client(intents=discord.Intents.none())
    use_endpoints(client, settings.discord.api_base, None)
    try:
        await client.login(settings.discord.token)
    except discord.HTTPException as error:
        raise StartupError(
            f"discord error: Discord answered {error.status} when the token was checked ({error})"
        ) from error
    except OSError as error:
        raise StartupError(
            f"discord error: discord.api_base: {settings.discord.api_base} can't be reached ({error})"
        ) from error
    finally:
        await client.close()


if __name__ == "__main__":
    raise SystemExit(main())
