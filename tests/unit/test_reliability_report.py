"""tests/reliability.py: records append as JSON lines; the report is sorted, deterministic and sums the totals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import reliability


def test_records_round_trip_and_the_report_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "records.jsonl"
    monkeypatch.setenv("RELIABILITY_LOG", str(log))
    reliability.record_reliability("hostile", "prompts", 300, "ok: 0 crashes")
    reliability.record_reliability("fault", "HTTP 502 | upload", 2, "one result")
    reliability.record_reliability("crash", "SIGKILL at seeded random moments", 5, "each done once")
    reliability.record_reliability("crash", "requests lost after the kills", 20, "0")
    reliability.record_reliability("flood", "acknowledgement latency, burst", 100, "p50 10 ms, p99 20 ms")
    reliability.record_reliability("hostile", "prompts", 400, "ok: 0 crashes")  # a rerun replaces the figure
    log.open("a").write("not json\n")
    records = reliability.read_records(log)
    assert len(records) == 6
    report = reliability.render(records)
    assert report == reliability.render([*reversed(records[:-1]), records[-1]])
    assert "| prompts | 400 | ok: 0 crashes |" in report and "| 300 |" not in report
    assert "HTTP 502 \\| upload" in report
    assert "Kills survived: 5; requests lost: 0" in report
    assert "Hostile-input cases tried: 400" in report and "burst: p50 10 ms, p99 20 ms" in report
    assert report.index("## Faults") < report.index("## Crash") < report.index("## Hostile") < report.index("## Floods")


def test_main_writes_the_report(tmp_path: Path) -> None:
    records, output = tmp_path / "r.jsonl", tmp_path / "docs" / "RELIABILITY.md"
    records.write_text('{"area": "defect", "case": "1. comics", "cases": 1, "outcome": "refused"}\n')
    assert reliability.main(["--records", str(records), "--output", str(output)]) == 0
    assert "| 1. comics | 1 | refused |" in output.read_text()
