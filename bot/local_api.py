"""The bot's small local HTTP API for the studio: generate through the bot's own queue.

aiohttp, bound to 127.0.0.1 only, every request carrying the shared secret from ``[studio]
secret`` in the ``X-Studio-Secret`` header. A generation request is checked by exactly the code
/imagine uses (flags, styles, blocked words: :func:`~bot.cogs.imagine._build.build_request`;
limits and the model's token limit: :func:`~rules.request.validate`; the queue's caps), recorded
as a job of the studio's own member id (``[studio] user_id``) and handed to the job runner like
any other: same fairness, same caps. The result is stored and posted to ``[studio] channel_id``,
so it lands in the gallery and on Discord; its status and previews stay here for the studio.

    GET  /api/status              the model, styles and defaults the form offers; the queue's length
    POST /api/imagine             JSON options as /imagine takes them -> {"job_id", "position"} or 400 {"error"}
    GET  /api/jobs/{id}           status, place in the queue, the latest status line, image ids when done
    GET  /api/jobs/{id}/preview   the newest progress preview (PNG), 404 while there is none
"""

from __future__ import annotations

import hmac
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import discord
from aiohttp import web

from bot.cogs.imagine._build import ImagineOptions, build_request, model_family_of
from bot.jobs import JobOrigin
from bot.outlets import ChannelOutlet, PostedRef
from generation.errors import QueueFull
from rules.request import SEED_MAX, RequestError, validate
from storage.jobs import NewJob

if TYPE_CHECKING:
    from bot.bot import ArtBot
    from bot.config import StudioSettings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Studio-Secret"
HOST = "127.0.0.1"
#: Web jobs whose status the API remembers (the oldest are forgotten first; the database keeps all).
REMEMBERED_JOBS = 500
#: The option ranges /imagine's slash command declares (Discord checks those before the bot sees them).
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "seed": (0, SEED_MAX), "steps": (1, 150), "guidance": (0.0, 30.0), "width": (64, 2048),
    "height": (64, 2048), "count": (1, 4),
}
TEXT_LIMITS = {"prompt": (1, 1000), "negative": (0, 1000), "style": (1, 32)}
_INTS = ("seed", "steps", "width", "height", "count")


class WebOutlet(ChannelOutlet):
    """A studio job's outlet: the status stays here (for the API), the result is posted to the channel."""

    def __init__(self, client: discord.Client, *, channel_id: int, requester_id: int) -> None:
        super().__init__(client, channel_id=channel_id, requester_id=requester_id)
        self.status_text = ""
        self.preview: bytes | None = None
        self.set_status_message(None)

    async def show_status(
        self, text: str, *, view: discord.ui.View | None = None, preview: bytes | None = None, final: bool = False
    ) -> None:
        """Remember the status line and the newest preview (nothing is posted)."""
        self.status_text = text
        if preview is not None:
            self.preview = preview
        if final:
            self.preview = None

    async def post_result(
        self,
        *,
        embed: discord.Embed,
        files: list[discord.File],
        view: discord.ui.View | None = None,
        mention: bool = True,
    ) -> PostedRef:
        """Post to the studio's channel without pinging anyone (the studio member is no Discord user)."""
        return await super().post_result(embed=embed, files=files, view=view, mention=False)


