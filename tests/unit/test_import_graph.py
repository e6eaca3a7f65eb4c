"""The project's import graph, read from the source with ``ast``: no cycles, and each layer keeps to its libraries.

Every import counts, those under ``if TYPE_CHECKING:`` and inside functions included: a cycle
that only type checkers follow still ties the modules together. ``from package import name``
is an edge to the submodule ``package.name`` where there is one, else to ``package``; the
implicit import of a submodule's parent package is not an edge (every submodule has it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "generation", "rules", "composition", "storage", "playground", "studio")
ML_LIBRARIES = frozenset({"torch", "diffusers", "transformers", "compel"})
#: Packages that must not know about Discord.
WITHOUT_DISCORD = ("generation", "rules", "composition", "storage")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name ``module`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _project_target(name: str) -> str | None:
    """The project module an imported name refers to: itself, or the nearest enclosing module."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {_project_target(name) for name in _imported_names(module, path)}
        graph[module] = {target for target in targets if target is not None and target != module}
    return graph


def _third_party(module: str) -> set[str]:
    return {name.split(".")[0] for name in _imported_names(module, MODULES[module])} - set(PACKAGES)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert {"bot.bot", "bot.job_runner", "generation.queue", "storage"} <= set(graph)
    assert "bot.job_runner" in graph["bot.bot"]
    assert "rules.request" in graph["generation.queue"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] == "bot"))
def test_the_bot_never_imports_ml_libraries(module: str) -> None:
    assert not _third_party(module) & ML_LIBRARIES


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] in WITHOUT_DISCORD))
def test_only_the_bot_and_playground_import_discord(module: str) -> None:
    assert "discord" not in _third_party(module)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] != "generation"))
def test_ml_libraries_only_inside_generation(module: str) -> None:
    assert not _third_party(module) & ML_LIBRARIES
