"""Errors the GPU side reports for one job. Import-light: no torch here."""

from __future__ import annotations


class JobStopped(Exception):
    """A job ended without images for a reason that is not a fault of the pipeline."""


class JobCancelled(JobStopped):
    """The requester (or a moderator) cancelled the job."""


class JobTimedOut(JobStopped):
    """The job ran past the configured per-job timeout."""


class JobInterrupted(JobStopped):
    """The bot is shutting down; the job should run again after the restart."""


class FailureForMember(Exception):
    """A job failed for a reason the member may read (``str()`` is one short sentence, no secrets or paths)."""


class AdapterLoadError(FailureForMember):
    """A LoRA or embedding a job names could not be loaded; the job fails, the model keeps serving."""


class ModelLoadError(Exception):
    """A model could not be loaded; the message is one line for the operator naming its config key and what to do.

    ``model`` is the model's name and ``reason`` a few words a member may read (no paths), when known.
    """

    def __init__(self, message: str, *, model: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.model = model
        self.reason = reason


class QueueFull(Exception):
    """A cap on pending jobs was reached; nothing was queued."""

    def __init__(self, message: str, *, pending_for_user: int, limit: int) -> None:
        super().__init__(message)
        self.pending_for_user = pending_for_user
        self.limit = limit


class WorkerLost(Exception):
    """The worker running a job went away (process killed, out of host memory, node lost).

    Not the job's fault: the queue puts the job back in front of the line for another worker
    (up to its ``max_worker_losses``), and drops the lost worker.
    """
