"""The buttons on /imagine results and /history pages, registered by the /imagine cog.

Each button is a :class:`discord.ui.DynamicItem` whose custom_id carries the job or image id it
acts on; :func:`register` adds the classes to the bot (``add_dynamic_items``) when the cog loads,
so a click on a message posted before the last restart is routed here just the same. What a
click does is looked up in the database by that id, never in memory.

The buttons only translate a click into a call on the cog's result actions (the same calls the
reactions make), found per bot in a registry the cog fills on load and empties on unload.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Protocol

import discord
from discord.ext import commands

from bot import emojis

VariationStrength = Literal["subtle", "strong"]


class ButtonActions(Protocol):
    """What the buttons call (:class:`bot.cogs.imagine._actions.ResultActions`)."""

    async def upscale_from_interaction(self, interaction: discord.Interaction, image_id: int) -> None: ...

    async def vary_from_interaction(
        self, interaction: discord.Interaction, image_id: int, strength: VariationStrength
    ) -> None: ...

    async def reroll_from_interaction(self, interaction: discord.Interaction, job_id: int) -> None: ...

    async def info(self, image_id: int) -> str: ...

    async def delete_from_interaction(
        self, interaction: discord.Interaction, job_id: int, message: discord.Message
    ) -> None: ...

    async def add_to_comic(self, image_id: int, *, user_id: int, guild_id: int | None) -> str: ...

    async def reference_picker(self, interaction: discord.Interaction, image_id: int) -> None: ...

    async def add_reference(self, interaction: discord.Interaction, image_id: int, character_id: int) -> None: ...

    async def history_page(
        self, user_id: int, page: int, *, guild_id: int | None
    ) -> tuple[str, discord.ui.View, discord.File | None]: ...


_ACTIONS: weakref.WeakKeyDictionary[discord.Client, ButtonActions] = weakref.WeakKeyDictionary()


async def _actions(interaction: discord.Interaction) -> ButtonActions | None:
    """The clicked bot's result actions, or None (and the clicker told) while the cog is not loaded."""
    actions = _ACTIONS.get(interaction.client)
    if actions is None:
        await interaction.response.send_message(
            "This button doesn't work right now; try again shortly.", ephemeral=True
        )
    return actions


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


def _button(custom_id: str, *, emoji: str | None = None, label: str | None = None,
            style: discord.ButtonStyle = discord.ButtonStyle.secondary) -> discord.ui.Button[Any]:
    return discord.ui.Button(label=label, style=style, emoji=emoji, custom_id=custom_id)


class UpscaleButton(_ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"img:up:(?P<image_id>[0-9]+)"):
    """U1-U4 on a grid, 🔍 on a single image: upscale that image."""

    ID_GROUP = "image_id"

    def __init__(self, image_id: int, *, label: str | None = None) -> None:
        super().__init__(
            _button(f"img:up:{image_id}", label=label or "Upscale", emoji=None if label else emojis.UPSCALE)
        )
        self.image_id = image_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Queue the upscale; the click is answered with its status message."""
        if (actions := await _actions(interaction)) is not None:
            await actions.upscale_from_interaction(interaction, self.image_id)


class VaryButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"img:vary:(?P<strength>subtle|strong):(?P<image_id>[0-9]+)",
):
    """V1-V4 on a grid (strong), 🎨 Vary (subtle / strong) on a single image."""

    def __init__(self, image_id: int, strength: VariationStrength, *, label: str | None = None) -> None:
        super().__init__(
            _button(
                f"img:vary:{strength}:{image_id}", label=label or f"Vary ({strength})",
                emoji=None if label else emojis.VARY,
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
        if (actions := await _actions(interaction)) is not None:
            await actions.vary_from_interaction(interaction, self.image_id, self.strength)


class RerollButton(_ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"job:reroll:(?P<job_id>[0-9]+)"):
    """🔄: the same request again with a new seed."""

    ID_GROUP = "job_id"

    def __init__(self, job_id: int) -> None:
        super().__init__(_button(f"job:reroll:{job_id}", emoji=emojis.REROLL))
        self.job_id = job_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Queue the re-roll; the click is answered with its status message."""
        if (actions := await _actions(interaction)) is not None:
            await actions.reroll_from_interaction(interaction, self.job_id)


class InfoButton(_ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"img:info:(?P<image_id>[0-9]+)"):
    """ℹ️: every parameter of the image and the /imagine line that makes it again, to the clicker only."""

    ID_GROUP = "image_id"

    def __init__(self, image_id: int) -> None:
        super().__init__(_button(f"img:info:{image_id}", emoji=emojis.INFO))
        self.image_id = image_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Answer with the image's parameters, ephemerally."""
        if (actions := await _actions(interaction)) is not None:
            await interaction.response.send_message(await actions.info(self.image_id), ephemeral=True)


