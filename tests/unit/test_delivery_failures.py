"""Which delivery failures end a job at once (defect 5): they would fail the same way at every restart."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from bot.job_runner import _permanent_delivery_failure
from storage.images import ImageStore


def test_a_full_disk_is_permanent(tmp_path: Path) -> None:
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert "disk" in (_permanent_delivery_failure(error) or "")
    assert "disk" in (_permanent_delivery_failure(OSError(errno.EROFS, "read-only file system")) or "")


def test_passing_faults_are_retried_later() -> None:
    assert _permanent_delivery_failure(ConnectionResetError(errno.ECONNRESET, "reset")) is None
    assert _permanent_delivery_failure(TimeoutError()) is None
    assert _permanent_delivery_failure(RuntimeError("Discord did not accept the result after several tries")) is None


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_real_full_device_write_is_classified_as_a_full_disk(tmp_path: Path) -> None:
    """The error a write to a full device really raises (``/dev/full``) ends the job."""
    with pytest.raises(OSError) as caught, open("/dev/full", "wb") as full:
        full.write(b"x" * 65536)
        full.flush()
    assert "disk" in (_permanent_delivery_failure(caught.value) or "")
    store = ImageStore(tmp_path)
    assert store.write(b"fine").path.exists()
