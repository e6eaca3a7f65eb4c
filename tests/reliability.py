"""Records what the reliability tests tried, for the generated ``docs/RELIABILITY.md``.

Tests call :func:`record_reliability` once per case class; each call appends one JSON line to the
file named by ``RELIABILITY_LOG``, or to ``.reliability/records.jsonl`` in the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _log_path() -> Path:
    named = os.environ.get("RELIABILITY_LOG")
    return Path(named) if named else REPO / ".reliability" / "records.jsonl"


def record_reliability(area: str, case: str, cases: int, outcome: str) -> None:
    """Append one record: the area (defect, fault, flood, input...), the case, how many tried, the outcome."""
    path = _log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"area": area, "case": case, "cases": cases, "outcome": outcome}, ensure_ascii=False)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
