"""Tests of the Discord emulator itself, driven by a small real discord.py bot."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands
from PIL import Image

from bot.discord_endpoints import _rewrite_gateway, use_endpoints
from playground import DEFAULT_SPEC, CommandUsageError, DiscordEmulator, EmuInteraction, EmuMessage

SPEC = DEFAULT_SPEC
TIMEOUT = 10.0

pytestmark = pytest.mark.timeout(60)


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


class LikeView(discord.ui.View):
    """A persistent view: its custom_ids are fixed so it works after a restart."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Like", emoji="👍", custom_id="emu:like", style=discord.ButtonStyle.primary)
    async def like(self, interaction: discord.Interaction, button: discord.ui.Button[LikeView]) -> None:
        await interaction.response.edit_message(content=f"liked by {interaction.user.name}", view=self)

    @discord.ui.button(label="Later", custom_id="emu:later")
    async def later(self, interaction: discord.Interaction, button: discord.ui.Button[LikeView]) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="edited later", view=None)


class EmuCog(commands.Cog):
    """Commands exercising each kind of response."""

    comic = app_commands.Group(name="comic", description="Comic things")

    def __init__(self, bot: EmuBot) -> None:
        self.bot = bot

    @app_commands.command()
    @app_commands.describe(name="Who to greet", times="How often", mood="Tone")
    async def hello(
        self,
        interaction: discord.Interaction,
        name: str,
        times: app_commands.Range[int, 1, 5] = 1,
        mood: Literal["warm", "cool"] = "warm",
    ) -> None:
        """Greets someone."""
        await interaction.response.send_message(f"Hello {name}! x{times} ({mood})", view=LikeView())

    @app_commands.command()
    async def whoami(self, interaction: discord.Interaction) -> None:
        """Says whether the caller may manage messages."""
        role = "moderator" if interaction.permissions.manage_messages else "member"
        await interaction.response.send_message(role, ephemeral=True)

    @app_commands.command()
    async def secret(self, interaction: discord.Interaction) -> None:
        """Answers only the caller."""
        await interaction.response.send_message("just for you", ephemeral=True)

    @app_commands.command()
    async def render(
        self, interaction: discord.Interaction, prompt: str, image: discord.Attachment | None = None
    ) -> None:
        """Defers, then sends an image as a followup."""
        await interaction.response.defer(thinking=True)
        size = (64, 48)
        if image is not None:
            size = Image.open(io.BytesIO(await image.read())).size
        file = discord.File(io.BytesIO(png_bytes(size)), filename="render.png")
        embed = discord.Embed(title=prompt).set_image(url="attachment://render.png")
        try:
            await interaction.followup.send(embed=embed, file=file)
        except discord.HTTPException as exc:
            await interaction.followup.send(f"upload failed: {exc.code}")

    @app_commands.command()
    async def slow(self, interaction: discord.Interaction) -> None:
        """Defers, waits for the test, then answers (falling back to the channel)."""
        await interaction.response.defer()
        await self.bot.gate.wait()
        try:
            await interaction.followup.send("done")
        except discord.HTTPException:
            channel = interaction.channel
            assert isinstance(channel, discord.TextChannel)
            await channel.send("fallback")

    @app_commands.command()
    async def gallery(self, interaction: discord.Interaction) -> None:
        """Replies with a file and embed, then an ephemeral followup, then swaps the file."""
        embed = discord.Embed(title="Gallery", description="three cats").add_field(name="seed", value="42")
        first = discord.File(io.BytesIO(png_bytes((8, 8))), filename="one.png", description="first")
        await interaction.response.send_message(embed=embed, file=first)
        await interaction.followup.send("only you see this", ephemeral=True)
        second = discord.File(io.BytesIO(png_bytes((16, 16))), filename="two.png")
        await interaction.edit_original_response(attachments=[second])
        original = await interaction.original_response()
        await original.channel.send("a reply")

    @app_commands.command()
    async def ask(self, interaction: discord.Interaction) -> None:
        """Opens a modal."""
        modal = discord.ui.Modal(title="Describe it", custom_id="emu:ask")
        modal.add_item(discord.ui.TextInput(label="Prompt", custom_id="emu:prompt"))
        await interaction.response.send_modal(modal)

    @app_commands.command()
    async def pick(self, interaction: discord.Interaction, style: str) -> None:
        """Picks a style."""
        await interaction.response.send_message(f"style {style}")

    @pick.autocomplete("style")
    async def pick_style(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        styles = ["anime", "ink", "watercolor", "pixel"]
        return [app_commands.Choice(name=s, value=s) for s in styles if current in s]

    @comic.command(name="new")
    async def comic_new(self, interaction: discord.Interaction, title: str, reader: discord.Member) -> None:
        """Starts a comic."""
        await interaction.response.send_message(f"{title} for {reader.mention}")

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if self.bot.user is None or payload.user_id == self.bot.user.id:
            return
        self.bot.reactions.append((payload.message_id, str(payload.emoji), payload.user_id))
        channel = self.bot.get_channel(payload.channel_id)
        assert isinstance(channel, discord.TextChannel)
        await channel.get_partial_message(payload.message_id).add_reaction(payload.emoji)


class EmuBot(commands.Bot):
    """The smallest bot that exercises the emulator."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.1)
        self.guild_id = guild_id
        self.gate = asyncio.Event()
        self.reactions: list[tuple[int, str, int]] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before re-identifying; nothing to rate-limit against the emulator."""

    async def setup_hook(self) -> None:
        await self.add_cog(EmuCog(self))
        self.add_view(LikeView())
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)


