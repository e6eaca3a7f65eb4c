"""The GPU job queue: fair across users, one pipeline call at a time per device, never on the loop.

One worker thread per local engine (device) takes the next job, runs it and hands the result back
to the event loop with ``loop.call_soon_threadsafe``, the same shape as aiosqlite's connection
thread. A remote engine (one that computes elsewhere and has ``run_batch_async``, such as a Ray
worker, :class:`generation.cluster.RemoteEngine`) needs no thread: its worker is an asyncio task
that takes jobs by the same rule and awaits the remote call on the event loop. The next job is
chosen fairly across users (round-robin, with a newcomer ahead of users who already had a turn),
so a user with ten queued jobs does not delay another user's first job by ten: it waits for the
running job only. Nothing here imports torch or discord.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from PIL import Image

from generation.errors import (
    FailureForMember,
    JobCancelled,
    JobInterrupted,
    JobStopped,
    JobTimedOut,
    QueueFull,
    WorkerLost,
)
from rules.request import GenerationRequest

log = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL_S = 0.001


class Engine(Protocol):
    """What the queue needs from a loaded model (see :class:`generation.engine.DiffusionEngine`)."""

    @property
    def device(self) -> str: ...

    def run(
        self,
        request: GenerationRequest,
        *,
        init_image: Image.Image | None = None,
        on_step: Callable[[int, int, Any], None] | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[Image.Image]: ...

    def run_batch(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        *,
        on_step: Callable[[int, int, Any], None] | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[list[Image.Image]]: ...

    def preview_png(self, latents: Any, max_side: int = 160) -> bytes: ...

    def release_memory(self) -> None: ...


class AsyncEngine(Engine, Protocol):
    """An engine that computes elsewhere: the queue awaits it on the event loop instead of giving it a thread."""

    async def run_batch_async(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        *,
        on_step: Callable[[int, int, Any], None] | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[list[Image.Image]]: ...


def runs_on_loop(engine: Engine) -> bool:
    """Whether the queue serves this engine from an asyncio task (it has ``run_batch_async``) rather than a thread."""
    return callable(getattr(engine, "run_batch_async", None))


@dataclass(frozen=True)
class Progress:
    """A step finished: reported on the event loop."""

    job_id: int
    step: int
    total: int
    elapsed_s: float
    device: str
    #: A small PNG of the image so far, at most every ``preview_interval_s``; else None.
    preview_png: bytes | None = None
    #: The line to show instead of the usual step line (work such as training says what it does).
    text: str | None = None


class WorkContext:
    """What a job's own work (see :meth:`JobQueue.register_work`) gets besides the engine and request."""

    def __init__(self, report: Callable[[int, int, str], None], should_stop: Callable[[], JobStopped | None]) -> None:
        #: ``report(step, total, text)``: progress, shown on the job's status message; also where a
        #: :meth:`JobQueue.hold` pauses the work.
        self.report = report
        #: Asked between steps: why the work must stop now (cancelled, shutting down...), if it must.
        self.should_stop = should_stop


#: A job's own work in place of a pipeline call: (engine, request, context) -> its images, or None
#: to give the GPU back after a slice and go back in line for its member's next turn.
Work = Callable[[Any, GenerationRequest, WorkContext], "list[Image.Image] | None"]


@dataclass(eq=False)
class QueuedJob:
    """One request waiting for, or on, a GPU."""

    job_id: int
    user_id: int
    request: GenerationRequest
    init_image: Image.Image | None = None
    #: The server it was asked in (None: a DM or not known); counts toward ``max_pending_per_guild``.
    guild_id: int | None = None
    #: Called on the event loop when a worker picks the job up.
    on_start: Callable[[QueuedJob], None] | None = None
    #: Called on the event loop after each step.
    on_progress: Callable[[Progress], None] | None = None
    future: asyncio.Future[list[Image.Image]] | None = None
    enqueued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    device: str | None = None
    #: Index of the worker (engine) that ran the job.
    worker: int | None = None
    #: The model the job needs (None: whichever the workers have); workers that have it loaded go first.
    model: str | None = None
    #: Called on the event loop when the job's worker was lost mid-job and the job is back in the queue.
    on_requeue: Callable[[QueuedJob], None] | None = None
    #: How many workers were lost while running this job.
    worker_losses: int = 0
    #: The name of the work the job runs instead of a pipeline call (see :meth:`JobQueue.register_work`).
    work: str | None = None
    #: What one turn of the job costs, in image steps (None: its request's steps times images); for ETAs.
    cost_steps: int | None = None
    #: How many turns the job has had (work that yields takes several).
    turns: int = 0
    _stop: JobStopped | None = None
    _deadline: float | None = None
    _last_preview: float = 0.0

    def stop_reason(self) -> JobStopped | None:
        """Asked by the pipeline after each step: why the job must stop now, if it must."""
        if self._stop is not None:
            return self._stop
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._stop = JobTimedOut("the job took longer than the time limit")
        return self._stop

    def image_steps(self) -> float:
        """What one turn of this job costs, in image steps (for ETAs)."""
        return float(self.cost_steps if self.cost_steps is not None else self.request.steps * self.request.count)

    def remaining_image_steps(self, seconds_per_step: float) -> float:
        """Image steps left in the turn it is running, from how long it has run."""
        elapsed = time.monotonic() - (self.started_at or time.monotonic())
        return max(self.image_steps() - elapsed / seconds_per_step, 0.0)


