"""GPU workers on a Ray cluster: one actor per GPU, behind the bot's one fair :class:`JobQueue`.

The bot process keeps everything a member sees: the fair queue, the caps, SQLite. Each worker is
a Ray actor (:class:`GpuWorker`) that loads the model once on its node and runs the batches handed
to it. On the bot's side a :class:`RemoteEngine` stands in for a local
:class:`~generation.engine.DiffusionEngine`. The queue serves it from an asyncio task, not a
thread (:meth:`RemoteEngine.run_batch_async`): the task sends the batch (parameters and any source
image in, PNG bytes out through Ray's object store) and awaits Ray's object references on the
event loop, polling the actor for the step it is at (and a preview, when one is due) with
``asyncio.sleep`` in between, and telling it to stop when the job is cancelled or timed out, so
the actor stops at its next step. The result PNGs are decoded off the loop. A worker that dies
mid-job (killed, out of memory, node lost) raises :class:`WorkerLost`: the queue puts the job back
in front of the line and drops the worker.

:class:`RayWorkerPool` connects, starts the workers, and keeps watching on the event loop (actor
creation, readiness and health checks are awaited there): a worker that answers no more leaves the
queue, a missing one is started again, and in ``workers = "auto"`` mode a GPU that joins the
cluster gets a worker, which takes jobs as soon as its model is loaded. When every worker is gone
the queue keeps its jobs and waits for workers.

Ray is optional (``pip install -e ".[ray]"``): nothing here imports it until a pool connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from generation.errors import JobCancelled, JobInterrupted, JobStopped, JobTimedOut, WorkerLost
from generation.queue import JobQueue
from rules.request import FLAGGED_INFO_KEY, GenerationRequest

log = logging.getLogger(__name__)

#: How often a waiting queue worker asks its actor how far the job got (and whether it is done).
POLL_INTERVAL_S = 0.1
#: The longest one progress poll may take before the next try (the job itself is not limited).
POLL_TIMEOUT_S = 10.0
#: Seconds a health check may take before the worker counts as lost.
PING_TIMEOUT_S = 30.0
#: Denoising steps of the speed measure a worker runs once its model is loaded.
BENCHMARK_STEPS = 3
#: The actor serves polls and stop requests while a job runs: at least 2 threads.
ACTOR_THREADS = 4

_STOPS: dict[str, type[JobStopped]] = {
    "JobCancelled": JobCancelled,
    "JobTimedOut": JobTimedOut,
    "JobInterrupted": JobInterrupted,
}


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be reached, or no worker came up in time; ``str()`` is one line."""


def ray_available() -> bool:
    """Whether the optional ``ray`` package is installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker reports when its model is loaded: where it runs, its memory and speed, its model."""

    #: A short unique name: ``ray-3 cuda:0@10.0.0.7``.
    name: str
    node_id: str
    host: str
    device: str
    #: ``NVIDIA H200``, or ``cpu``.
    accelerator: str
    #: The device's memory (GPU memory; host memory for a CPU worker).
    memory_bytes: int
    #: Seconds per denoising step of one native-size image, measured once after loading.
    step_seconds: float
    #: The models this worker has loaded (the queue sends a model's jobs to workers that have it).
    models: tuple[str, ...]
    model_name: str
    native_size: int
    max_tokens: int


@dataclass
class _RunState:
    """One batch running on an actor: how far it got, and why it must stop (set by :meth:`GpuWorker.stop`)."""

    step: int = 0
    total: int = 0
    latents: Any = None
    stop: JobStopped | None = None