def finished_response(inter: EmuInteraction) -> EmuMessage | None:
    """The interaction's response message once it is no longer a "thinking..." placeholder."""
    original = inter.original
    return original if original is not None and not original.loading else None


@dataclass
class Running:
    emu: DiscordEmulator
    bot: EmuBot
    task: asyncio.Task[None]


async def start_bot(emu: DiscordEmulator) -> Running:
    bot = EmuBot(emu.guild_id)
    use_endpoints(bot, emu.api_base, emu.gateway_url)
    task = asyncio.create_task(bot.start(emu.token))

    async def both_ready() -> None:
        await emu.wait_until_ready(TIMEOUT)
        await bot.wait_until_ready()

    ready = asyncio.create_task(both_ready())
    done, _ = await asyncio.wait([task, ready], timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        await bot.close()
        if task in done:
            task.result()  # the bot crashed: show why
        raise TimeoutError("the bot did not become ready on the emulator")
    return Running(emu, bot, task)


async def stop_bot(running: Running) -> None:
    await asyncio.wait_for(running.bot.close(), TIMEOUT)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(running.task, TIMEOUT)


@pytest.fixture
async def emu() -> AsyncIterator[DiscordEmulator]:
    old_base = discord.http.Route.BASE
    async with DiscordEmulator(spec_path=SPEC) as emulator:
        yield emulator
    discord.http.Route.BASE = old_base


@pytest.fixture
async def running(emu: DiscordEmulator) -> AsyncIterator[Running]:
    run = await start_bot(emu)
    yield run
    await stop_bot(run)
    assert emu.problems == []


# -- login and sync ------------------------------------------------------------------------------


async def test_login_sync_and_guild(running: Running) -> None:
    emu, bot = running.emu, running.bot
    names = sorted(c["name"] for c in emu.commands(emu.guild_id))
    assert names == ["ask", "comic", "gallery", "hello", "pick", "render", "secret", "slow", "whoami"]
    assert emu.commands() == []
    guild = bot.get_guild(emu.guild_id)
    assert guild is not None and guild.me is not None
    assert guild.me.guild_permissions.manage_messages and guild.me.guild_permissions.attach_files
    nsfw = guild.get_channel(emu.nsfw_channel_id)
    assert isinstance(nsfw, discord.TextChannel) and nsfw.is_nsfw()
    assert bot.user is not None and bot.user.id == emu.bot_user_id
    templates = {r.route_template for r in emu.requests}
    assert "/users/@me" in templates
    assert "/applications/{application_id}/guilds/{guild_id}/commands" in templates


# -- slash commands ------------------------------------------------------------------------------


async def test_slash_command_response_is_recorded(running: Running) -> None:
    emu = running.emu
    alice = emu.add_member("alice")
    inter = await emu.send_slash_command("hello", {"name": "Bob", "times": 3}, user_id=alice)
    assert inter.response_type == 4 and not inter.ephemeral
    assert inter.ack_ms is not None and inter.ack_ms < 3000
    assert inter.original is not None
    assert inter.original.content == "Hello Bob! x3 (warm)"
    assert inter.original.buttons() == [("emu:like", "Like", "👍"), ("emu:later", "Later", None)]
    assert emu.messages() == [inter.original]
    assert inter.original.interaction_id == inter.id


async def test_commands_and_options_are_checked_against_registration(running: Running) -> None:
    emu = running.emu
    alice = emu.add_member("alice")
    with pytest.raises(CommandUsageError, match="did not register"):
        await emu.send_slash_command("nope", user_id=alice)
    with pytest.raises(CommandUsageError, match="no option"):
        await emu.send_slash_command("hello", {"name": "x", "colour": 1}, user_id=alice)
    with pytest.raises(CommandUsageError, match="outside"):
        await emu.send_slash_command("hello", {"name": "x", "times": 9}, user_id=alice)
    with pytest.raises(CommandUsageError, match="one of"):
        await emu.send_slash_command("hello", {"name": "x", "mood": "angry"}, user_id=alice)
    with pytest.raises(CommandUsageError, match="missing required"):
        await emu.send_slash_command("hello", {}, user_id=alice)


async def test_subcommand_with_member_option(running: Running) -> None:
    emu = running.emu
    alice, bob = emu.add_member("alice"), emu.add_member("bob")
    inter = await emu.send_slash_command(
        "comic", {"title": "Cats", "reader": bob}, group=None, subcommand="new", user_id=alice
    )
    assert inter.original is not None and inter.original.content == f"Cats for <@{bob}>"


async def test_moderators_and_owner_have_manage_messages(running: Running) -> None:
    emu = running.emu
    users = {
        "alice": emu.add_member("alice"),
        "mod": emu.add_member("mod", moderator=True),
        "owner": emu.owner_id,
    }
    answers = {}
    for name, user_id in users.items():
        inter = await emu.send_slash_command("whoami", user_id=user_id)
        assert inter.original is not None
        answers[name] = inter.original.content
    assert answers == {"alice": "member", "mod": "moderator", "owner": "moderator"}


async def test_wrong_token_is_refused(emu: DiscordEmulator) -> None:
    bot = EmuBot(emu.guild_id)
    use_endpoints(bot, emu.api_base, emu.gateway_url)
    with pytest.raises(discord.LoginFailure):
        await asyncio.wait_for(bot.login("not-the-token"), TIMEOUT)
    await bot.close()
    assert emu.problems == ["GET /users/@me: wrong Authorization header"]


def test_gateway_rewrite_keeps_query_and_leaves_other_hosts() -> None:
    gateway = yarl.URL("ws://127.0.0.1:9/gateway")
    rewritten = _rewrite_gateway("wss://gateway.discord.gg/?v=10&encoding=json&compress=zlib-stream", gateway)
    assert rewritten == "ws://127.0.0.1:9/gateway?v=10&encoding=json&compress=zlib-stream"
    resume = "wss://gateway-us-east1-b.discord.gg?v=10"
    assert _rewrite_gateway(resume, gateway) == "ws://127.0.0.1:9/gateway?v=10"
    assert _rewrite_gateway("ws://proxy.local/gw?v=10", gateway) == "ws://proxy.local/gw?v=10"


async def test_ephemeral_reply_is_not_visible(running: Running) -> None:
    emu = running.emu
    inter = await emu.send_slash_command("secret", user_id=emu.add_member("alice"))
    assert inter.ephemeral and inter.original is not None and inter.original.ephemeral
    assert emu.messages() == []


async def test_defer_then_followup_with_file(running: Running) -> None:
    emu = running.emu
    alice = emu.add_member("alice")
    upload = ("in.png", png_bytes((30, 20), "blue"), "image/png")
    inter = await emu.send_slash_command("render", {"prompt": "a cat"}, attachments={"image": upload}, user_id=alice)
    assert inter.response_type == 5
    message = await emu.wait_for(lambda: finished_response(inter))
    assert inter.followups == [message]
    assert message.embeds[0]["title"] == "a cat"
    assert message.embeds[0]["image"]["url"] == "attachment://render.png"
    [attachment] = message.attachments
    assert attachment.filename == "render.png" and attachment.content_type == "image/png"
    assert attachment.image().size == (30, 20)
    assert emu.messages() == [message]
    async with aiohttp.ClientSession() as session, session.get(attachment.url) as response:
        assert await response.read() == attachment.data
    [multipart] = [r for r in emu.requests if r.files]
    assert multipart.json["attachments"][0]["filename"] == "render.png"


async def test_file_responses_ephemeral_followups_edits_and_replies(running: Running) -> None:
    emu = running.emu
    inter = await emu.send_slash_command("gallery", user_id=emu.add_member("alice"))
    reply = await emu.wait_for(lambda: [m for m in emu.messages() if m.content == "a reply"])
    original = inter.original
    assert original is not None and reply[0].reference_id is None
    assert [a.filename for a in original.attachments] == ["two.png"]
    assert original.attachments[0].image().size == (16, 16)
    assert original.embeds[0]["fields"] == [{"name": "seed", "value": "42", "inline": True}]
    [followup] = inter.followups
    assert followup.ephemeral and followup.content == "only you see this"
    assert emu.messages() == [original, reply[0]]


async def test_modal_is_recorded(running: Running) -> None:
    emu = running.emu
    inter = await emu.send_slash_command("ask", user_id=emu.add_member("alice"))
    assert inter.response_type == 9 and inter.modal is not None
    assert inter.modal["custom_id"] == "emu:ask"
    assert inter.original is None


# -- components and reactions --------------------------------------------------------------------


async def test_button_click_updates_the_message(running: Running) -> None:
    emu = running.emu
    alice = emu.add_member("alice")
    inter = await emu.send_slash_command("hello", {"name": "Bob"}, user_id=alice)
    assert inter.original is not None
    message_id = inter.original.id
    click = await emu.click_button(message_id, "emu:like", user_id=alice)
    assert click.response_type == 7
    assert emu.message(message_id).content == "liked by alice"
    assert emu.message(message_id).edit_count == 1
    later = await emu.click_button(message_id, "emu:later", user_id=alice)
    assert later.response_type == 6
    await emu.wait_for(lambda: emu.message(message_id).content == "edited later")
    assert emu.message(message_id).components == []
    with pytest.raises(LookupError, match="no button"):
        await emu.click_button(message_id, "emu:like", user_id=alice)


async def test_reactions_reach_the_bot_and_back(running: Running) -> None:
    emu, bot = running.emu, running.bot
    alice = emu.add_member("alice")
    inter = await emu.send_slash_command("hello", {"name": "Bob"}, user_id=alice)
    assert inter.original is not None
    message_id = inter.original.id
    await emu.add_reaction(message_id, "⭐", user_id=alice)
    await emu.wait_for(lambda: emu.message(message_id).reactions.get("⭐") == {alice, emu.bot_user_id})
    assert bot.reactions == [(message_id, "⭐", alice)]
    await emu.remove_reaction(message_id, "⭐", user_id=alice)
    assert emu.message(message_id).reactions["⭐"] == {emu.bot_user_id}


async def test_autocomplete_returns_the_bots_choices(running: Running) -> None:
    emu = running.emu
    choices = await emu.autocomplete("pick", {"style": "in"}, "style", user_id=emu.add_member("alice"))
    assert [c["value"] for c in choices] == ["ink"]


async def test_channel_messages_round_trip(running: Running) -> None:
    emu, bot = running.emu, running.bot
    channel = bot.get_channel(emu.channel_id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("first", file=discord.File(io.BytesIO(b"hello"), filename="SPOILER_note.txt"))
    assert emu.message(sent.id).attachments[0].spoiler
    fetched = await channel.fetch_message(sent.id)
    assert fetched.content == "first" and fetched.attachments[0].filename == "SPOILER_note.txt"
    await sent.edit(content="second", attachments=[])
    assert emu.message(sent.id).content == "second" and emu.message(sent.id).attachments == []
    await sent.delete()
    assert emu.messages() == []


# -- honesty of the checks -----------------------------------------------------------------------


async def test_invalid_requests_are_recorded_as_problems(running: Running) -> None:
    emu, bot = running.emu, running.bot
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=emu.channel_id)
    with pytest.raises(discord.HTTPException) as invalid:
        await bot.http.request(route, json={"content": 5, "embeds": "nope"})
    assert invalid.value.status == 400
    assert any(p.startswith("spec:") and "/channels/{channel_id}/messages" in p for p in emu.problems)
    channel = bot.get_channel(emu.channel_id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException):
        await channel.send("x" * 2001)
    assert any("2001 chars" in p for p in emu.problems)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{emu.api_base}/users/@me") as response:
            assert response.status == 401
        headers = {"Authorization": f"Bot {emu.token}"}
        async with session.get(f"{emu.api_base}/no/such/route", headers=headers) as response:
            assert response.status == 404
        form = aiohttp.FormData()
        form.add_field("bogus", b"data", filename="x.bin")
        async with session.post(
            f"{emu.api_base}/channels/{emu.channel_id}/messages", data=form, headers=headers
        ) as response:
            assert response.status == 400
    assert any("missing Authorization" in p for p in emu.problems)
    assert any("unknown route" in p for p in emu.problems)
    assert any("malformed multipart" in p for p in emu.problems)
    assert len(emu.problems) == 5
    emu.problems.clear()


# -- failure paths ---------------------------------------------------------------------------------


async def test_expired_token_makes_the_bot_fall_back(running: Running) -> None:
    emu, bot = running.emu, running.bot
    inter = await emu.send_slash_command("slow", user_id=emu.add_member("alice"))
    emu.expire_interaction_tokens()
    bot.gate.set()
    fallback = await emu.wait_for(lambda: [m for m in emu.messages() if m.content == "fallback"])
    assert fallback[0].interaction_id is None
    assert any(r.status == 401 and r.route_template == "/webhooks/{webhook_id}/{webhook_token}" for r in emu.requests)
    assert inter.followups == []


async def test_upload_limit_gives_413(running: Running) -> None:
    emu = running.emu
    emu.set_upload_limit(100)
    inter = await emu.send_slash_command("render", {"prompt": "big"}, user_id=emu.add_member("alice"))
    message = await emu.wait_for(lambda: finished_response(inter))
    assert message.content == "upload failed: 40005"
    assert any(r.status == 413 for r in emu.requests)


# -- gateway lifecycle -----------------------------------------------------------------------------


async def test_resume_after_disconnect(running: Running) -> None:
    emu, bot = running.emu, running.bot
    alice = emu.add_member("alice")
    inter = await emu.send_slash_command("hello", {"name": "Bob"}, user_id=alice)
    assert inter.original is not None
    await emu.disconnect_gateway(resume=True)
    await emu.add_reaction(inter.original.id, "🎨", user_id=alice)  # sent while the socket is down
    await emu.wait_for(lambda: emu.gateway.resume_count == 1)
    await emu.wait_until_ready()
    await emu.wait_for(lambda: bot.reactions)
    assert emu.gateway.identify_count == 1
    assert emu.gateway.replayed >= 1  # the reaction, sent while no socket was open
    again = await emu.send_slash_command("hello", {"name": "Cy"}, user_id=alice)
    assert again.original is not None and again.original.content.startswith("Hello Cy")


async def test_invalid_session_makes_the_bot_identify_again(running: Running) -> None:
    emu = running.emu
    await emu.disconnect_gateway(resume=False)
    await emu.wait_for(lambda: emu.gateway.identify_count == 2)
    await emu.wait_until_ready()
    inter = await emu.send_slash_command("hello", {"name": "Dee"}, user_id=emu.add_member("alice"))
    assert inter.original is not None


async def test_restarted_bot_keeps_state_and_persistent_buttons(emu: DiscordEmulator) -> None:
    first = await start_bot(emu)
    alice = emu.add_member("alice")
    inter = await emu.send_slash_command("hello", {"name": "Bob"}, user_id=alice)
    assert inter.original is not None
    ids = {c["name"]: c["id"] for c in emu.commands(emu.guild_id)}
    await stop_bot(first)
    second = await start_bot(emu)
    try:
        assert emu.gateway.identify_count == 2
        assert {c["name"]: c["id"] for c in emu.commands(emu.guild_id)} == ids
        guild = second.bot.get_guild(emu.guild_id)
        assert guild is not None and guild.get_member(alice) is None  # no members intent: not sent
        await emu.click_button(inter.original.id, "emu:like", user_id=alice)
        assert emu.message(inter.original.id).content == "liked by alice"
    finally:
        await stop_bot(second)
    assert emu.problems == []