class JobQueue:
    """Fair job queue, one worker per engine (a thread; an asyncio task for a remote one), batching compatible jobs."""

    def __init__(
        self,
        engines: Sequence[Engine],
        *,
        max_pending_per_user: int = 10,
        max_pending_total: int = 200,
        max_pending_per_guild: int = 0,
        job_timeout_s: float | None = None,
        max_batch_images: int = 1,
        preview_interval_s: float | None = None,
        max_attempts: int = 3,
        max_worker_losses: int = 3,
        allow_no_workers: bool = False,
    ) -> None:
        if not engines and not allow_no_workers:
            raise ValueError("the queue needs at least one engine")
        #: The live workers' engines by worker index; workers join and leave (see :meth:`add_engine`).
        self._engines: dict[int, Engine] = dict(enumerate(engines))
        self._next_index = len(self._engines)
        #: Workers waiting for a job now (placement asks whether a better-placed one is free).
        self._idle: set[int] = set()
        #: A job whose worker was lost this many times fails instead of going back in the queue.
        self.max_worker_losses = max_worker_losses
        self.max_pending_per_user = max_pending_per_user
        self.max_pending_total = max_pending_total
        #: The most jobs one server may have waiting or running (0: no per-server cap).
        self.max_pending_per_guild = max_pending_per_guild
        #: Slots taken by :meth:`reserve` for jobs being recorded, not submitted yet: (user, guild).
        self._reserved: collections.Counter[tuple[int, int | None]] = collections.Counter()
        self.job_timeout_s = job_timeout_s
        self.max_batch_images = max_batch_images
        self.preview_interval_s = preview_interval_s
        #: How many times a job may start (restarts and failed deliveries included) before it is
        #: given up on; the queue only carries it, the job runner checks it against the job row.
        self.max_attempts = max_attempts
        self._cond = threading.Condition()
        #: Pending jobs per user, each user's in the order they asked.
        self._pending: collections.OrderedDict[int, collections.deque[QueuedJob]] = collections.OrderedDict()
        self._running: dict[int, QueuedJob] = {}
        #: Jobs started per user in the current busy period, and when each user began waiting.
        self._served: dict[int, int] = {}
        #: Jobs started per server (guild id; None for direct messages) in the current busy period.
        self._guild_served: dict[int | None, int] = {}
        self._arrival: dict[int, int] = {}
        self._arrivals = 0
        self._batches: dict[int, list[QueuedJob]] = {}
        self._threads: list[threading.Thread] = []
        #: The asyncio tasks serving remote engines (see :func:`runs_on_loop`), and how each is woken.
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeups: dict[int, asyncio.Event] = {}
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        #: Seconds per denoising step per image, smoothed over recent steps (for ETAs).
        self._step_seconds: float | None = None
        #: The same per worker (a cluster's GPUs differ).
        self._worker_step_seconds: dict[int, float] = {}
        #: Until when (time.monotonic) the workers hold back: see :meth:`hold`.
        self._hold_until = 0.0
        #: Called on the event loop whenever jobs start or leave (to refresh places in the queue).
        self.on_change: Callable[[], None] | None = None
        #: Work jobs may run instead of a pipeline call, by name (see :meth:`register_work`).
        self._works: dict[str, Work] = {}

    @property
    def engines(self) -> tuple[Engine, ...]:
        """The engines (one per device) the workers run on."""
        with self._cond:
            return tuple(self._engines.values())

    @property
    def workers(self) -> int:
        """How many engines (devices) run jobs side by side; 0 while waiting for workers."""
        return len(self._engines)

    def add_engine(self, engine: Engine) -> int:
        """A worker joins (a cluster node came up, say): it takes jobs at once. Returns its index."""
        with self._cond:
            index = self._next_index
            self._next_index += 1
            self._engines[index] = engine
        if self._loop is not None and not self._closing:
            self._start_worker(index, engine)
        self._changed()
        return index

    def remove_engine(self, engine: Engine) -> bool:
        """A worker leaves: it takes no new job (one it runs ends as it would). False if unknown."""
        with self._cond:
            for index, known in list(self._engines.items()):
                if known is engine:
                    del self._engines[index]
                    self._worker_step_seconds.pop(index, None)
                    self._notify_locked(everyone=True)
                    break
            else:
                return False
        self._changed()
        return True

    def register_work(self, name: str, work: Work) -> None:
        """Let jobs whose ``work`` is ``name`` run ``work`` on a worker instead of a pipeline call.

        Such a job is never batched. Its work may return None after a slice (a training job's
        few dozen steps, say): the job then goes back to the end of its member's line and waits
        for the member's next turn, so other members' jobs run between its slices.
        """
        self._works[name] = work

    # -- the event-loop side -------------------------------------------------------------------

    def start(self) -> None:
        """Start one worker per engine (call from the event loop): a thread for a local engine, a task for a remote one.

        The worker threads run Python between torch kernels while holding the GIL; a short switch
        interval lets the event loop in within about a millisecond instead of the default five,
        which keeps interaction acknowledgements and heartbeats prompt while the GPU is busy.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        for index, engine in list(self._engines.items()):
            self._start_worker(index, engine)

    @property
    def worker_tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The asyncio tasks serving remote engines (one per remote engine in service)."""
        return tuple(task for task in self._tasks if not task.done())

    @property
    def worker_threads(self) -> tuple[threading.Thread, ...]:
        """The threads serving local engines (one per local engine in service)."""
        return tuple(thread for thread in self._threads if thread.is_alive())

    def _start_worker(self, index: int, engine: Engine) -> None:
        if runs_on_loop(engine):
            loop = self._loop
            if loop is None:
                return
            if threading.get_ident() == self._loop_thread:
                self._start_task(index, cast(AsyncEngine, engine))
            else:
                loop.call_soon_threadsafe(self._start_task, index, cast(AsyncEngine, engine))
            return
        thread = threading.Thread(
            target=self._work, args=(index, engine), name=f"gpu-worker-{index}-{engine.device}", daemon=True
        )
        thread.start()
        self._threads = [known for known in self._threads if known.is_alive()]
        self._threads.append(thread)

    def _start_task(self, index: int, engine: AsyncEngine) -> None:
        with self._cond:
            if self._closing or index not in self._engines:
                return
            self._wakeups[index] = asyncio.Event()
        task = asyncio.create_task(self._work_async(index, engine), name=f"gpu-worker-{index}-{engine.device}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify_locked(self, *, everyone: bool = False, skip: int | None = None) -> None:
        """Wake the worker threads (one, or all) and every waiting worker task but ``skip`` (hold the lock)."""
        if everyone:
            self._cond.notify_all()
        else:
            self._cond.notify()
        loop = self._loop
        if not self._wakeups or loop is None or loop.is_closed():
            return
        events = [event for index, event in self._wakeups.items() if index != skip]
        if threading.get_ident() == self._loop_thread:
            for event in events:
                event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                for event in events:
                    loop.call_soon_threadsafe(event.set)

    def hold(self, seconds: float) -> None:
        """Let the event loop go first for a moment: no job starts, and running ones pause between steps.

        The bot calls this while it acknowledges interactions (Discord allows 3 s). A worker runs
        Python between kernels holding the GIL; pausing it for a fraction of a second costs the
        GPU that fraction, once per burst of commands. :meth:`release` ends the hold early.
        """
        with self._cond:
            self._hold_until = max(self._hold_until, time.monotonic() + seconds)

    def release(self) -> None:
        """End a :meth:`hold` now."""
        with self._cond:
            self._hold_until = 0.0
            self._notify_locked(everyone=True)

    def _wait_for_hold_locked(self) -> None:
        while not self._closing and (left := self._hold_until - time.monotonic()) > 0:
            self._cond.wait(left)

    def check_capacity(self, user_id: int, guild_id: int | None = None, *, user_limit: int | None = None) -> None:
        """Raise :class:`QueueFull` if this user, their server or everyone already has the most jobs allowed.

        Slots reserved with :meth:`reserve` count as taken. ``user_limit``: a server's own, lower
        per-member cap (``/settings``), applied instead of ``max_pending_per_user`` when lower.
        """
        with self._cond:
            self._check_capacity_locked(user_id, guild_id, user_limit)

    def reserve(self, user_id: int, guild_id: int | None = None, *, user_limit: int | None = None) -> None:
        """Check the caps and take a slot at once, before any await (:class:`QueueFull` if none is left).

        A burst of commands from one member is checked one at a time against the slots already
        taken, so the per-member (and per-server) cap holds however many arrive together. Give
        the slot back with :meth:`unreserve` once the job is submitted or refused.
        """
        with self._cond:
            self._check_capacity_locked(user_id, guild_id, user_limit)
            self._reserved[(user_id, guild_id)] += 1

    def unreserve(self, user_id: int, guild_id: int | None = None) -> None:
        """Give back a slot taken by :meth:`reserve`."""
        with self._cond:
            key = (user_id, guild_id)
            if self._reserved[key] > 0:
                self._reserved[key] -= 1
            if self._reserved[key] <= 0:
                del self._reserved[key]

    def _check_capacity_locked(self, user_id: int, guild_id: int | None, user_limit: int | None = None) -> None:
        jobs = [job for pending in self._pending.values() for job in pending] + list(self._running.values())
        mine = sum(1 for job in jobs if job.user_id == user_id) + sum(
            count for (user, _), count in self._reserved.items() if user == user_id
        )
        total = len(jobs) + sum(self._reserved.values())
        limit = self.max_pending_per_user
        if user_limit is not None and user_limit < limit:
            limit = user_limit
        if mine >= limit:
            whose = "the limit" if limit == self.max_pending_per_user else "this server's limit"
            raise QueueFull(
                f"You already have {mine} job{'s' if mine != 1 else ''} queued "
                f"({whose} is {limit}); wait for one to finish.",
                pending_for_user=mine,
                limit=limit,
            )
        if self.max_pending_per_guild and guild_id is not None:
            ours = sum(1 for job in jobs if job.guild_id == guild_id) + sum(
                count for (_, guild), count in self._reserved.items() if guild == guild_id
            )
            if ours >= self.max_pending_per_guild:
                raise QueueFull(
                    f"This server already has {ours} jobs in the queue (its share is "
                    f"{self.max_pending_per_guild}); try again when some have finished.",
                    pending_for_user=mine,
                    limit=self.max_pending_per_guild,
                )
        if total >= self.max_pending_total:
            raise QueueFull(
                f"The queue is full ({total} jobs); try again in a few minutes.",
                pending_for_user=mine,
                limit=self.max_pending_total,
            )

    def submit(self, job: QueuedJob, *, check_caps: bool = True) -> asyncio.Future[list[Image.Image]]:
        """Queue a job; its future gets the images, or the exception that ended it."""
        if self._loop is None:
            raise RuntimeError("start() the queue first")
        if self._closing:
            raise JobInterrupted("the bot is shutting down")
        if check_caps:
            self.check_capacity(job.user_id, job.guild_id)
        job.future = self._loop.create_future()
        with self._cond:
            if job.user_id not in self._pending:
                self._arrivals += 1
                self._arrival[job.user_id] = self._arrivals
            self._pending.setdefault(job.user_id, collections.deque()).append(job)
            self._notify_locked()
        return job.future

    def order(self) -> list[QueuedJob]:
        """Pending jobs in the order the workers will take them."""
        with self._cond:
            return self._order_locked()

    def _order_locked(self) -> list[QueuedJob]:
        """Play :meth:`_next_user_locked` forward without taking anything (O(n log n)).

        Servers take turns first (the one that has had the fewest jobs started in this busy
        period, ties to whoever waited first), then members within the server, the same way; so a
        server with many members cannot push a quieter server to the back. With one server this is
        plain per-member fairness.
        """
        next_index = dict.fromkeys(self._pending, 0)
        users_of: dict[int | None, list[tuple[int, int, int]]] = {}
        guild_first: dict[int | None, int] = {}
        for user, jobs in self._pending.items():
            guild = jobs[0].guild_id
            heapq.heappush(users_of.setdefault(guild, []), (self._served.get(user, 0), self._arrival[user], user))
            guild_first[guild] = min(guild_first.get(guild, self._arrival[user]), self._arrival[user])
        guild_served = dict(self._guild_served)
        #: (turns, first arrival, tie-break, guild): the tie-break keeps None and ints from being compared.
        guilds = [(guild_served.get(g, 0), guild_first[g], n, g) for n, g in enumerate(users_of)]
        heapq.heapify(guilds)
        queued = set(users_of)
        tie = len(guilds)
        ordered: list[QueuedJob] = []
        while guilds:
            turns, first, order, guild = heapq.heappop(guilds)
            queued.discard(guild)
            served, arrival, user = heapq.heappop(users_of[guild])
            jobs = self._pending[user]
            index = next_index[user]
            ordered.append(jobs[index])
            next_index[user] = index + 1
            if index + 1 < len(jobs):
                after = jobs[index + 1].guild_id
                heapq.heappush(users_of.setdefault(after, []), (served + 1, arrival, user))
                if after != guild and after not in queued:
                    tie += 1
                    heapq.heappush(guilds, (guild_served.get(after, 0), arrival, tie, after))
                    queued.add(after)
            if users_of[guild] and guild not in queued:
                heapq.heappush(guilds, (turns + 1, first, order, guild))
                queued.add(guild)
            guild_served[guild] = turns + 1
        return ordered

    def waiting_places(self) -> list[tuple[QueuedJob, int, float | None]]:
        """Every pending job with its place (1 = next) and estimated wait, from one ordering.

        What :meth:`position` and :meth:`estimate_wait_s` give for each job, for all of them at
        once in O(n): refreshing a long queue's places must not order the queue once per job.
        """
        per_step = self._step_seconds
        with self._cond:
            ahead = 0.0
            if per_step is not None:
                for job in self._running.values():
                    ahead += job.remaining_image_steps(per_step)
            places: list[tuple[QueuedJob, int, float | None]] = []
            workers = len(self._engines)
            for index, job in enumerate(self._order_locked()):
                eta = None if per_step is None or workers == 0 else ahead * per_step / workers
                places.append((job, index + 1, eta))
                ahead += job.image_steps()
        return places

    def _next_user_locked(self) -> int:
        """The waiting member whose job is next: servers take turns, then members within a server.

        Each counts the jobs started while the queue has been busy; ties go to whoever started
        waiting first. A member arriving while another has ten jobs queued has had none, so their
        job is next: it waits for the running job only. Counts start over whenever the queue runs
        dry. See :meth:`_order_locked`, which plays this forward.
        """
        return self._order_locked()[0].user_id

    def position(self, job_id: int) -> int | None:
        """1 for the next job to run, 2 after it...; 0 while running; None if unknown."""
        with self._cond:
            if job_id in self._running:
                return 0
        for index, job in enumerate(self.order()):
            if job.job_id == job_id:
                return index + 1
        return None

    def estimate_wait_s(self, job_id: int) -> float | None:
        """Seconds until the job starts, from recently measured step times; None before any measure.

        Each worker counts at its own speed (measured, else what it reported when it joined), so
        a queue over a fast and a slow GPU promises what the pair delivers. None while there are
        no workers.
        """
        with self._cond:
            speeds = {index: self._seconds_per_step_locked(index) for index in self._engines}
            known = {index: s for index, s in speeds.items() if s is not None}
            if self._step_seconds is None and len(known) < len(speeds):
                return None
            fallback = self._step_seconds or max(known.values(), default=1.0)
            per_worker = {index: s if s is not None else fallback for index, s in speeds.items()}
            if not per_worker:
                return None
            image_steps_per_s = sum(1.0 / max(s, 1e-9) for s in per_worker.values())
            ahead = 0.0
            for job in self._running.values():
                per_step = per_worker.get(job.worker if job.worker is not None else -1, fallback)
                ahead += job.remaining_image_steps(per_step)
            for job in self._order_locked():
                if job.job_id == job_id:
                    return ahead / image_steps_per_s
                ahead += job.image_steps()
        return None

    def _seconds_per_step_locked(self, index: int) -> float | None:
        """A worker's seconds per image step: measured, else reported by its engine, else unknown."""
        measured = self._worker_step_seconds.get(index)
        if measured is not None:
            return measured
        reported = getattr(self._engines.get(index), "step_seconds", None)
        return float(reported) if isinstance(reported, int | float) and reported > 0 else None

    def running(self) -> list[QueuedJob]:
        """Jobs on a GPU now."""
        with self._cond:
            return list(self._running.values())

    def pending_count(self, user_id: int | None = None) -> int:
        """Queued (not running) jobs, of one user or of everyone."""
        with self._cond:
            if user_id is not None:
                return len(self._pending.get(user_id, ()))
            return sum(len(jobs) for jobs in self._pending.values())

    def cancel(self, job_id: int) -> bool:
        """Cancel a job: a queued one leaves at once, a running one stops at its next step.

        A job cancelled inside a batch is answered at once; the rest of the batch goes on.
        """
        with self._cond:
            if job_id in self._running:
                job = self._running[job_id]
                job._stop = JobCancelled("cancelled")
                batch = self._batches.get(job_id, [job])
                if any(other._stop is None for other in batch):
                    self._resolve(job, exception=job._stop)
                return True
            for jobs in self._pending.values():
                for job in jobs:
                    if job.job_id == job_id:
                        self._remove_pending(job)
                        self._resolve(job, exception=JobCancelled("cancelled"))
                        self._changed()
                        return True
        return False

    async def close(self) -> None:
        """Stop the workers: running jobs stop at their next step with :class:`JobInterrupted`.

        Pending jobs get :class:`JobInterrupted` too; their rows stay queued in the database, so
        they run again after a restart.
        """
        with self._cond:
            self._closing = True
            for job in self._running.values():
                job._stop = JobInterrupted("the bot is shutting down")
            pending = [job for jobs in self._pending.values() for job in jobs]
            self._pending.clear()
            self._notify_locked(everyone=True)
        for job in pending:
            self._resolve(job, exception=JobInterrupted("the bot is shutting down"))
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        self._threads.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- the worker side -----------------------------------------------------------------------

    def _take(self, index: int = 0) -> list[QueuedJob]:
        """Block until there is work; return the next job plus compatible ones to batch with it.

        Returns no jobs when the queue closes or this worker was removed.
        """
        with self._cond:
            self._idle.add(index)
            try:
                while True:
                    while not self._pending and not self._closing and index in self._engines:
                        self._cond.wait()
                    self._wait_for_hold_locked()
                    if self._closing or index not in self._engines:
                        return []
                    if not self._pending:  # a cancel emptied it during the hold
                        continue
                    first = self._choose_locked(index)
                    if first is not None:
                        break
                    self._notify_locked(everyone=True, skip=index)  # a free worker with the model loaded takes it
                    self._cond.wait()
            finally:
                self._idle.discard(index)
            return self._start_batch_locked(first)

    async def _take_async(self, index: int) -> list[QueuedJob]:
        """:meth:`_take` for a worker task: the same choice and batching, waiting on the event loop.

        The task's event is set whenever the threads' condition is notified (a job arrives, a
        hold ends, a worker leaves, the queue closes), so a wake-up is never missed: it is
        cleared before each look at the queue.
        """
        wake = self._wakeups[index]
        try:
            while True:
                wake.clear()
                timeout: float | None = None
                with self._cond:
                    if self._closing or index not in self._engines:
                        return []
                    self._idle.add(index)
                    hold_left = self._hold_until - time.monotonic()
                    if self._pending and hold_left > 0:
                        timeout = hold_left
                    elif self._pending:
                        first = self._choose_locked(index)
                        if first is not None:
                            self._idle.discard(index)
                            return self._start_batch_locked(first)
                        self._notify_locked(everyone=True, skip=index)  # a free worker with the model takes it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout)
                await asyncio.sleep(0)  # never spin without letting the loop run
        finally:
            with self._cond:
                self._idle.discard(index)

    def _start_batch_locked(self, first: QueuedJob) -> list[QueuedJob]:
        """Take ``first`` and the compatible jobs that fit with it in one pipeline call; mark them running."""
        self._remove_pending(first)
        batch = [first]
        images = first.request.count
        plain = first.work is None and first.init_image is None and not first.request.solo
        if plain and first.request.kind == "txt2img":
            key = first.request.batch_key()
            for candidate in self._order_locked():
                if images + candidate.request.count > self.max_batch_images or candidate.model != first.model:
                    continue
                if (candidate.work is None and candidate.request.kind == "txt2img" and not candidate.request.solo
                        and candidate.request.batch_key() == key):
                    self._remove_pending(candidate)
                    batch.append(candidate)
                    images += candidate.request.count
        for job in batch:
            self._running[job.job_id] = job
            self._batches[job.job_id] = batch
            self._served[job.user_id] = self._served.get(job.user_id, 0) + 1
            self._guild_served[job.guild_id] = self._guild_served.get(job.guild_id, 0) + 1
        return batch

    def _has_model(self, index: int, model: str | None) -> bool:
        """Whether a worker has this model loaded (an engine that does not say serves any)."""
        if model is None:
            return True
        loaded = getattr(self._engines.get(index), "loaded_models", None)
        return loaded is None or model in loaded

    def _choose_locked(self, index: int) -> QueuedJob | None:
        """The job this worker takes: the fairest one it has the model for, else the fairest one.

        A job whose model this worker would have to load is left (None) while another free worker
        has that model loaded. With one model every worker has it, so this is the fair order.
        """
        head = self._pending[self._next_user_locked()][0]
        if self._has_model(index, head.model):
            return head
        for job in self._order_locked():
            if self._has_model(index, job.model):
                return job
        if any(other != index and self._has_model(other, head.model) for other in self._idle):
            return None
        return head

    def _requeue_locked(self, batch: list[QueuedJob], error: WorkerLost) -> None:
        """The worker running ``batch`` was lost: its jobs go back to the front of their users' lines.

        The turn they took is given back, so the order is as if they had not started. A job
        cancelled meanwhile ends cancelled; one that lost ``max_worker_losses`` workers fails.
        """
        for job in reversed(batch):
            self._running.pop(job.job_id, None)
            self._batches.pop(job.job_id, None)
            job.worker_losses += 1
            if job._stop is not None:
                self._resolve(job, exception=job._stop)
                continue
            if job.worker_losses >= self.max_worker_losses:
                self._resolve(job, exception=WorkerLost(f"{error} ({job.worker_losses} workers lost on this job)"))
                continue
            job.started_at = job.device = job.worker = job._deadline = None
            job._last_preview = 0.0
            self._served[job.user_id] = max(self._served.get(job.user_id, 0) - 1, 0)
            self._guild_served[job.guild_id] = max(self._guild_served.get(job.guild_id, 0) - 1, 0)
            if job.user_id not in self._pending:
                self._arrival[job.user_id] = min(self._arrival.values(), default=1) - 1
            self._pending.setdefault(job.user_id, collections.deque()).appendleft(job)
            self._call_on_loop(job.on_requeue, job)
        self._notify_locked(everyone=True)

    def _remove_pending(self, job: QueuedJob) -> None:
        jobs = self._pending[job.user_id]
        jobs.remove(job)
        if not jobs:
            del self._pending[job.user_id]
            del self._arrival[job.user_id]
        if not self._pending and not self._running:
            self._served.clear()  # the busy period is over
            self._guild_served.clear()

    def _work(self, index: int, engine: Engine) -> None:
        while True:
            batch = self._take(index)
            if not batch:
                return
            lost = False
            try:
                lost = not self._run(index, engine, batch)
            finally:
                self._batch_over(batch)
            if lost:
                self.remove_engine(engine)
                return

    async def _work_async(self, index: int, engine: AsyncEngine) -> None:
        """A remote engine's worker: :meth:`_work` as an asyncio task, awaiting the engine on the loop."""
        try:
            while True:
                batch = await self._take_async(index)
                if not batch:
                    return
                lost = False
                try:
                    lost = not await self._run_async(index, engine, batch)
                finally:
                    self._batch_over(batch)
                if lost:
                    self.remove_engine(engine)
                    return
        finally:
            with self._cond:
                self._wakeups.pop(index, None)

    def _batch_over(self, batch: list[QueuedJob]) -> None:
        with self._cond:
            for job in batch:
                self._running.pop(job.job_id, None)
                self._batches.pop(job.job_id, None)
            if not self._pending and not self._running:
                self._served.clear()  # the busy period is over
                self._guild_served.clear()
        self._changed()

    def _run(self, index: int, engine: Engine, batch: list[QueuedJob]) -> bool:
        """Run a batch on this worker's engine and settle its jobs; False if the worker was lost."""
        on_step, should_stop = self._begin(index, engine, batch, pause_for_holds=True)
        try:
            if batch[0].work is not None:
                work_results = self._run_work(index, engine, batch[0], should_stop)
                if work_results is None:
                    return True  # it yielded: back in its member's line
                results = work_results
            else:
                results = engine.run_batch(
                    [job.request for job in batch],
                    [job.init_image for job in batch],
                    on_step=on_step,
                    should_stop=should_stop,
                )
        except BaseException as error:  # any pipeline fault fails these jobs only
            return self._failed(index, engine, batch, error)
        self._succeeded(batch, results)
        return True

    async def _run_async(self, index: int, engine: AsyncEngine, batch: list[QueuedJob]) -> bool:
        """:meth:`_run` for a remote engine, awaited on the event loop.

        Holds do not pause a remote batch between steps: it does not compete with the event loop
        for this process's GIL (it only waits before the batch starts, as every worker does).
        """
        on_step, should_stop = self._begin(index, engine, batch, pause_for_holds=False)
        if batch[0].work is not None:  # named work (training) needs the weights in this process
            error = FailureForMember("Training runs on the bot's own GPU only, and this worker is a remote one.")
            return self._failed(index, engine, batch, error)
        try:
            results = await engine.run_batch_async(
                [job.request for job in batch],
                [job.init_image for job in batch],
                on_step=on_step,
                should_stop=should_stop,
            )
        except asyncio.CancelledError:  # the loop is going away: the rows stay queued for the next start
            for job in batch:
                self._resolve(job, exception=JobInterrupted("the bot is shutting down"))
            raise
        except Exception as error:  # any pipeline fault fails these jobs only
            return self._failed(index, engine, batch, error)
        self._succeeded(batch, results)
        return True

    def _begin(
        self, index: int, engine: Engine, batch: list[QueuedJob], *, pause_for_holds: bool
    ) -> tuple[Callable[[int, int, Any], None], Callable[[], JobStopped | None]]:
        """Mark the batch started on this worker; the step and stop callbacks for its engine."""
        started = time.monotonic()
        for job in batch:
            job.started_at = started
            job.device = engine.device
            job.worker = index
            if self.job_timeout_s:
                job._deadline = started + self.job_timeout_s
            self._call_on_loop(job.on_start, job)
        self._changed()
        images_in_batch = sum(job.request.count for job in batch)
        last_step = started

        def on_step(step: int, total: int, latents: Any) -> None:
            nonlocal last_step
            if pause_for_holds and self._hold_until > time.monotonic():
                with self._cond:
                    self._wait_for_hold_locked()
                last_step = time.monotonic()  # the pause is not step time
            now = time.monotonic()
            self._measure(index, now - last_step, images_in_batch)
            last_step = now
            self._report(engine, batch, step, total, latents)

        def should_stop() -> JobStopped | None:
            reasons = [job.stop_reason() for job in batch]
            return reasons[0] if all(reason is not None for reason in reasons) else None

        return on_step, should_stop

    def _failed(self, index: int, engine: Engine, batch: list[QueuedJob], error: BaseException) -> bool:
        """Settle a batch whose engine raised; False if the worker was lost (its jobs are back in the queue)."""
        if isinstance(error, WorkerLost):
            log.warning("worker %d (%s) lost running job(s) %s: %s", index, engine.device,
                        [job.job_id for job in batch], error)
            with self._cond:
                self._requeue_locked(batch, error)
            return False
        if isinstance(error, JobStopped):
            for job in batch:
                self._resolve(job, exception=job.stop_reason() or error)
            return True
        log.error("job(s) %s failed on %s", [job.job_id for job in batch], engine.device, exc_info=error)
        try:
            engine.release_memory()
        except Exception:
            log.exception("releasing GPU memory failed")
        for job in batch:
            self._resolve(job, exception=error)
        return True

    def _run_work(
        self, index: int, engine: Engine, job: QueuedJob, should_stop: Callable[[], JobStopped | None]
    ) -> list[list[Image.Image]] | None:
        """Run a job's own work; None if it yielded (it is back in its member's line)."""
        work = self._works.get(job.work or "")
        if work is None:
            raise RuntimeError(f"no work named {job.work!r} is registered with the queue")

        def report(step: int, total: int, text: str) -> None:
            if self._hold_until > time.monotonic():
                with self._cond:
                    self._wait_for_hold_locked()
            if job.on_progress is not None and job._stop is None:
                now = time.monotonic()
                progress = Progress(job_id=job.job_id, step=step, total=total, elapsed_s=now - (job.started_at or now),
                                    device=job.device or "", text=text)
                self._call_on_loop(job.on_progress, progress)

        images = work(engine, job.request, WorkContext(report, should_stop))
        job.turns += 1
        if images is not None:
            return [images]
        with self._cond:  # a cancel takes this lock too: it either comes first and is seen, or finds the job pending
            stop = job.stop_reason()
            if stop is not None:
                raise stop
            self._running.pop(job.job_id, None)
            self._batches.pop(job.job_id, None)
            job.started_at = job.device = job.worker = job._deadline = None
            if job.user_id not in self._pending:
                self._arrivals += 1
                self._arrival[job.user_id] = self._arrivals
            self._pending.setdefault(job.user_id, collections.deque()).append(job)
            self._cond.notify_all()
        log.debug("job %s yielded after turn %d on worker %d", job.job_id, job.turns, index)
        return None

    def _succeeded(self, batch: list[QueuedJob], results: list[list[Image.Image]]) -> None:
        for job, images in zip(batch, results, strict=True):
            stop = job.stop_reason()
            if stop is not None:
                self._resolve(job, exception=stop)
            else:
                self._resolve(job, result=images)

    def _measure(self, index: int, seconds: float, images: int) -> None:
        per_image = seconds / max(images, 1)
        previous = self._step_seconds
        self._step_seconds = per_image if previous is None else 0.8 * previous + 0.2 * per_image
        mine = self._worker_step_seconds.get(index)
        self._worker_step_seconds[index] = per_image if mine is None else 0.8 * mine + 0.2 * per_image

    def _report(self, engine: Engine, batch: list[QueuedJob], step: int, total: int, latents: Any) -> None:
        now = time.monotonic()
        offset = 0
        for job in batch:
            count = job.request.count
            if job.on_progress is not None and job._stop is None:
                preview: bytes | None = None
                interval = self.preview_interval_s
                if interval is not None and latents is not None and now - job._last_preview >= interval:
                    job._last_preview = now
                    try:
                        preview = engine.preview_png(latents[offset : offset + 1])
                    except Exception:
                        log.exception("rendering a preview failed")
                progress = Progress(
                    job_id=job.job_id,
                    step=step,
                    total=total,
                    elapsed_s=now - (job.started_at or now),
                    device=job.device or "",
                    preview_png=preview,
                )
                self._call_on_loop(job.on_progress, progress)
            offset += count

    def _changed(self) -> None:
        if self.on_change is not None:
            self._call_on_loop(lambda _: self.on_change and self.on_change(), None)

    def _call_on_loop(self, callback: Callable[[Any], None] | None, argument: Any) -> None:
        if callback is None or self._loop is None or self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            self._loop.call_soon_threadsafe(callback, argument)

    def _resolve(
        self, job: QueuedJob, *, result: list[Image.Image] | None = None, exception: BaseException | None = None
    ) -> None:
        future, loop = job.future, self._loop
        if future is None or loop is None or loop.is_closed():
            return

        def settle() -> None:
            if future.done():
                return
            if exception is not None:
                future.set_exception(exception)
            else:
                future.set_result(result or [])

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)
