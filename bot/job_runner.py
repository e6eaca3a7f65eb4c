"""Follows each job from its database row to its posted result.

:class:`JobRunner` is the one place where storage, the GPU queue and Discord meet: it hands a
recorded job to the queue, edits the status message as steps finish (no more often than the
configured interval), stores the images and their rows, posts the result, and records how the
job ended. On start it re-queues every job the last run left ``queued`` or ``running``, in its
original order, so nothing a user asked for is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import discord
from discord.utils import escape_markdown
from PIL import Image

from bot import embeds
from bot.discord_limits import CONTENT_MAX, DEFAULT_UPLOAD_LIMIT, UPLOAD_HEADROOM
from bot.errors import reply_ephemeral
from bot.guild_rules import ServerRules
from bot.jobs import CancelOutcome, JobOrigin, ModelInfo
from bot.outlets import NO_PINGS, ChannelOutlet, InteractionOutlet, JobOutlet, PostedRef, post_notice
from bot.result_files import ResultUpload, encode_png_all, result_upload, withheld_note
from bot.views import cancel_view
from composition.preview_veil import veil_preview
from composition.upload_fit import MIN_MAX_BYTES
from generation.errors import (
    FailureForMember,
    JobCancelled,
    JobInterrupted,
    JobTimedOut,
    ModelLoadError,
    QueueFull,
    WorkerLost,
)
from generation.queue import JobQueue, Progress, QueuedJob
from rules.png_parameters import parameters_text
from rules.request import (
    FLAGGED_INFO_KEY,
    MASK_INFO_KEY,
    SAMPLER_INFO_KEY,
    GenerationLimits,
    GenerationRequest,
    RequestError,
    validate,
)
from rules.safety import SafetyPolicy
from rules.training import TRAIN_KIND, TRAINING_KEY, TrainingSpec
from storage import Storage
from storage.images import NewImage
from storage.jobs import JobRecord

log = logging.getLogger(__name__)

POST_RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
#: The longest a status edit or result post waits for interactions being acknowledged.
ANSWER_PRIORITY_MAX_WAIT_S = 1.0
#: Status messages whose place in the queue is refreshed per round (see ``_refresh_positions``).
POSITION_EDITS_PER_ROUND = 5
#: What a member is told when a job's source image is gone from disk.
MISSING_SOURCE_TEXT = "The source image of this job is missing from disk."
#: ... when it is on disk but can't be read (a damaged file).
UNREADABLE_SOURCE_TEXT = "The source image of this job can't be read (the file is damaged)."
#: ... when queueing failed for any other reason.
NOT_QUEUED_TEXT = "This job could not be queued; the owner can find details in the log."
#: Discord accepts an interaction token for 15 minutes; the database forgets it after that.
INTERACTION_TOKEN_TTL_S = 15 * 60.0
#: How often expired interaction tokens are cleared while the bot runs.
TOKEN_SWEEP_INTERVAL_S = 60.0
#: How far before a delivery began a restart looks for its posted result, and at most how many messages.
ALREADY_POSTED_MARGIN_S = 300.0
ALREADY_POSTED_MAX_MESSAGES = 5000

#: Builds the buttons of a result from (job id, image ids, whether each image is shown); None: no buttons.
ResultViewFactory = Callable[[int, Sequence[int], Sequence[bool]], discord.ui.View | None]


@dataclass
class _Tracked:
    """A job the runner follows: its row, request, outlet and throttled status edits."""

    record: JobRecord
    request: GenerationRequest
    outlet: JobOutlet
    view: discord.ui.View | None = None
    last_edit: float = 0.0
    last_text: str = ""
    known_status_id: int | None = None
    #: The newest preview not shown yet; it rides on the next status edit.
    preview: bytes | None = None
    edit_task: asyncio.Task[None] | None = None
    started: float | None = None
    finished: bool = False
    #: The largest upload this job's interaction allows (None: not known; the guild's limit applies).
    upload_limit: int | None = None
    #: Whether this run marked the row running (counting an attempt) already.
    marked_running: bool = False


class JobRunner:
    """Turns recorded jobs into posted results."""

    def __init__(
        self,
        client: discord.Client,
        storage: Storage,
        queue: JobQueue,
        model: ModelInfo,
        *,
        limits: GenerationLimits,
        safety: SafetyPolicy,
        servers: ServerRules | None = None,
        progress_interval_s: float = 1.5,
    ) -> None:
        self.client = client
        self.storage = storage
        self.queue = queue
        self.model = model
        self.progress_interval_s = progress_interval_s
        #: What a request may ask for (``[generation]``); also caps the result file (``max_result_bytes``).
        self.limits = limits
        #: Blocked words and what to do with flagged images (``[safety]``).
        self.safety = safety
        #: Each server's own settings over the config (``/settings``); None: the config's everywhere.
        self.servers = servers
        self._tracked: dict[int, _Tracked] = {}
        self._followers: set[asyncio.Task[None]] = set()
        self._closing = False
        self._positions_dirty = False
        self._answering = 0
        self._answered = asyncio.Event()
        self._answered.set()
        self._refresher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        queue.on_change = self._queue_changed
        #: Awaited with (job row, posted message id) after a result is posted and recorded; cogs
        #: hook in here (the comic cog links a panel to its image, for example).
        self.on_result: list[Callable[[JobRecord, int], Awaitable[None]]] = []
        #: The buttons on results, set by the cog that owns them (None: results have no buttons).
        self.result_view: ResultViewFactory | None = None
        #: The default model's name: a request naming no model runs on it (the queue prefers
        #: workers that have it loaded). None: not known (the queue then places such jobs anywhere).
        self.default_model: str | None = None
        #: What results call each model by name (its display name); others are called by their name.
        self.model_titles: dict[str, str] = {}

    def model_title(self, request: GenerationRequest) -> str:
        """What a result says its model is: the requested model's display name, or the default model's name."""
        if request.model is None:
            return self.model_titles.get(self.default_model or "", self.model.model_name)
        return self.model_titles.get(request.model, request.model)

    # -- starting --------------------------------------------------------------------------------

    def limits_for(self, guild_id: int | None) -> GenerationLimits:
        """The limits requests in this server are checked against: ``[generation]`` with its own over them."""
        return self.servers.effective(guild_id).limits if self.servers is not None else self.limits

    def safety_for(self, guild_id: int | None) -> SafetyPolicy:
        """The safety policy of this server: ``[safety]`` with its own NSFW policy over it."""
        return self.servers.effective(guild_id).safety if self.servers is not None else self.safety

    def validate(self, request: GenerationRequest, guild_id: int | None = None) -> GenerationRequest:
        """Check a request against the server's limits (:class:`RequestError`)."""
        return validate(request, self.limits_for(guild_id))

    async def start_job(
        self,
        origin: JobOrigin,
        job: GenerationRequest | JobRecord,
        *,
        parent_image_id: int | None = None,
        headline: str | None = None,
        missing_source: str = MISSING_SOURCE_TEXT,
    ) -> int | None:
        """Start a job from a command, button or reaction: its id, or None if refused (the member is told why).

        ``job`` is a request, checked against the server's own rules (``/settings``: its
        channels, roles and kid-friendly words, its limits, the member's pending cap, cooldown and
        daily quota, see :class:`bot.guild_rules.ServerRules`), validated, capacity-checked and
        recorded here, or a row the caller recorded (and checked) itself, such as a comic panel's,
        written with its panel in one transaction. The job is queued and announced: from an
        interaction, the response is its status message (``headline`` and its place instead of the
        usual queued line); from a reaction, the status comes later as a channel message. A job
        whose source image is gone is marked failed; one whose status message can't be posted is
        cancelled again.
        """
        reserved = False
        servers = self.servers
        if isinstance(job, GenerationRequest):
            try:
                refused = servers.access_refusal(origin, job.prompt) if servers is not None else None
                if refused is not None:
                    await self.refuse(origin, refused)
                    return None
                request = self.validate(job, origin.guild_id)
                # Take the member's slot before any await, so a burst cannot pass the caps.
                user_limit = servers.effective(origin.guild_id).max_pending_per_member if servers else None
                self.queue.reserve(origin.user_id, origin.guild_id, user_limit=user_limit)
            except (RequestError, QueueFull) as error:
                await self.refuse(origin, str(error))
                return None
            reserved = True
        try:
            if isinstance(job, GenerationRequest):
                record_or_refusal = await self._create_within_quota(origin, request, parent_image_id)
                if isinstance(record_or_refusal, str):
                    await self.refuse(origin, record_or_refusal)
                    return None
                record = record_or_refusal
            else:
                record, request = job, GenerationRequest.from_json(job.request_json)
            outlet = self.outlet_for(record)
            interaction = origin.interaction
            if interaction is None:
                outlet.set_status_message(None)
            try:
                position = await self.enqueue(
                    record, request, outlet, check_caps=False,
                    upload_limit=interaction.filesize_limit if interaction else None,
                )
            except FileNotFoundError:
                await self.storage.jobs.finish(record.id, "failed", "source image missing")
                await self.refuse(origin, missing_source)
                return None
            except Exception as error:
                # Never leave the row queued: the next start would try it again, and again.
                log.exception("job %s could not be queued", record.id)
                await self.storage.jobs.finish(record.id, "failed", f"not queued: {_describe(error)}")
                await self.refuse(origin, UNREADABLE_SOURCE_TEXT if _is_image_error(error) else NOT_QUEUED_TEXT)
                return None
        finally:
            if reserved:
                self.queue.unreserve(origin.user_id, origin.guild_id)
        if interaction is not None:
            if headline is None:
                text = embeds.queued_text(request, position, waiting_for_workers=self.waiting_for_workers)
            else:
                text = embeds.shorten(f"{headline} ({self._place_text(position)})", CONTENT_MAX)
            await self._announce(interaction, record, outlet, text)
        return record.id

    async def _create_within_quota(
        self, origin: JobOrigin, request: GenerationRequest, parent_image_id: int | None
    ) -> JobRecord | str:
        """Write the job row unless the member's cooldown or daily quota refuses it (then: why).

        The count and the write happen under the member's turn, so a burst is counted one by one.
        """
        new_job = origin.new_job(request, parent_image_id=parent_image_id)
        if self.servers is None:
            return await self.storage.jobs.create(new_job)
        async with self.servers.member_turn(origin):
            refused = await self.servers.quota_refusal(origin, request.count)
            if refused is not None:
                return refused
            return await self.storage.jobs.create(new_job)

    async def refuse(self, origin: JobOrigin, text: str) -> None:
        """Tell the member why nothing was queued: ephemerally, or a short notice for a reaction."""
        if origin.interaction is not None:
            await reply_ephemeral(origin.interaction, text)
        else:
            await post_notice(self.client, origin.channel_id, origin.user_id, text)

    async def _announce(
        self, interaction: discord.Interaction, record: JobRecord, outlet: JobOutlet, text: str
    ) -> None:
        """Answer the interaction with the job's status message (editing it if deferred) and remember it."""
        view = cancel_view(record.id)
        try:
            if interaction.response.is_done():  # deferred while uploads were checked
                message = await interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS, view=view)
                message_id: int | None = message.id
            else:
                response = await interaction.response.send_message(text, allowed_mentions=NO_PINGS, view=view)
                message_id = getattr(response, "message_id", None)
        except discord.HTTPException:
            outlet.set_status_message(None)
            self.queue.cancel(record.id)
            raise
        outlet.set_status_message(message_id, via_webhook=isinstance(outlet, InteractionOutlet))
        if message_id is not None:
            await self.remember_status(record.id, message_id, record.channel_id, record.guild_id)

    # -- submitting ------------------------------------------------------------------------------

    async def enqueue(
        self,
        record: JobRecord,
        request: GenerationRequest,
        outlet: JobOutlet,
        *,
        check_caps: bool = True,
        upload_limit: int | None = None,
    ) -> int:
        """Hand a recorded job to the queue and start following it; return its place in the queue.

        ``upload_limit`` is the interaction's own upload limit, where there is one.
        """
        init_image = await self._load_init_image(request)
        tracked = _Tracked(
            record=record, request=request, outlet=outlet, view=cancel_view(record.id),
            known_status_id=record.status_message_id, upload_limit=upload_limit,
        )
        job = QueuedJob(
            job_id=record.id,
            user_id=record.requester_id,
            request=request,
            init_image=init_image,
            guild_id=record.guild_id,
            model=request.model or self.default_model,
            on_start=lambda job: self._started(tracked, job),
            on_progress=lambda progress: self._progress(tracked, progress),
            on_requeue=lambda job: self._requeued(tracked, job),
        )
        if record.kind == TRAIN_KIND:
            # Training runs in slices on the same queue (generation.training); it is never batched.
            job.work = TRAIN_KIND
            # A training step (forward, backward and, with checkpointing, a second forward) costs about
            # two image steps of generation (which run the UNet twice for guidance): for ETAs.
            job.cost_steps = 2 * TrainingSpec.from_dict(request.extra[TRAINING_KEY]).slice_steps
        future = self.queue.submit(job, check_caps=check_caps)
        self._tracked[record.id] = tracked
        follower = asyncio.create_task(self._follow(tracked, future), name=f"job-{record.id}")
        self._followers.add(follower)
        follower.add_done_callback(self._followers.discard)
        return self.queue.position(record.id) or 1

    async def recover(self) -> int:
        """Re-queue the jobs the last run left unfinished, oldest first; return how many."""
        records = await self.storage.jobs.active()
        for record in records:
            try:
                await self._recover_one(record)
            except Exception as error:
                # One bad row or damaged file must not keep the bot (and every other job) from starting.
                log.exception("job %s could not be re-queued; it is marked failed", record.id)
                self._tracked.pop(record.id, None)
                await self.storage.jobs.finish(record.id, "failed", f"not re-queued: {_describe(error)}")
        if records:
            log.info("re-queued %d unfinished job(s) from the last run", len(records))
        # The re-queued jobs' outlets hold their tokens in memory; the rows need them no more.
        await self.forget_expired_tokens()
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_tokens(), name="interaction-token-sweep")
        return len(records)

    async def forget_expired_tokens(self) -> int:
        """Clear the interaction tokens Discord no longer accepts from the database; how many."""
        forgotten = await self.storage.jobs.forget_expired_tokens(INTERACTION_TOKEN_TTL_S)
        if forgotten:
            log.info("forgot %d expired interaction token(s)", forgotten)
        return forgotten

    async def _sweep_tokens(self) -> None:
        while not self._closing:
            await asyncio.sleep(TOKEN_SWEEP_INTERVAL_S)
            try:
                await self.forget_expired_tokens()
            except Exception:
                log.exception("clearing expired interaction tokens failed")

    async def _recover_one(self, record: JobRecord) -> None:
        await self.storage.jobs.mark_queued(record.id)
        if record.delivery_started_at is not None and await self._already_posted(record):
            return
        outlet = self.outlet_for(record)
        outlet.set_status_message(record.status_message_id, via_webhook=isinstance(outlet, InteractionOutlet))
        if record.attempts >= self.queue.max_attempts:
            reason = f"gave up after {record.attempts} attempts"
            log.warning("job %s: %s; not regenerated", record.id, reason)
            await self.storage.jobs.finish(record.id, "failed", reason)
            await self._tell_failed(record, outlet, GAVE_UP_TEXT)
            return
        request = GenerationRequest.from_json(record.request_json)
        try:
            position = await self.enqueue(record, request, outlet, check_caps=False)
        except FileNotFoundError as error:
            await self.storage.jobs.finish(record.id, "failed", f"source image missing: {error}")
            return
        tracked = self._tracked[record.id]
        self._spawn(self._show(tracked, embeds.queued_text(
            request, position, restarted=True, waiting_for_workers=self.waiting_for_workers
        )))

    async def _tell_failed(self, record: JobRecord, outlet: JobOutlet, text: str) -> None:
        """Say on a job's status message (posting one if it has none) that it failed, where Discord lets us."""
        try:
            await outlet.show_status(text, view=None, final=True)
        except (discord.HTTPException, OSError) as error:
            log.warning("could not tell the requester of job %s that it failed: %s", record.id, error)

    def outlet_for(self, record: JobRecord) -> JobOutlet:
        """The outlet a job's messages go through, from its row alone (works after a restart)."""
        if record.interaction_token and record.application_id and record.interaction_at:
            return InteractionOutlet(
                self.client,
                channel_id=record.channel_id,
                requester_id=record.requester_id,
                application_id=record.application_id,
                token=record.interaction_token,
                issued_at=record.interaction_at,
            )
        return ChannelOutlet(self.client, channel_id=record.channel_id, requester_id=record.requester_id)

    async def request_cancel(self, job_id: int, *, user_id: int, moderator: bool) -> CancelOutcome:
        """Cancel a job for a member: its requester, or a moderator (Manage Messages)."""
        tracked = self._tracked.get(job_id)
        if tracked is None:
            return CancelOutcome(False, "This job has already finished.")
        if user_id != tracked.record.requester_id and not moderator:
            return CancelOutcome(False, "Only the member who asked for this job, or a moderator, can cancel it.")
        if not self.queue.cancel(job_id):
            return CancelOutcome(False, "This job has already finished.")
        log.info("job %s cancelled by %s", job_id, user_id)
        return CancelOutcome(True)

    def jobs_of(self, user_id: int) -> list[tuple[int, GenerationRequest, int | None]]:
        """A member's unfinished jobs: (job id, request, place in the queue: 0 running, None unknown)."""
        return [
            (job_id, tracked.request, self.queue.position(job_id))
            for job_id, tracked in self._tracked.items()
            if tracked.record.requester_id == user_id and not tracked.finished
        ]

    def count_active(self, kind: str, guild_id: int | None) -> int:
        """How many unfinished jobs of this kind (``train``, say) a server has."""
        return sum(
            1 for tracked in self._tracked.values()
            if tracked.record.kind == kind and tracked.record.guild_id == guild_id and not tracked.finished
        )

    async def remember_status(self, job_id: int, message_id: int, channel_id: int, guild_id: int | None) -> None:
        """Record a job's status message, so a ❌ on it (or its Cancel button) still works after a restart."""
        tracked = self._tracked.get(job_id)
        if tracked is not None:
            tracked.known_status_id = message_id
        await self.storage.messages.add_status(
            message_id=message_id, channel_id=channel_id, guild_id=guild_id, job_id=job_id
        )

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop the GPU work (the running job is re-queued in the database) and wait for followers."""
        self._closing = True
        if self._refresher is not None:
            self._refresher.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.queue.close()
        if self._followers:
            await asyncio.wait(set(self._followers), timeout=timeout_s)

    # -- following -------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task the runner waits for on close."""
        task = asyncio.create_task(coro)
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)
        return task

    def _started(self, tracked: _Tracked, job: QueuedJob) -> None:
        tracked.started = time.monotonic()
        tracked.last_edit = tracked.started  # the first progress edit comes an interval in: short jobs need none
        if not tracked.marked_running:  # a job that yields (training) starts once a run, however many slices
            tracked.marked_running = True
            self._spawn(self.storage.jobs.mark_running(tracked.record.id))

    @property
    def waiting_for_workers(self) -> bool:
        """No GPU worker is up (every worker of a cluster lost): queued jobs wait for one to come back."""
        return self.queue.workers == 0

    def _place_text(self, position: int | None) -> str:
        """A waiting job's place, and that it waits for a worker while none is up."""
        place = embeds.queue_place(position)
        return f"{place}, {embeds.WAITING_FOR_WORKERS_TEXT}" if self.waiting_for_workers else place

    def _requeued(self, tracked: _Tracked, job: QueuedJob) -> None:
        """The worker running the job was lost (a cluster node went down): say so; it waits again."""
        tracked.started = None
        tracked.marked_running = False  # its next start counts as an attempt, as it always did
        self._spawn(self.storage.jobs.mark_queued(tracked.record.id))
        position = self.queue.position(tracked.record.id)
        if self.waiting_for_workers:
            text = (f"⚠️ The GPU worker running this job was lost; it is "
                    f"{embeds.WAITING_FOR_WORKERS_TEXT} ({embeds.queue_place(position)}).")
        else:
            text = (f"⚠️ The GPU worker running this job was lost; it starts again on another one "
                    f"({embeds.queue_place(position)}).")
        # An edit like any other: the place refresh waits for it instead of racing it.
        tracked.edit_task = self._spawn(self._show(tracked, text))

    def _progress(self, tracked: _Tracked, progress: Progress) -> None:
        if progress.preview_png is not None:
            tracked.preview = progress.preview_png
        now = time.monotonic()
        if tracked.finished or progress.step >= progress.total or now - tracked.last_edit < self.progress_interval_s:
            return
        if tracked.edit_task is not None and not tracked.edit_task.done():
            return
        tracked.last_edit = now
        if progress.text:  # work such as training says what it is doing
            text = embeds.shorten(f"🧠 {escape_markdown(progress.text)}", CONTENT_MAX)
        else:
            text = embeds.progress_text(tracked.request, progress)
        preview, tracked.preview = tracked.preview, None
        tracked.edit_task = asyncio.create_task(self._show(tracked, text, preview=preview))

    def _queue_changed(self) -> None:
        """Jobs started or left: refresh the places of the waiting ones (at most once an interval)."""
        self._positions_dirty = True
        if self._closing or (self._refresher is not None and not self._refresher.done()):
            return
        self._refresher = asyncio.create_task(self._refresh_positions(), name="queue-positions")

    async def _refresh_positions(self) -> None:
        """Edit the places shown on waiting jobs, nearest the front first, a few edits per interval.

        Discord allows a bot about 50 requests a second in all; a long queue must not spend them
        on places that barely moved, so each round edits at most :data:`POSITION_EDITS_PER_ROUND`
        messages and leaves the rest dirty for the next round.
        """
        while self._positions_dirty and not self._closing:
            self._positions_dirty = False
            await asyncio.sleep(self.progress_interval_s)
            edits = 0
            # One ordered snapshot per round (O(n)), nearest the front first.
            for job, position, eta in self.queue.waiting_places():
                tracked = self._tracked.get(job.job_id)
                if tracked is None or tracked.started is not None or tracked.finished:
                    continue
                text = embeds.queued_text(
                    tracked.request, position, eta_s=eta, waiting_for_workers=self.waiting_for_workers
                )
                if text == tracked.last_text:
                    continue
                if tracked.edit_task is not None and not tracked.edit_task.done():
                    self._positions_dirty = True  # another edit is on its way: this place goes next round
                    continue
                if edits >= POSITION_EDITS_PER_ROUND:
                    self._positions_dirty = True
                    break
                edits += 1
                tracked.edit_task = asyncio.create_task(self._show(tracked, text))

    @contextlib.asynccontextmanager
    async def answering(self) -> AsyncIterator[None]:
        """Mark an interaction being acknowledged: it goes before GPU work and result posting.

        Discord gives an interaction 3 seconds; a finished image can wait. When many members ask at
        once, their acknowledgements go out first: the queue holds its workers (see
        :meth:`JobQueue.hold`) and status edits and result posts wait, each for at most
        :data:`ANSWER_PRIORITY_MAX_WAIT_S`.
        """
        self._answering += 1
        self._answered.clear()
        self.queue.hold(ANSWER_PRIORITY_MAX_WAIT_S)
        try:
            yield
        finally:
            self._answering -= 1
            if not self._answering:
                self._answered.set()
                self.queue.release()

    async def _after_answers(self) -> None:
        if not self._answered.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered.wait(), ANSWER_PRIORITY_MAX_WAIT_S)

    async def _show(self, tracked: _Tracked, text: str, *, preview: bytes | None = None, final: bool = False) -> None:
        await self._after_answers()
        if preview is not None and not self._previews_unveiled(tracked.record.channel_id, tracked.record.guild_id):
            # The safety checker has not seen this image yet: show its colours and layout only.
            preview = await asyncio.to_thread(veil_preview, preview)
        tracked.last_text = text
        try:
            await tracked.outlet.show_status(text, view=tracked.view, preview=preview, final=final)
        except discord.HTTPException as error:
            log.warning("could not update the status of job %s: %s", tracked.record.id, error)
            return
        message_id = tracked.outlet.status_message_id
        if message_id is not None and message_id != tracked.known_status_id:
            tracked.known_status_id = message_id
            record = tracked.record
            await self.remember_status(record.id, message_id, record.channel_id, record.guild_id)

    async def _final_status(self, tracked: _Tracked, text: str) -> None:
        tracked.finished = True
        if tracked.edit_task is not None:
            await asyncio.gather(tracked.edit_task, return_exceptions=True)
        await self._show(tracked, text, final=True)

    async def _follow(self, tracked: _Tracked, future: asyncio.Future[list[Image.Image]]) -> None:
        record = tracked.record
        try:
            images = await future
        except JobInterrupted:
            await self.storage.jobs.mark_queued(record.id)
            return
        except JobCancelled:
            await self.storage.jobs.finish(record.id, "cancelled")
            if record.kind == TRAIN_KIND:  # cancelled between slices: its checkpoint is of no more use
                folder = TrainingSpec.from_dict(tracked.request.extra[TRAINING_KEY]).checkpoint_dir
                await asyncio.to_thread(shutil.rmtree, folder, True)
            await self._final_status(tracked, f"❌ Cancelled: **{embeds.quote_prompt(tracked.request.prompt, 200)}**")
            return
        except JobTimedOut:
            await self.storage.jobs.finish(record.id, "failed", "timed out")
            await self._final_status(tracked, "⚠️ This job ran past the time limit and was stopped. Try fewer steps.")
            return
        except Exception as error:
            await self.storage.jobs.finish(record.id, "failed", f"{type(error).__name__}: {error}"[:500])
            await self._final_status(tracked, _failure_text(error))
            return
        finally:
            self._tracked.pop(record.id, None)
        try:
            await self._deliver(tracked, images)
        except Exception as error:
            await self._delivery_failed(tracked, error)

    async def _delivery_failed(self, tracked: _Tracked, error: Exception) -> None:
        """A result could not be posted or stored: end the job ``failed`` with the reason, or (for a
        passing fault, attempts left) leave it queued for the next start.

        A channel that is gone, a missing permission or a full disk won't fix themselves at a
        restart: those end the job at once, and its status message (if it is still there) says why.
        """
        record = tracked.record
        reason = _permanent_delivery_failure(error)
        attempts = record.attempts + 1  # this run's start counted in the row, not in ``record``
        if reason is None and attempts < self.queue.max_attempts:
            log.exception("delivering job %s failed; it stays queued for the next start", record.id)
            await self.storage.jobs.mark_queued(record.id)
            return
        reason = reason or f"delivery failed {attempts} times: {_describe(error)}"
        log.warning("job %s failed: %s", record.id, reason, exc_info=error)
        await self.storage.jobs.finish(record.id, "failed", reason[:500])
        tracked.finished = True
        if tracked.edit_task is not None:
            await asyncio.gather(tracked.edit_task, return_exceptions=True)
        await self._tell_failed(record, tracked.outlet, f"⚠️ The result could not be posted: {reason}.")

    async def _deliver(self, tracked: _Tracked, images: list[Image.Image]) -> None:
        await self._after_answers()
        record, request = tracked.record, tracked.request
        seeds = request.seeds()
        texts = await asyncio.to_thread(self._parameters_texts, request, seeds, images)
        encoded = await asyncio.to_thread(encode_png_all, images, texts)
        stored = await asyncio.to_thread(lambda: [self.storage.files.write(data) for data in encoded])
        rows = await self.storage.images.add_many(
            [
                NewImage(
                    job_id=record.id,
                    idx=index,
                    seed=seeds[index],
                    params_json=request.image_request(index).replace(
                        extra={**request.extra, "model": self.model_title(request)}
                    ).to_json(),
                    file=file,
                    width=image.width,
                    height=image.height,
                    parent_image_id=record.parent_image_id,
                    requester_id=record.requester_id,
                    guild_id=record.guild_id,
                    flagged=bool(image.info.get(FLAGGED_INFO_KEY)),
                )
                for index, (image, file) in enumerate(zip(images, stored, strict=True))
            ]
        )
        age_restricted = self._age_restricted(record.channel_id)
        safety = self.safety_for(record.guild_id)
        decisions = tuple(
            safety.decide(bool(image.info.get(FLAGGED_INFO_KEY)), age_restricted) for image in images
        )
        if any(decision != "post" for decision in decisions):
            log.info("job %s: safety decisions %s", record.id, decisions)
        await self.storage.images.record_safety([row.id for row in rows], decisions)
        limit = self._upload_limit(tracked)
        upload = await asyncio.to_thread(
            result_upload, images, encoded, decisions, record.id, seeds, limit, texts[0]
        )
        embed = embeds.result_embed(
            request, model_name=self.model_title(request), job_id=record.id,
            requester_id=record.requester_id, image_filename=upload.filename, note=withheld_note(decisions),
        )
        image_ids = [row.id for row in rows]
        view = self.result_view(record.id, image_ids, upload.shown) if self.result_view is not None else None
        await self.storage.jobs.mark_delivering(record.id)
        posted = await self._post_with_retries(
            tracked, embed, upload, view, images, encoded, seeds, limit, parameters=texts[0]
        )
        await self._record_result(record, posted.message_id, posted.channel_id, image_ids)
        took = time.monotonic() - (tracked.started or time.monotonic())
        await self._final_status(tracked, embeds.done_text(request, took))
        await self._add_reactions(
            posted.channel_id, posted.message_id, embeds.result_reactions(len(images), upload.shown)
        )
        for hook in self.on_result:
            try:
                await hook(record, posted.message_id)
            except Exception:
                log.exception("a result hook failed for job %s", record.id)

    def _parameters_texts(
        self, request: GenerationRequest, seeds: list[int], images: list[Image.Image]
    ) -> list[str]:
        """Each image's ``parameters`` text (blocking: LoRA files are hashed, once per file).

        The model is written by the name ``--model`` takes; the sampler is the one the engine says it used.
        """
        model = request.model or self.default_model or self.model.model_name
        return [
            parameters_text(request, seed=seed, model_name=model, sampler=image.info.get(SAMPLER_INFO_KEY))
            for seed, image in zip(seeds, images, strict=True)
        ]

    def _previews_unveiled(self, channel_id: int, guild_id: int | None) -> bool:
        """Sharp previews only where flagged images are posted as they are (age-restricted, ``allow``)."""
        return self._age_restricted(channel_id) and self.safety_for(guild_id).age_restricted_action == "allow"

    def withholds(self, flagged: bool, channel_id: int, guild_id: int | None = None) -> bool:
        """Whether an image flagged so is withheld in that channel (so nothing may be made from it there)."""
        return self.safety_for(guild_id).decide(flagged, self._age_restricted(channel_id)) == "withhold"

    def _age_restricted(self, channel_id: int) -> bool:
        """Whether the channel is age-restricted (from the cache; unknown counts as not)."""
        channel = self.client.get_channel(channel_id)
        is_nsfw = getattr(channel, "is_nsfw", None)
        return bool(is_nsfw()) if callable(is_nsfw) else False

    def _upload_limit(self, tracked: _Tracked) -> int:
        """The largest file this result may be: the config's cap, and the interaction's or guild's limit."""
        limit = tracked.upload_limit
        if limit is None and tracked.record.guild_id is not None:
            guild = self.client.get_guild(tracked.record.guild_id)
            limit = guild.filesize_limit if guild is not None else None
        limit = min(limit or DEFAULT_UPLOAD_LIMIT, self.limits.max_result_bytes)
        return max(limit - UPLOAD_HEADROOM, MIN_MAX_BYTES)

    async def _record_result(self, record: JobRecord, message_id: int, channel_id: int, image_ids: list[int]) -> None:
        await self.storage.messages.add(
            message_id=message_id, channel_id=channel_id, guild_id=record.guild_id,
            job_id=record.id, kind="result", image_ids=image_ids,
        )
        await self.storage.jobs.finish(record.id, "done")

    async def _already_posted(self, record: JobRecord) -> bool:
        """After a crash mid-post: find the job's result in the channel, so it is never posted twice."""
        images = await self.storage.images.for_job(record.id)
        if not images or self.client.user is None:
            return False
        footer = embeds.job_footer_prefix(record.id)
        channel = self.client.get_partial_messageable(record.channel_id)
        since = (record.delivery_started_at or record.created_at) - ALREADY_POSTED_MARGIN_S
        after = discord.Object(discord.utils.time_snowflake(datetime.fromtimestamp(max(since, 0), UTC)))
        try:
            async for message in channel.history(limit=ALREADY_POSTED_MAX_MESSAGES, after=after, oldest_first=True):
                if message.author.id != self.client.user.id or not message.embeds:
                    continue
                if (message.embeds[0].footer.text or "").startswith(footer):
                    await self._record_result(record, message.id, record.channel_id, [i.id for i in images])
                    log.info("job %s was posted before the restart (message %s)", record.id, message.id)
                    return True
        except discord.HTTPException as error:
            log.warning("could not read channel %s to check job %s: %s", record.channel_id, record.id, error)
        return False

    async def _post_with_retries(
        self,
        tracked: _Tracked,
        embed: discord.Embed,
        upload: ResultUpload,
        view: discord.ui.View | None,
        images: list[Image.Image],
        encoded: list[bytes],
        seeds: list[int],
        limit: int,
        *,
        parameters: str | None = None,
    ) -> PostedRef:
        """Post the result, retrying on network faults; a file Discord finds too large is re-encoded smaller."""
        for attempt, delay in enumerate((0.0, *POST_RETRY_DELAYS_S)):
            if delay:
                await asyncio.sleep(delay)
            files = []
            if upload.data is not None and upload.filename is not None:
                files = [discord.File(io.BytesIO(upload.data), filename=upload.filename)]
            try:
                return await tracked.outlet.post_result(embed=embed, files=files, view=view)
            except (discord.HTTPException, OSError) as error:
                status = getattr(error, "status", 0)
                if status == 413 or getattr(error, "code", 0) == 40005:
                    size = len(upload.data or b"")
                    limit = max(MIN_MAX_BYTES, min(limit, size) * 2 // 3)
                    log.info("job %s: Discord refused %d bytes; re-encoding under %d", tracked.record.id, size, limit)
                    upload = await asyncio.to_thread(
                        result_upload, images, encoded, upload.decisions, tracked.record.id, seeds, limit, parameters
                    )
                    if upload.filename is not None:
                        embed.set_image(url=f"attachment://{upload.filename}")
                    continue
                if 400 <= status < 500 and status != 429:
                    raise
                log.warning("posting job %s failed (attempt %d): %s", tracked.record.id, attempt + 1, error)
        raise RuntimeError("Discord did not accept the result after several tries")

    async def _add_reactions(self, channel_id: int, message_id: int, emojis: tuple[str, ...]) -> None:
        message = self.client.get_partial_messageable(channel_id).get_partial_message(message_id)
        for emoji in emojis:
            try:
                await message.add_reaction(emoji)
            except discord.HTTPException as error:
                log.warning("could not add %s to message %s: %s", emoji, message_id, error)
                return

    async def _load_init_image(self, request: GenerationRequest) -> Image.Image | None:
        """The source image (its inpainting mask in ``info``), read off the event loop."""
        if request.init_image is None:
            return None
        path = self.storage.files.path_of(request.init_image)
        mask_path = self.storage.files.path_of(request.mask_image) if request.mask_image else None

        def load() -> Image.Image:
            with Image.open(path) as image:
                source = image.convert("RGB")
            if mask_path is not None:
                with Image.open(mask_path) as mask:
                    source.info[MASK_INFO_KEY] = mask.convert("L")
            return source

        return await asyncio.to_thread(load)


#: What a member is told when a job was started too many times to try again.
GAVE_UP_TEXT = "⚠️ This job failed several times and was given up on. Ask again if you still want it."


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:400]


