"""The layout keeps its promises: no import cycle among the project's modules, and no
import by string where a plain import works."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "events", "projections", "bench")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _module_level_imports(path: Path, known: dict[str, Path]) -> set[str]:
    imported = set()
    for node in ast.parse(path.read_text()).body:  # imports inside functions are deliberate and lazy
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                imported.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return {name for name in imported if name in known}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_one_that_imports_it_back():
    modules = _modules()
    graph = {name: _module_level_imports(path, modules) - {name} for name, path in modules.items()}
    assert import_cycles(graph) == []


def test_no_import_by_string():
    by_string = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _modules().values()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "__import__(" in line or "import_module(" in line
    ]
    assert by_string == []


def test_the_product_needs_nothing_of_measurement_and_evaluation_at_run_time():
    # Only the CLI offers `bench`, `evaluate` and `simulate`, by importing bench/ plainly.
    uses = [
        f"{path.relative_to(ROOT)}:{number}"
        for name, path in _modules().items()
        if name.startswith("services.") and name != "services.cli"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.strip().startswith(("from bench", "import bench"))
    ]
    assert uses == []
