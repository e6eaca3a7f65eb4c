"""Records what the reliability tests tried, one JSON line per case, for docs/RELIABILITY.md.

Tests call :func:`record_reliability`; the lines go to the file named by ``RELIABILITY_LOG``, else
to ``.reliability/records.jsonl`` in the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def record_reliability(area: str, case: str, cases: int, outcome: str) -> None:
    """Append one record: the area (``defect``, ``fault``...), the case, how many were tried, the outcome."""
    target = Path(os.environ.get("RELIABILITY_LOG") or REPO / ".reliability" / "records.jsonl")
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"area": area, "case": case, "cases": cases, "outcome": outcome}, ensure_ascii=False)
    with target.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