def _is_image_error(error: BaseException) -> bool:
    from PIL import UnidentifiedImageError

    return isinstance(error, UnidentifiedImageError | SyntaxError | Image.DecompressionBombError) or (
        isinstance(error, OSError) and "image file" in str(error)
    )


#: Errors writing an image that trying again later will not fix (a full disk, an unwritable or broken folder).
_UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST,
               errno.EISDIR)


def _permanent_delivery_failure(error: BaseException) -> str | None:
    """Why a delivery can't succeed by trying again later (a reason for the member), or None."""
    if isinstance(error, discord.NotFound):
        return "the channel or message is gone (404)"
    if isinstance(error, discord.Forbidden):
        return "the bot lacks a permission in this channel (403)"
    if isinstance(error, discord.HTTPException) and 400 <= error.status < 500 and error.status != 429:
        return f"Discord refused it ({error.status})"
    if isinstance(error, OSError) and error.errno in _UNWRITABLE:
        return "the bot's disk is full or its image folder is not writable"
    return None


def _failure_text(error: BaseException) -> str:
    name = type(error).__name__
    if isinstance(error, WorkerLost):
        return "⚠️ The GPU workers were lost while running this job too many times; it was stopped."
    if isinstance(error, ModelLoadError):
        which = f"`{error.model}`" if error.model else "this job's model"
        why = f": {error.reason}" if error.reason else ""
        return (f"⚠️ The model {which} could not be loaded{why}. Pick another model (`/models` lists them); "
                "the owner can find details in the log.")
    if isinstance(error, FailureForMember):
        return f"⚠️ {error}"
    if "OutOfMemory" in name or "out of memory" in str(error).lower():
        return "⚠️ The GPU ran out of memory on this job. Try a smaller size or fewer images."
    return "⚠️ Something went wrong while generating this image; the owner can find details in the log."
