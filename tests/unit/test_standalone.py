"""The repository stands alone: nothing in it reads files from outside its own folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

from playground import DEFAULT_SPEC

REPO = Path(__file__).resolve().parents[2]


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / name for name in listed.splitlines() if name.endswith((".py", ".toml", ".cfg", ".sh", ".md"))
            or name.startswith(".ci/")]


def test_the_discord_spec_is_vendored_inside_the_package() -> None:
    assert DEFAULT_SPEC.is_file()
    assert REPO in DEFAULT_SPEC.parents
    folder = DEFAULT_SPEC.parent
    assert (folder / "LICENSE").is_file() and "MIT" in (folder / "LICENSE").read_text(encoding="utf-8")
    assert "commit" in (folder / "SOURCE.md").read_text(encoding="utf-8")


def test_no_tracked_file_reaches_outside_the_checkout() -> None:
    outside = "../" + "shared"  # split so this file does not match itself
    offenders = [str(path.relative_to(REPO)) for path in _tracked_text_files()
                 if path.is_file() and outside in path.read_text(encoding="utf-8", errors="replace")]
    assert offenders == []