def options_from_json(body: Any) -> ImagineOptions:
    """The /imagine options in a request body, checked against the slash command's own option ranges."""
    if not isinstance(body, dict):
        raise RequestError("body", "The request must be a JSON object of /imagine options.")
    known = {"prompt", "negative", *OPTION_RANGES, "style"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(unknown[0], f"`{unknown[0]}` is not an /imagine option.")
    values: dict[str, Any] = {}
    for name, (low_len, high_len) in TEXT_LIMITS.items():
        value = body.get(name)
        if value is None or (value == "" and name != "prompt"):
            continue
        if not isinstance(value, str) or not low_len <= len(value) <= high_len:
            raise RequestError(name, f"`{name}` must be text of {low_len} to {high_len} characters.")
        values[name] = value
    if "prompt" not in values:
        raise RequestError("prompt", "`prompt` is empty; describe the image you want.")
    for name, (low, high) in OPTION_RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or (name in _INTS and value != int(value)):
            raise RequestError(name, f"`{name}` must be a number.")
        if not low <= value <= high:
            raise RequestError(name, f"`{name}` must be between {low:g} and {high:g}; you gave {value:g}.")
        values[name] = int(value) if name in _INTS else float(value)
    return ImagineOptions(**values)


@dataclass
class _WebJob:
    outlet: WebOutlet


class LocalApi:
    """The API's handlers, bound to one bot."""

    def __init__(self, bot: ArtBot, settings: StudioSettings) -> None:
        self.bot = bot
        self.settings = settings
        self._jobs: OrderedDict[int, _WebJob] = OrderedDict()

    def app(self) -> web.Application:
        """The aiohttp application (every route checks the secret)."""
        app = web.Application(middlewares=[self._check_secret], client_max_size=64 * 1024)
        app.router.add_get("/api/status", self.status)
        app.router.add_post("/api/imagine", self.imagine)
        app.router.add_get("/api/jobs/{job_id:\\d+}", self.job)
        app.router.add_get("/api/jobs/{job_id:\\d+}/preview", self.preview)
        return app

    @web.middleware
    async def _check_secret(self, request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER, "")
        if not self.settings.secret or not hmac.compare_digest(given.encode(), self.settings.secret.encode()):
            return web.json_response({"error": "wrong or missing secret"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def status(self, request: web.Request) -> web.Response:
        """What the studio's form offers, and how busy the queue is."""
        settings, model, queue = self.bot.settings, self.bot.model, self.bot.queue
        styles = [{"name": name, "description": preset.description} for name, preset in sorted(settings.styles.items())]
        return web.json_response({
            "model": model.model_name,
            "native_size": model.native_size,
            "styles": styles,
            "limits": asdict(settings.generation),
            "channel_id": self.settings.channel_id,
            "user_id": self.settings.user_id,
            "queue": {"waiting": queue.pending_count(), "running": len(queue.running()),
                      "mine": queue.pending_count(self.settings.user_id)},
        })

    async def imagine(self, request: web.Request) -> web.Response:
        """Check, record and queue one generation as the studio's member; its job id and place."""
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "The request must be JSON."}, status=400)
        if self.settings.channel_id <= 0:
            return web.json_response({"error": "Set [studio] channel_id to generate from the studio."}, status=503)
        bot, settings = self.bot, self.bot.settings
        user_id = self.settings.user_id
        try:
            options = options_from_json(body)
            built = build_request(
                options, limits=settings.generation, native=bot.model.native_size, styles=settings.styles,
                safety=settings.safety, loras=settings.loras, family=model_family_of(bot.model),
            )
            checked = validate(built, settings.generation)
            bot.queue.check_capacity(user_id)
        except (RequestError, QueueFull) as error:
            return web.json_response({"error": str(error)}, status=400)
        channel_id = self.settings.channel_id
        channel = bot.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        # The server's own rules (/settings) apply to the studio's jobs too; it has no roles to check.
        origin = JobOrigin(user_id=user_id, guild_id=guild.id if guild is not None else None, channel_id=channel_id)
        refused = bot.servers.access_refusal(origin, checked.prompt)
        if refused is None:
            try:
                checked = bot.runner.validate(checked, origin.guild_id)
            except RequestError as error:
                refused = str(error)
        if refused is not None:
            return web.json_response({"error": refused}, status=400)
        async with bot.servers.member_turn(origin):  # counted and written together, as start_job does
            refused = await bot.servers.quota_refusal(origin, checked.count)
            if refused is not None:
                return web.json_response({"error": refused}, status=400)
            record = await bot.storage.jobs.create(
                NewJob(
                    kind=checked.kind, requester_id=user_id, guild_id=origin.guild_id,
                    channel_id=channel_id, request_json=checked.to_json(),
                )
            )
        outlet = WebOutlet(bot, channel_id=channel_id, requester_id=user_id)
        self._jobs[record.id] = _WebJob(outlet)
        while len(self._jobs) > REMEMBERED_JOBS:
            self._jobs.popitem(last=False)
        position = await bot.runner.enqueue(record, checked, outlet, check_caps=False)
        log.info("studio job %s queued at position %s", record.id, position)
        return web.json_response({"job_id": record.id, "position": position})

    async def _web_job(self, request: web.Request) -> tuple[int, Any]:
        job_id = int(request.match_info["job_id"])
        try:
            record = await self.bot.storage.jobs.get(job_id)
        except KeyError:
            raise web.HTTPNotFound(text="no such job") from None
        if record.requester_id != self.settings.user_id:
            raise web.HTTPNotFound(text="no such job")
        return job_id, record

    async def job(self, request: web.Request) -> web.Response:
        """One studio job: status, place, status line, and its visible images once done."""
        job_id, record = await self._web_job(request)
        web_job = self._jobs.get(job_id)
        images = await self.bot.storage.images.for_job(job_id) if record.status == "done" else []
        return web.json_response({
            "job_id": job_id,
            "status": record.status,
            "position": self.bot.queue.position(job_id) if record.status in ("queued", "running") else None,
            "text": web_job.outlet.status_text if web_job is not None else "",
            "has_preview": web_job is not None and web_job.outlet.preview is not None,
            "image_ids": [image.id for image in images if image.safety != "withhold"],
            "withheld": sum(image.safety == "withhold" for image in images),
            "error": record.error,
        })

    async def preview(self, request: web.Request) -> web.Response:
        """The newest progress preview of a running studio job."""
        job_id, _ = await self._web_job(request)
        web_job = self._jobs.get(job_id)
        if web_job is None or web_job.outlet.preview is None:
            raise web.HTTPNotFound(text="no preview yet")
        return web.Response(body=web_job.outlet.preview, content_type="image/png")


async def start_local_api(bot: ArtBot, settings: StudioSettings) -> web.AppRunner | None:
    """Serve the API on 127.0.0.1 at ``[studio] api_port``; None (nothing started) without a secret.

    Stop it with ``await runner.cleanup()``.
    """
    if not settings.secret:
        log.info("no [studio] secret: the studio's local API is off")
        return None
    runner = web.AppRunner(LocalApi(bot, settings).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, settings.api_port)
    await site.start()
    log.info("studio API listening on http://%s:%s", HOST, settings.api_port)
    return runner
