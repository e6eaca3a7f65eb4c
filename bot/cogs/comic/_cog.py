"""The /comic cog: one ``/comic`` group built from the command groups, the 📖 reaction and the panel result hook.

The commands live in one module per group (:mod:`._group_comics`, :mod:`._group_panels`,
:mod:`._group_characters`, :mod:`._group_pages`) and share one :class:`ComicContext`; the cog
puts them under a single ``/comic`` group, adds it to the command tree on load and removes it
on unload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import discord
from discord import app_commands
from discord.ext import commands

from bot.add_to_comic import add_image_to_comic
from bot.cogs.comic import _redraw
from bot.cogs.comic._character_likeness import likeness_command
from bot.cogs.comic._context import ComicContext
from bot.cogs.comic._group_characters import CharacterCommands
from bot.cogs.comic._group_comics import ComicsCommands
from bot.cogs.comic._group_pages import PageCommands
from bot.cogs.comic._group_panels import PanelCommands
from bot.cogs.comic._group_storyboard import StoryboardCommands
from bot.cogs.comic._references import record_trained
from bot.config import ComicSettings
from bot.emojis import ADD_TO_COMIC
from bot.outlets import post_notice
from bot.services import Services
from rules.styles import StylePreset
from storage.errors import NotFound
from storage.jobs import JobRecord

log = logging.getLogger(__name__)


def build_comic_group(context: ComicContext, client: discord.Client) -> app_commands.Group:
    """``/comic`` with every subcommand of the command groups, and ``/comic character``."""
    root = app_commands.Group(name="comic", description="Make comics from generated panels", guild_only=True)
    parts = (
        ComicsCommands(context), PanelCommands(context), StoryboardCommands(context), PageCommands(context, client)
    )
    for part in parts:
        for command in part.commands:
            root.add_command(command)
    characters = CharacterCommands(context)
    characters.add_command(likeness_command(context))
    root.add_command(characters)
    return root


class Comic(commands.Cog):
    """Comics: panels drawn like /imagine jobs, lettered and laid out on pages, shared and exported."""

    def __init__(self, bot: commands.Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.context = ComicContext(services)
        self.group = build_comic_group(self.context, bot)

    @property
    def settings(self) -> ComicSettings:
        """The ``[comic]`` settings every command group uses."""
        return self.context.settings

    @settings.setter
    def settings(self, value: ComicSettings) -> None:
        self.context.settings = value

    @property
    def styles(self) -> Mapping[str, StylePreset]:
        """The style presets comics may use."""
        return self.context.styles

    @styles.setter
    def styles(self, value: Mapping[str, StylePreset]) -> None:
        self.context.styles = value

    async def cog_load(self) -> None:
        """Add ``/comic``, hook into finished jobs, link any panel job that finished just before a crash,
        give the engines the configured IP-Adapter, and route clicks on Redraw buttons."""
        model = self.services.settings.model
        for engine in self.services.engines:
            configure = getattr(engine, "configure_ip_adapter", None)
            if configure is not None:  # a local engine (a cluster's workers are configured where they run)
                await asyncio.to_thread(
                    configure, model.ip_adapter, reference_root=self.services.storage.files.root,
                    subfolder=model.ip_adapter_subfolder, weight_name=model.ip_adapter_weight_name,
                    image_encoder=model.ip_adapter_image_encoder,
                )
        _redraw.register(self.bot, self.context)
        self.bot.tree.add_command(self.group)
        self.services.runner.on_result.append(self._link_panel)
        self.services.runner.on_result.append(self._record_training)
        relinked = await self.services.storage.comics.relink_finished()
        if relinked:
            log.info("linked %d finished panel image(s) left unlinked by the last run", relinked)

    async def cog_unload(self) -> None:
        """Remove ``/comic`` and unhook from finished jobs."""
        self.bot.tree.remove_command(self.group.name)
        _redraw.unregister(self.bot)
        for hook in (self._link_panel, self._record_training):
            if hook in self.services.runner.on_result:
                self.services.runner.on_result.remove(hook)

    async def _record_training(self, record: JobRecord, message_id: int) -> None:
        """Result hook: a finished training job's LoRA becomes its character's (its sample was just posted)."""
        await record_trained(self.context, record)

    async def _link_panel(self, record: JobRecord, message_id: int) -> None:
        """Result hook: a finished panel job's first image becomes its panel's picture (a storyboard's
        images become its panels' pictures, in order)."""
        storage = self.services.storage
        images = await storage.images.for_job(record.id)
        if not images:
            return
        for panel in await storage.comics.link_images(record.id, [image.id for image in images]):
            log.info("panel %s (comic %s) now shows image %s", panel.id, panel.comic_id, panel.image_id)

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """📖 on one of the bot's results adds its (first) image as the next panel of the member's active comic."""
        if self.bot.user is None or payload.user_id == self.bot.user.id or str(payload.emoji) != ADD_TO_COMIC:
            return
        try:
            posted = await self.services.storage.messages.get(payload.message_id)
        except NotFound:
            return
        if posted.kind != "result" or not posted.image_ids:
            return
        text = await add_image_to_comic(
            self.services.storage, posted.image_ids[0], user_id=payload.user_id, guild_id=payload.guild_id,
            max_panels=self.settings.max_panels,
        )
        await post_notice(self.bot, payload.channel_id, payload.user_id, text)
