"""The repository stands alone: nothing in it reads files from outside its own folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from playground import DEFAULT_SPEC

REPO = Path(__file__).resolve().parents[2]


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / name for name in listed.splitlines() if (REPO / name).is_file()]


def _tracked_text_files() -> list[Path]:
    return [path for path in _tracked_files()
            if path.suffix in (".py", ".toml", ".cfg", ".sh", ".md") or path.parent.name == ".ci"]


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


RENDER_FROM_WHEEL = """
import sys
sys.path.insert(0, sys.argv[1])
import composition, playground
from PIL import Image
from composition.comic_render import PanelArt, render_comic
assert composition.__file__.startswith(sys.argv[1]), composition.__file__
assert playground.DEFAULT_SPEC.is_file() and str(playground.DEFAULT_SPEC).startswith(sys.argv[1])
pages = render_comic("From the wheel", [PanelArt(Image.new("RGB", (64, 64), "teal"), caption="Hello")])
print(len(pages), pages[0].image.size)
"""


def test_a_non_editable_install_carries_fonts_and_spec(tmp_path: Path) -> None:
    """The wheel ``pip install .`` would install holds the lettering fonts and Discord's spec, and renders."""
    source = tmp_path / "source"  # a copy of the tracked files, so the build leaves nothing in the checkout
    for path in _tracked_files():
        target = source / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         str(source)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("panelbot-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    assert "composition/fonts/ComicNeue-Regular.otf" in names and "playground/discord_api_spec/openapi.json" in names
    run = subprocess.run([sys.executable, "-c", RENDER_FROM_WHEEL, str(site)], cwd=tmp_path, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == "1"
