"""The package layout keeps the architecture readable: no import cycle between heatcheck's
modules, and no module name used twice for different jobs."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import heatcheck.fixtures
import heatcheck.suite

import heatcheck

PACKAGES = {"heatcheck": Path(heatcheck.__file__).parent,
            "heatcheck.fixtures": Path(heatcheck.fixtures.__file__).parent,
            "heatcheck.suite": Path(heatcheck.suite.__file__).parent}


def _modules() -> dict[str, Path]:
    """Every module of the installed package (suite and fixtures ship from their own folders)."""
    found: dict[str, Path] = {}
    for prefix, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if prefix == "heatcheck" and parts[:1] in (("fixtures",), ("suite",)):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((prefix, *parts))] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """heatcheck modules ``path`` imports at module level (imports inside functions run later,
    once every module is loaded, and cannot form an import-time cycle)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_heatcheck_modules() -> None:
    modules = _modules()
    assert "heatcheck.report.schema" in modules
    assert "heatcheck.fixtures.bench" in modules
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert _cycles(graph) == []


def test_no_module_name_does_two_jobs() -> None:
    stems = Counter(name.rsplit(".", 1)[-1] for name, path in _modules().items()
                    if path.name != "__init__.py")
    assert [stem for stem, count in stems.items() if count > 1] == []