class GpuWorker:
    """The actor's body (made a Ray actor by :class:`RayWorkerPool`): one loaded model, one job at a time.

    Runs with several threads so progress polls and stop requests are answered while a job runs;
    the engine's own lock keeps pipeline calls one at a time.
    """

    def __init__(
        self, name: str, model_id: str, *, device: str = "auto", dtype: str = "auto", preview_decoder: str = ""
    ) -> None:
        from generation.engine import DiffusionEngine

        self.engine = DiffusionEngine(model_id, device=device, dtype=dtype, preview_decoder=preview_decoder)
        self.engine.load()
        self._runs: dict[str, _RunState] = {}
        self._lock = threading.Lock()
        #: Seconds the engine itself took for the last batch (PNG encoding not included).
        self.last_run_s = 0.0
        #: Pipeline calls (batches) run here, the jobs and images they held: see :meth:`stats`.
        self._stats = {"batches": 0, "jobs": 0, "images": 0}
        self.info = self._describe(name)
        log.info("worker %s ready: %s", name, self.info)

    def _describe(self, name: str) -> WorkerInfo:
        import psutil
        import torch

        device = self.engine.device
        if device.startswith("cuda"):
            props = torch.cuda.get_device_properties(torch.device(device))
            accelerator, memory = props.name, int(props.total_memory)
        else:
            accelerator, memory = "cpu", int(psutil.virtual_memory().total)
        native = self.engine.native_size
        probe = GenerationRequest(prompt="speed probe", seed=0, steps=BENCHMARK_STEPS, guidance=5.0,
                                  width=native, height=native)
        self.engine.run(probe)  # warm-up: first calls pay for kernel selection and allocation
        started = time.perf_counter()
        self.engine.run(probe)
        step_seconds = (time.perf_counter() - started) / BENCHMARK_STEPS
        node_id, host = "", socket.gethostname()
        with contextlib.suppress(Exception):
            import ray

            node_id = ray.get_runtime_context().get_node_id()
            host = ray.util.get_node_ip_address()
        return WorkerInfo(
            name=f"{name} {device}@{host}", node_id=node_id, host=host, device=device, accelerator=accelerator,
            memory_bytes=memory, step_seconds=step_seconds, models=(self.engine.model_id,),
            model_name=self.engine.model_name, native_size=native, max_tokens=self.engine.max_tokens,
        )

    def describe(self) -> WorkerInfo:
        """What this worker is (see :class:`WorkerInfo`)."""
        return self.info

    def tokenizer(self) -> Any:
        """The text encoder's tokenizer, so the bot counts prompt tokens without the model files."""
        return self.engine.pipeline.tokenizer

    def last_run_seconds(self) -> float:
        """Seconds the engine took for the last batch here (the rest of a job's time is transport)."""
        return self.last_run_s

    def ping(self) -> str:
        """Health check: the worker's name."""
        return self.info.name

    def stats(self) -> dict[str, int]:
        """Batches (pipeline calls) this worker started, and the jobs and images in them (the probe not counted)."""
        with self._lock:
            return dict(self._stats)

    def pid(self) -> int:
        """The actor's process id (tests and benchmarks kill it)."""
        return os.getpid()

    def configure(self, safety_checker: str = "auto", upscaler: str = "") -> None:
        """Apply ``[safety] checker`` and ``[model] upscaler`` (see :meth:`DiffusionEngine.configure`)."""
        self.engine.configure(safety_checker=safety_checker, upscaler=upscaler)

    def run_batch(
        self, token: str, requests: Sequence[GenerationRequest], init_images: Sequence[Image.Image | None]
    ) -> list[list[tuple[bytes, bool]]]:
        """Run a batch; each image comes back as (PNG bytes, flagged by the safety checker)."""
        state = _RunState()
        with self._lock:
            self._runs[token] = state
            self._stats["batches"] += 1
            self._stats["jobs"] += len(requests)
            self._stats["images"] += sum(request.count for request in requests)

        def on_step(step: int, total: int, latents: Any) -> None:
            state.step, state.total, state.latents = step, total, latents

        started = time.perf_counter()
        try:
            results = self.engine.run_batch(requests, init_images, on_step=on_step, should_stop=lambda: state.stop)
            self.last_run_s = time.perf_counter() - started
        except JobStopped:
            raise
        except Exception:
            self.engine.release_memory()  # after an out-of-memory error, say: the next job needs it
            raise
        finally:
            with self._lock:
                self._runs.pop(token, None)
        return [[(_png(image), bool(image.info.get(FLAGGED_INFO_KEY))) for image in images] for images in results]

    def poll(self, token: str, preview: bool) -> tuple[int, int, list[bytes] | None]:
        """(step, total steps, one preview PNG per image of the batch when asked and possible)."""
        with self._lock:
            state = self._runs.get(token)
        if state is None:
            return 0, 0, None
        step, total, latents = state.step, state.total, state.latents
        previews = None
        if preview and latents is not None:
            try:
                previews = [self.engine.preview_png(latents[index : index + 1]) for index in range(len(latents))]
            except Exception:
                log.exception("rendering a preview failed")
        return step, total, previews

    def stop(self, token: str, kind: str, message: str) -> bool:
        """Make the batch stop at its next step with this reason; False if it is not running here."""
        with self._lock:
            state = self._runs.get(token)
        if state is None:
            return False
        state.stop = _STOPS.get(kind, JobCancelled)(message)
        return True


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _decode(results: Sequence[Sequence[tuple[bytes, bool]]]) -> list[list[Image.Image]]:
    """The worker's (PNG bytes, flagged) per image back into images carrying the safety flag."""
    out: list[list[Image.Image]] = []
    for images in results:
        decoded: list[Image.Image] = []
        for data, flagged in images:
            image = Image.open(io.BytesIO(data))
            image.load()
            image.info[FLAGGED_INFO_KEY] = flagged
            decoded.append(image)
        out.append(decoded)
    return out


