"""Buttons that keep working after a restart: their meaning lives in the custom_id.

Each button is a :class:`discord.ui.DynamicItem` whose custom_id carries the job or image id it
acts on; the bot registers the classes once (``add_dynamic_items``), so a click on a message
posted before the last restart is routed here just the same. What a click does is looked up in
the database by that id (the image's prompt, seed and file; the job's requester), never in memory.

The buttons only translate a click into a call on the /imagine cog's
:class:`~bot.cogs.imagine._actions.ResultActions`, the same calls the reactions make.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import discord
from discord.ext import commands

from bot import embeds

if TYPE_CHECKING:
    from bot.bot import ArtBot
    from bot.cogs.imagine._actions import ResultActions

CANCEL_EMOJI = "❌"
VariationStrength = Literal["subtle", "strong"]


class _ById:
    """For buttons whose custom_id carries one id: rebuild the button from it after a restart."""

    ID_GROUP: ClassVar[str]

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any, /
    ) -> Any:
        """Rebuild the button from a click's custom_id."""
        build: Any = cls
        return build(int(match[cls.ID_GROUP]))



class CancelJobButton(_ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"job:cancel:(?P<job_id>[0-9]+)"):
    """Cancel a queued or running job (its requester, or a member who can manage messages)."""

    ID_GROUP = "job_id"

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                emoji=CANCEL_EMOJI,
                custom_id=f"job:cancel:{job_id}",
            )
        )
        self.job_id = job_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Cancel the job if the clicker may; tell them privately if not."""
        bot: ArtBot = interaction.client  # type: ignore[assignment]
        moderator = bool(interaction.permissions.manage_messages)
        outcome = await bot.runner.request_cancel(self.job_id, user_id=interaction.user.id, moderator=moderator)
        if outcome.accepted:
            await interaction.response.defer()
        else:
            await interaction.response.send_message(outcome.message, ephemeral=True)


def cancel_view(job_id: int) -> discord.ui.View:
    """The view on a status message: one Cancel button."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelJobButton(job_id))
    return view


async def _actions(interaction: discord.Interaction) -> ResultActions | None:
    """The /imagine cog's actions, or None (and the clicker told) while the cog is not loaded."""
    cog = interaction.client.get_cog("Imagine") if isinstance(interaction.client, commands.Bot) else None
    actions: ResultActions | None = getattr(cog, "actions", None)
    if actions is None:
        await interaction.response.send_message(
            "This button doesn't work right now; try again shortly.", ephemeral=True
        )
    return actions


class UpscaleButton(_ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"img:up:(?P<image_id>[0-9]+)"):
    """U1-U4 on a grid, 🔍 on a single image: upscale that image."""

    ID_GROUP = "image_id"

    def __init__(self, image_id: int, *, label: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=label or "Upscale",
                style=discord.ButtonStyle.secondary,
                emoji=None if label else embeds.UPSCALE,
                custom_id=f"img:up:{image_id}",
            )
        )
        self.image_id = image_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Queue the upscale; the click is answered with its status message."""
        if (actions := await _actions(interaction)) is None:
            return
        await actions.upscale_from_interaction(interaction, self.image_id)


class VaryButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"img:vary:(?P<strength>subtle|strong):(?P<image_id>[0-9]+)",
):
    """V1-V4 on a grid (strong), 🎨 Vary (subtle / strong) on a single image."""

    def __init__(self, image_id: int, strength: VariationStrength, *, label: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=label or f"Vary ({strength})",
                style=discord.ButtonStyle.secondary,
                emoji=None if label else embeds.VARY,
                custom_id=f"img:vary:{strength}:{image_id}",
            )
        )
        self.image_id = image_id
        self.strength: VariationStrength = strength

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any, /
    ) -> VaryButton:
        """Rebuild the button from a click's custom_id."""
        return cls(int(match["image_id"]), match["strength"])

    async def callback(self, interaction: discord.Interaction) -> None:
        """Queue the variation; the click is answered with its status message."""
        if (actions := await _actions(interaction)) is None:
            return
        await actions.vary_from_interaction(interaction, self.image_id, self.strength)


class RerollButton(_ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"job:reroll:(?P<job_id>[0-9]+)"):
    """🔄: the same request again with a new seed."""

    ID_GROUP = "job_id"

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary, emoji=embeds.REROLL, custom_id=f"job:reroll:{job_id}"
            )
        )
        self.job_id = job_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Queue the re-roll; the click is answered with its status message."""
        if (actions := await _actions(interaction)) is None:
            return
        await actions.reroll_from_interaction(interaction, self.job_id)


class InfoButton(_ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"img:info:(?P<image_id>[0-9]+)"):
    """ℹ️: every parameter of the image and the /imagine line that makes it again, to the clicker only."""

    ID_GROUP = "image_id"

    def __init__(self, image_id: int) -> None:
        super().__init__(
            discord.ui.Button(style=discord.ButtonStyle.secondary, emoji=embeds.INFO, custom_id=f"img:info:{image_id}")
        )
        self.image_id = image_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Answer with the image's parameters, ephemerally."""
        if (actions := await _actions(interaction)) is None:
            return
        await interaction.response.send_message(await actions.info(self.image_id), ephemeral=True)


