"""The Discord client: a :class:`commands.Bot` handed its storage, GPU queue and model.

Cogs load and commands sync in ``setup_hook`` (before the gateway connects); jobs left unfinished
by the last run are re-queued there too.
"""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from bot.config import Settings
from bot.discord_endpoints import use_endpoints
from bot.errors import on_app_command_error
from bot.job_runner import JobRunner
from bot.jobs import ModelInfo
from bot.services import ConfigurableEngine, Services
from bot.views import CancelJobButton
from generation.queue import JobQueue
from storage import Storage

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.imagine", "bot.cogs.comic", "bot.cogs.models")


class ArtBot(commands.Bot):
    """The bot: slash commands, reactions, and the job runner behind them."""

    def __init__(
        self,
        settings: Settings,
        *,
        storage: Storage,
        queue: JobQueue,
        model: ModelInfo,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_reactions = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
        )
        self.settings = settings
        self.storage = storage
        self.queue = queue
        self.model = model
        self.runner = JobRunner(
            self, storage, queue, model, limits=settings.generation, safety=settings.safety,
            progress_interval_s=settings.discord.progress_interval_s,
        )
        self.runner.default_model = settings.model.model_name
        self.runner.model_titles = {spec.name: spec.title for spec in settings.model_specs() if spec.display_name}
        #: What the cogs get from the bot.
        self.services = Services(
            settings=settings, storage=storage, queue=queue, runner=self.runner, model=model,
            engines=tuple(engine for engine in queue.engines if isinstance(engine, ConfigurableEngine)),
        )
        use_endpoints(self, settings.discord.api_base, settings.discord.gateway_url)
        #: Running globally: clear guild commands left from a run with ``guild_ids``, once connected.
        self._clear_guild_commands = False

    async def setup_hook(self) -> None:
        """Load the cogs, sync the commands, start the GPU workers and re-queue unfinished jobs."""
        self.tree.error(on_app_command_error)
        self.add_dynamic_items(CancelJobButton)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands()
        self.queue.start()
        await self.runner.recover()

    async def sync_commands(self) -> None:
        """Register the slash commands: in the configured guilds (instant), or globally.

        Switching between the two leaves no second copy behind, so members never see every
        command twice: with ``guild_ids`` the global commands are cleared; without, the guild
        commands of every guild the bot is in are cleared once connected (see :meth:`on_ready`).
        """
        guild_ids = self.settings.discord.guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            log.info("synced %d global command(s)", len(synced))
            self._clear_guild_commands = True
            return
        for guild_id in guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d command(s) to guild %d", len(synced), guild_id)
        if await self.tree.fetch_commands():
            assert self.application_id is not None
            await self.http.bulk_upsert_global_commands(self.application_id, [])
            log.info("cleared the global commands left from running without guild_ids")

    async def _clear_old_guild_commands(self) -> None:
        """Running globally: remove commands a run with ``guild_ids`` registered in each guild."""
        assert self.application_id is not None
        for guild in self.guilds:
            try:
                if await self.tree.fetch_commands(guild=guild):
                    await self.http.bulk_upsert_guild_commands(self.application_id, guild.id, [])
                    log.info("cleared the guild commands of guild %d left from running with guild_ids", guild.id)
            except discord.HTTPException as error:
                log.warning("could not check the commands of guild %d: %s", guild.id, error)

    async def on_ready(self) -> None:
        """Log once connected."""
        assert self.user is not None
        log.info("connected to Discord as %s (id %s) in %d guild(s)", self.user, self.user.id, len(self.guilds))
        if self._clear_guild_commands:
            self._clear_guild_commands = False
            await self._clear_old_guild_commands()

    async def close(self) -> None:
        """Stop GPU work first (re-queueing the running job), then disconnect."""
        await self.runner.close()
        await super().close()