def _lost_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors that mean the worker (not the job) failed."""
    import ray.exceptions as rex

    names = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OutOfMemoryError",
             "RaySystemError", "LocalRayletDiedError", "ActorUnavailableError", "ObjectFetchTimedOutError")
    return (*(getattr(rex, name) for name in names if hasattr(rex, name)), ConnectionError)


class RemoteEngine:
    """A worker actor seen as an engine: what :class:`JobQueue` and the bot need, run remotely."""

    def __init__(
        self,
        actor: Any,
        info: WorkerInfo,
        tokenizer: Any,
        *,
        preview_interval_s: float | None = None,
        on_configure: Callable[[str, str], None] | None = None,
    ) -> None:
        self.actor = actor
        self.info = info
        self._tokenizer = tokenizer
        self.preview_interval_s = preview_interval_s
        self._on_configure = on_configure

    @property
    def device(self) -> str:
        """The worker's name (unique in the pool)."""
        return self.info.name

    @property
    def model_name(self) -> str:
        """The model's short name, for embeds."""
        return self.info.model_name

    @property
    def native_size(self) -> int:
        """The model's native image side in pixels."""
        return self.info.native_size

    @property
    def max_tokens(self) -> int:
        """How many tokens the text encoder reads."""
        return self.info.max_tokens

    @property
    def loaded_models(self) -> tuple[str, ...]:
        """The models the worker has loaded (placement prefers these workers for those models' jobs)."""
        return self.info.models

    @property
    def step_seconds(self) -> float:
        """The worker's measured seconds per image step (the queue's ETA starts from it)."""
        return self.info.step_seconds

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes (counted here, with the worker's tokenizer)."""
        return len(self._tokenizer(text, truncation=False).input_ids)

    def configure(self, *, safety_checker: str = "auto", upscaler: str = "") -> None:
        """Apply the safety checker and upscaler on the worker (blocking); workers that join later get it too."""
        import ray

        if self._on_configure is not None:
            self._on_configure(safety_checker, upscaler)
        ray.get(self.actor.configure.remote(safety_checker, upscaler), timeout=PING_TIMEOUT_S)

    def run(
        self,
        request: GenerationRequest,
        *,
        init_image: Image.Image | None = None,
        on_step: Callable[[int, int, Any], None] | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[Image.Image]:
        """Run one request on the worker (blocking)."""
        return self.run_batch([request], [init_image], on_step=on_step, should_stop=should_stop)[0]

    def run_batch(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        *,
        on_step: Callable[[int, int, Any], None] | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[list[Image.Image]]:
        """Run a batch on the worker, relaying its steps and previews and passing a stop on (blocking).

        ``on_step`` gets a list of preview PNGs (one per image) in place of latents when a preview
        is due, else None; :meth:`preview_png` hands such a PNG through. The queue does not call
        this (it awaits :meth:`run_batch_async` on the event loop); it serves code outside any
        running loop, such as scripts, that wants the engine interface as a plain call, and runs
        :meth:`run_batch_async` on a loop of its own.
        """
        return asyncio.run(
            self.run_batch_async(requests, init_images, on_step=on_step, should_stop=should_stop)
        )

    async def run_batch_async(
        self,
        requests: Sequence[GenerationRequest],
        init_images: Sequence[Image.Image | None],
        *,
        on_step: Callable[[int, int, Any], None] | None = None,
        should_stop: Callable[[], JobStopped | None] | None = None,
    ) -> list[list[Image.Image]]:
        """:meth:`run_batch` on the event loop: what the queue's worker task for this engine awaits.

        Every Ray call is awaited (object references are awaitable), never waited for with
        ``ray.get``; between polls the task sleeps (``asyncio.sleep``), so the loop serves
        Discord meanwhile. ``on_step`` and ``should_stop`` are called on the loop. The PNGs are
        decoded in a thread.
        """
        from ray.exceptions import RayTaskError

        lost_errors = _lost_errors()
        token = uuid.uuid4().hex
        try:
            job = asyncio.ensure_future(_await(self.actor.run_batch.remote(token, list(requests), list(init_images))))
        except lost_errors as error:
            raise WorkerLost(f"worker {self.device} is gone: {type(error).__name__}") from error
        last_step, last_preview, stop_sent = 0, time.monotonic(), False
        try:
            while not job.done():
                await asyncio.wait({job}, timeout=POLL_INTERVAL_S)
                if job.done():
                    break
                if should_stop is not None and not stop_sent and (reason := should_stop()) is not None:
                    stop_sent = True
                    with contextlib.suppress(*lost_errors):
                        self.actor.stop.remote(token, type(reason).__name__, str(reason))
                if on_step is None:
                    continue
                interval = self.preview_interval_s
                want_preview = interval is not None and time.monotonic() - last_preview >= interval
                try:
                    poll = asyncio.ensure_future(_await(self.actor.poll.remote(token, want_preview)))
                except lost_errors:
                    continue  # the job's own reference says what happened
                done, _ = await asyncio.wait({job, poll}, timeout=POLL_TIMEOUT_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if poll not in done or poll.exception() is not None:
                    poll.cancel()
                    continue  # a slow or failed poll: the job's own reference says what happened
                step, total, previews = poll.result()
                if previews is not None:
                    last_preview = time.monotonic()
                for done_step in range(last_step + 1, step + 1):  # one call per step: step times average right
                    on_step(done_step, total, previews if done_step == step else None)
                last_step = max(last_step, step)
        except asyncio.CancelledError:
            job.cancel()
            with contextlib.suppress(*lost_errors):
                self.actor.stop.remote(token, "JobInterrupted", "the bot is shutting down")
            raise
        try:
            results = job.result()
        except RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, JobStopped):
                raise (should_stop() if should_stop is not None else None) or cause from None
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        except lost_errors as error:
            raise WorkerLost(f"worker {self.device} was lost ({type(error).__name__})") from error
        return await asyncio.to_thread(_decode, results)

    def preview_png(self, latents: Any, max_side: int = 160) -> bytes:
        """The preview the worker rendered (``latents`` is a slice of the preview list ``on_step`` got)."""
        return bytes(latents[0])

    def release_memory(self) -> None:
        """Nothing to do here: the worker frees its own memory."""


@dataclass
class PoolSettings:
    """What the pool needs: where the cluster is, the model, and what each worker asks for."""

    model_id: str
    address: str = ""
    workers: int | str = "auto"
    num_gpus: float = 1.0
    num_cpus: float = 1.0
    memory_bytes: int = 0
    dtype: str = "auto"
    preview_decoder: str = ""
    connect_timeout_s: float = 120.0
    watch_interval_s: float = 5.0
    namespace: str = "panelbot"
    #: Passed to ``ray.init`` when the pool starts or joins Ray itself (environment of the workers).
    runtime_env: dict[str, Any] = field(default_factory=dict)
    #: Passed to ``ray.init`` when the pool starts a Ray instance here (empty address).
    init_options: dict[str, Any] = field(default_factory=dict)


class RayWorkerPool:
    """Starts the GPU worker actors, hands them to the queue, and watches them."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.queue: JobQueue | None = None
        self._engines: list[RemoteEngine] = []
        self._starting: set[asyncio.Task[RemoteEngine | None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._counter = 0
        self._configured: tuple[str, str] | None = None
        self._started_ray = False
        self._lost = 0

    # -- connecting ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Join the cluster (or start Ray here); :class:`ClusterUnavailable` if it cannot be reached."""
        # Ray's own connection retries would otherwise print a warning a second into the bot's log.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
        if not ray_available():
            raise ClusterUnavailable('cluster error: backend "ray" needs Ray: pip install -e ".[ray]"')
        import ray

        if ray.is_initialized():
            return
        address = self.settings.address or None
        options: dict[str, Any] = {"namespace": self.settings.namespace, "log_to_driver": False,
                                   "logging_level": logging.ERROR}
        if self.settings.runtime_env:
            options["runtime_env"] = self.settings.runtime_env
        if address is None:
            options.update({"include_dashboard": False, **self.settings.init_options})
        outcome: dict[str, BaseException | None] = {}
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()

        def init() -> None:
            try:
                ray.init(address=address, **options)
                outcome["error"] = None
            except BaseException as error:  # reported on the loop below
                outcome["error"] = error
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(finished.set)

        # A daemon thread: an address that never answers must not keep the process from exiting.
        threading.Thread(target=init, name="ray-connect", daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), self.settings.connect_timeout_s)
        where = self.settings.address or "a new local Ray instance"
        if "error" not in outcome:
            raise ClusterUnavailable(
                f"cluster error: cannot reach the Ray cluster at {where} within {self.settings.connect_timeout_s:g} s"
            )
        error = outcome["error"]
        if error is not None:
            text = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ClusterUnavailable(f"cluster error: cannot reach the Ray cluster at {where}: {text}")
        self._started_ray = address is None

    # -- workers ---------------------------------------------------------------------------------

    @property
    def engines(self) -> tuple[RemoteEngine, ...]:
        """The workers in service."""
        return tuple(self._engines)

    @property
    def model_info(self) -> RemoteEngine:
        """What the bot shows about the model (any worker's engine will do: they share the model)."""
        if not self._engines:
            raise ClusterUnavailable("cluster error: no worker is ready")
        return self._engines[0]

    def target_workers(self) -> int:
        """How many workers the pool keeps: the configured number, or one per GPU the cluster has."""
        if self.settings.workers != "auto":
            return int(self.settings.workers)
        import ray

        gpus = float(ray.cluster_resources().get("GPU", 0.0))
        return int(gpus // self.settings.num_gpus) if self.settings.num_gpus > 0 else 0

    async def start(self, queue: JobQueue) -> None:
        """Start the workers and give the queue each one as it comes up; wait for the first.

        Raises :class:`ClusterUnavailable` when none is ready within ``connect_timeout_s``.
        """
        self.queue = queue
        wanted = self.target_workers()
        if wanted < 1:
            raise ClusterUnavailable(
                f"cluster error: the cluster offers no GPU for a worker (num_gpus = {self.settings.num_gpus:g} each)"
            )
        tasks = [self._spawn() for _ in range(wanted)]
        done, _ = await asyncio.wait(tasks, timeout=self.settings.connect_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        while done and not self._engines and (pending := {t for t in tasks if not t.done()}):
            done, _ = await asyncio.wait(pending, timeout=self.settings.connect_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        if not self._engines:
            raise ClusterUnavailable(
                f"cluster error: no worker came up within {self.settings.connect_timeout_s:g} s "
                "(is the model reachable from the GPU nodes, and do they have the resources asked for?)"
            )
        self.attach(queue)

    def attach(self, queue: JobQueue) -> None:
        """Serve this queue with the workers up now (and those that join later), and start watching."""
        self.queue = queue
        known = queue.engines
        for engine in self._engines:
            engine.preview_interval_s = queue.preview_interval_s
            if engine not in known:
                queue.add_engine(engine)
        if self._watcher is None or self._watcher.done():
            self._closing = False
            self._watcher = asyncio.create_task(self._watch(), name="cluster-watch")

    async def detach(self) -> None:
        """Stop watching and serving the queue (the workers stay up for the next one)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        self.queue = None

    async def add_workers(self, count: int = 1) -> list[RemoteEngine]:
        """Start ``count`` more workers now and wait until they take jobs (or fail to come up)."""
        results = await asyncio.gather(*(self._spawn() for _ in range(count)))
        return [engine for engine in results if engine is not None]

    def _spawn(self) -> asyncio.Task[RemoteEngine | None]:
        self._counter += 1
        task = asyncio.create_task(self._start_worker(f"ray-{self._counter}"), name=f"cluster-start-{self._counter}")
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)
        return task

    async def _start_worker(self, name: str) -> RemoteEngine | None:
        import ray

        s = self.settings
        options: dict[str, Any] = {"num_cpus": s.num_cpus, "num_gpus": s.num_gpus, "max_concurrency": ACTOR_THREADS,
                                   "max_restarts": 0, "name": f"{name}-{uuid.uuid4().hex[:8]}"}
        if s.memory_bytes:
            options["memory"] = s.memory_bytes
        device = "cuda" if s.num_gpus > 0 else "cpu"
        try:
            actor = _actor_class().options(**options).remote(
                name, s.model_id, device=device, dtype=s.dtype, preview_decoder=s.preview_decoder
            )
            info: WorkerInfo = await _await(actor.describe.remote())
            tokenizer = await _await(actor.tokenizer.remote())
            if self._configured is not None:
                await _await(actor.configure.remote(*self._configured))
        except Exception as error:
            if not self._closing:
                log.warning("worker %s did not come up: %s", name, str(error).splitlines()[0] if str(error) else error)
            return None
        if self._closing:
            with contextlib.suppress(Exception):
                ray.kill(actor)
            return None
        engine = RemoteEngine(
            actor, info, tokenizer,
            preview_interval_s=self.queue.preview_interval_s if self.queue else None,
            on_configure=self._remember_configuration,
        )
        self._engines.append(engine)
        if self.queue is not None:
            self.queue.add_engine(engine)
        log.info("worker %s joined: %s, %.1f GiB, %.3f s/step", info.name, info.accelerator,
                 info.memory_bytes / 1024**3, info.step_seconds)
        return engine

    def _remember_configuration(self, safety_checker: str, upscaler: str) -> None:
        self._configured = (safety_checker, upscaler)

    # -- watching --------------------------------------------------------------------------------

    async def check(self) -> None:
        """One round of the watch: drop workers that do not answer, start missing ones."""
        alive = await asyncio.gather(*(self._alive(engine) for engine in list(self._engines)))
        for engine, ok in zip(list(self._engines), alive, strict=True):
            if not ok:
                self._drop(engine)
        try:
            target = await asyncio.wait_for(asyncio.to_thread(self.target_workers), PING_TIMEOUT_S)
            missing = target - len(self._engines) - len(self._starting)
        except Exception as error:
            log.warning("the cluster does not answer (%s); waiting for workers", type(error).__name__)
            return
        for _ in range(max(missing, 0)):
            self._spawn()

    async def _alive(self, engine: RemoteEngine) -> bool:
        try:
            await asyncio.wait_for(_await(engine.actor.ping.remote()), PING_TIMEOUT_S)
        except Exception:
            return False
        return True

    def _drop(self, engine: RemoteEngine) -> None:
        if engine in self._engines:
            self._engines.remove(engine)
            self._lost += 1
            log.warning("worker %s is lost; %d left", engine.device, len(self._engines))
        if self.queue is not None:
            self.queue.remove_engine(engine)
            if self.queue.workers == 0:
                log.warning("no worker left: jobs wait in the queue until one joins")

    async def _watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.settings.watch_interval_s)
            try:
                await self.check()
                if self.queue is not None:
                    for engine in [e for e in self._engines if e not in self.queue.engines]:
                        self._drop(engine)  # the queue dropped it after a lost job
            except Exception:
                log.exception("watching the workers failed")

    async def close(self) -> None:
        """Stop watching and end the workers (call after the queue closed)."""
        self._closing = True
        await self.detach()
        for task in list(self._starting):
            task.cancel()
        import ray

        for engine in self._engines:
            with contextlib.suppress(Exception):
                ray.kill(engine.actor)
        self._engines.clear()
        if self._started_ray:
            await asyncio.to_thread(ray.shutdown)


_ACTOR_CLASS: Any = None


def _actor_class() -> Any:
    """:class:`GpuWorker` as a Ray actor class (made once)."""
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        import ray

        _ACTOR_CLASS = ray.remote(GpuWorker)
    return _ACTOR_CLASS


async def _await(ref: Any) -> Any:
    """Await a Ray object reference on the event loop."""
    return await asyncio.wrap_future(ref.future())


def pool_settings(cluster: Any, model: Any, **overrides: Any) -> PoolSettings:
    """:class:`PoolSettings` from ``[cluster]`` (:class:`bot.cluster_config.ClusterSettings`) and ``[model]``."""
    values: dict[str, Any] = {
        "model_id": model.id, "dtype": model.dtype, "preview_decoder": model.preview_decoder,
        "address": cluster.address, "workers": cluster.workers, "num_gpus": cluster.num_gpus,
        "num_cpus": cluster.num_cpus, "memory_bytes": cluster.memory_bytes,
        "connect_timeout_s": cluster.connect_timeout_s, "watch_interval_s": cluster.watch_interval_s,
        "namespace": cluster.namespace,
    }
    values.update(overrides)
    return PoolSettings(**values)


async def start_ray_queue(pool: RayWorkerPool, queue_settings: dict[str, Any], max_worker_losses: int) -> JobQueue:
    """Connect the pool, build the queue over its workers (none needed yet) and start the first ones."""
    from generation.workers import build_queue

    await pool.connect()
    queue = build_queue([], **queue_settings, max_worker_losses=max_worker_losses, allow_no_workers=True)
    await pool.start(queue)
    return queue