class DeleteButton(_ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"job:delete:(?P<job_id>[0-9]+)"):
    """🗑️: delete the result message (its requester, or a member who can manage messages)."""

    ID_GROUP = "job_id"

    def __init__(self, job_id: int) -> None:
        super().__init__(_button(f"job:delete:{job_id}", emoji=emojis.TRASH, style=discord.ButtonStyle.danger))
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
        super().__init__(_button(f"img:comic:{image_id}", emoji=emojis.ADD_TO_COMIC))
        self.image_id = image_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Add the panel and say so, to the clicker only."""
        if (actions := await _actions(interaction)) is None:
            return
        text = await actions.add_to_comic(self.image_id, user_id=interaction.user.id, guild_id=interaction.guild_id)
        await interaction.response.send_message(text, ephemeral=True)


class ReferenceButton(
    _ById, discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"img:ref:(?P<image_id>[0-9]+)"
):
    """Add as reference: the image becomes a reference picture of a character the clicker picks."""

    ID_GROUP = "image_id"

    def __init__(self, image_id: int) -> None:
        super().__init__(_button(f"img:ref:{image_id}", label="Add as reference", emoji=emojis.REFERENCE))
        self.image_id = image_id

    async def callback(self, interaction: discord.Interaction) -> None:
        """Ask, privately, which character of the clicker's active comic it shows."""
        if (actions := await _actions(interaction)) is not None:
            await actions.reference_picker(interaction, self.image_id)


class ReferenceSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]], template=r"img:refto:(?P<image_id>[0-9]+)"
):
    """The menu of characters under "Add as reference": the choice gets the image as a reference."""

    def __init__(self, image_id: int, options: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=f"img:refto:{image_id}",
                placeholder="Which character?",
                options=[discord.SelectOption(label=name[:100], value=str(character_id))
                         for character_id, name in options] or [discord.SelectOption(label="-", value="0")],
            )
        )
        self.image_id = image_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any, /
    ) -> ReferenceSelect:
        """Rebuild the menu from a choice's custom_id (the choice itself is in the interaction)."""
        return cls(int(match["image_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Add the image to the chosen character."""
        data: dict[str, Any] = dict(interaction.data or {})
        values = list(data.get("values") or [])
        if (actions := await _actions(interaction)) is not None and values:
            await actions.add_reference(interaction, self.image_id, int(str(values[0])))


def reference_view(image_id: int, options: Sequence[tuple[int, str]]) -> discord.ui.View:
    """The private menu asking which character an image shows."""
    view = discord.ui.View(timeout=None)
    view.add_item(ReferenceSelect(image_id, options))
    return view


class HistoryPageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"hist:(?P<user_id>[0-9]+):(?P<page>[0-9]+)"
):
    """◀ / ▶ on a /history page: show another page of that member's images."""

    def __init__(self, user_id: int, page: int, *, label: str = "▶", disabled: bool = False) -> None:
        button = _button(f"hist:{user_id}:{page}", label=label)
        button.disabled = disabled
        super().__init__(button)
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
        content, view, file = await actions.history_page(self.user_id, self.page, guild_id=interaction.guild_id)
        await interaction.response.edit_message(
            content=content, view=view, attachments=[file] if file is not None else [],
            allowed_mentions=discord.AllowedMentions.none(),
        )


def result_view(job_id: int, image_ids: Sequence[int], shown: Sequence[bool]) -> discord.ui.View:
    """The buttons on a result.

    A grid: U1-U4 and V1-V4 for each image shown (withheld ones get none), 🔄, ℹ️ of the first
    image and 🗑️. One image: 🔍, 🎨 Vary (subtle), 🎨 Vary (strong), 🔄, ℹ️, 🗑️, 📖 and Add as reference.
    """
    view = discord.ui.View(timeout=None)
    if len(image_ids) > 1:
        visible = [(index, image_id) for index, (image_id, seen) in enumerate(zip(image_ids, shown, strict=True))
                   if seen]
        # Five buttons fit a row: a storyboard's six images take two rows each for U and V.
        rows = max(1, -(-len(visible) // 5))
        for place, (index, image_id) in enumerate(visible):
            view.add_item(_row(UpscaleButton(image_id, label=f"U{index + 1}"), place // 5))
        for place, (index, image_id) in enumerate(visible):
            view.add_item(_row(VaryButton(image_id, "strong", label=f"V{index + 1}"), rows + place // 5))
        for item in (RerollButton(job_id), InfoButton(image_ids[0]), DeleteButton(job_id)):
            view.add_item(_row(item, 2 * rows))
        return view
    (image_id,) = image_ids
    if shown[0]:
        first_row = (UpscaleButton(image_id), VaryButton(image_id, "subtle"), VaryButton(image_id, "strong"))
        for upscale_or_vary in first_row:
            view.add_item(_row(upscale_or_vary, 0))
    for item in (RerollButton(job_id), InfoButton(image_id), DeleteButton(job_id)):
        view.add_item(_row(item, 1))
    if shown[0]:
        view.add_item(_row(AddToComicButton(image_id), 1))
        view.add_item(_row(ReferenceButton(image_id), 1))
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


#: Every button class this module defines, as registered with the bot.
BUTTONS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    UpscaleButton,
    VaryButton,
    RerollButton,
    InfoButton,
    DeleteButton,
    AddToComicButton,
    ReferenceButton,
    ReferenceSelect,
    HistoryPageButton,
)


def register(bot: commands.Bot, actions: ButtonActions) -> None:
    """Route this bot's clicks on these buttons to ``actions`` (the cog calls it on load)."""
    _ACTIONS[bot] = actions
    bot.add_dynamic_items(*BUTTONS)


def unregister(bot: commands.Bot) -> None:
    """Stop routing clicks (the cog calls it on unload); a click then gets a short apology."""
    bot.remove_dynamic_items(*BUTTONS)
    _ACTIONS.pop(bot, None)