class DeleteButton(_ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"job:delete:(?P<job_id>[0-9]+)"):
    """🗑️: delete the result message (its requester, or a member who can manage messages)."""

    ID_GROUP = "job_id"

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(style=discord.ButtonStyle.danger, emoji=embeds.TRASH, custom_id=f"job:delete:{job_id}")
        )
        self.job_id = job_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Delete the message if the clicker may; tell them privately if not."""
        if (actions := await _actions(interaction)) is None:
            return
        if interaction.message is None:
            await interaction.response.send_message("That message is gone already.", ephemeral=True)
            return
        await actions.delete_from_interaction(interaction, self.job_id, interaction.message)


class AddToComicButton(
    _ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"img:comic:(?P<image_id>[0-9]+)"
):
    """📖: add the image as the next panel of the clicker's active comic."""

    ID_GROUP = "image_id"

    def __init__(self, image_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary, emoji=embeds.ADD_TO_COMIC, custom_id=f"img:comic:{image_id}"
            )
        )
        self.image_id = image_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Add the panel and say so, to the clicker only."""
        if (actions := await _actions(interaction)) is None:
            return
        text = await actions.add_to_comic(self.image_id, user_id=interaction.user.id, guild_id=interaction.guild_id)
        await interaction.response.send_message(text, ephemeral=True)


class HistoryPageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"hist:(?P<user_id>[0-9]+):(?P<page>[0-9]+)"
):
    """◀ / ▶ on a /history page: show another page of that member's images."""

    def __init__(self, user_id: int, page: int, *, label: str = "▶", disabled: bool = False) -> None:
        super().__init__(
            discord.ui.Button(
                label=label, style=discord.ButtonStyle.secondary, custom_id=f"hist:{user_id}:{page}", disabled=disabled
            )
        )
        self.user_id = user_id
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any, /
    ) -> HistoryPageButton:
        """Rebuild the button from a click's custom_id."""
        return cls(int(match["user_id"]), int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Replace the page shown with the one this button points to."""
        if (actions := await _actions(interaction)) is None:
            return
        content, view, file = await actions.history_page(self.user_id, self.page)
        await interaction.response.edit_message(
            content=content, view=view, attachments=[file] if file is not None else [],
            allowed_mentions=discord.AllowedMentions.none(),
        )


def result_view(job_id: int, image_ids: Sequence[int], shown: Sequence[bool]) -> discord.ui.View:
    """The buttons on a result.

    A grid: U1-U4 and V1-V4 for each image shown (withheld ones get none), 🔄, ℹ️ of the first
    image and 🗑️. One image: 🔍, 🎨 Vary (subtle), 🎨 Vary (strong), 🔄, ℹ️, 🗑️ and 📖.
    """
    view = discord.ui.View(timeout=None)
    if len(image_ids) > 1:
        for index, (image_id, visible) in enumerate(zip(image_ids, shown, strict=True)):
            if visible:
                view.add_item(_row(UpscaleButton(image_id, label=f"U{index + 1}"), 0))
        for index, (image_id, visible) in enumerate(zip(image_ids, shown, strict=True)):
            if visible:
                view.add_item(_row(VaryButton(image_id, "strong", label=f"V{index + 1}"), 1))
        view.add_item(_row(RerollButton(job_id), 2))
        view.add_item(_row(InfoButton(image_ids[0]), 2))
        view.add_item(_row(DeleteButton(job_id), 2))
        return view
    (image_id,) = image_ids
    if shown[0]:
        view.add_item(_row(UpscaleButton(image_id), 0))
        view.add_item(_row(VaryButton(image_id, "subtle"), 0))
        view.add_item(_row(VaryButton(image_id, "strong"), 0))
    view.add_item(_row(RerollButton(job_id), 1))
    view.add_item(_row(InfoButton(image_id), 1))
    view.add_item(_row(DeleteButton(job_id), 1))
    if shown[0]:
        view.add_item(_row(AddToComicButton(image_id), 1))
    return view


def history_view(user_id: int, page: int, *, has_next: bool) -> discord.ui.View:
    """◀ and ▶ under a /history page."""
    view = discord.ui.View(timeout=None)
    view.add_item(HistoryPageButton(user_id, max(page - 1, 0), label="◀ Newer", disabled=page == 0))
    view.add_item(HistoryPageButton(user_id, page + 1, label="Older ▶", disabled=not has_next))
    return view


def _row(item: discord.ui.DynamicItem[Any], row: int) -> discord.ui.DynamicItem[Any]:
    item.row = row
    return item


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    CancelJobButton,
    UpscaleButton,
    VaryButton,
    RerollButton,
    InfoButton,
    DeleteButton,
    AddToComicButton,
    HistoryPageButton,
)
