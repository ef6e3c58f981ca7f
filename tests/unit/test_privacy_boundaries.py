"""No processor can open a sealed field: none of them reaches the key store through its imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROCESSORS = ("projector", "router", "balancer", "health", "learner", "audit")
KEY_STORE = "services.privacy.keystore"


def module_file(module: str, root: Path) -> Path | None:
    path = root.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(source: Path, root: Path) -> set[str]:
    """Modules of this repository that `source` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from pkg import submodule`
    return {name for name in found if module_file(name, root) or root.joinpath(*name.split(".")).is_dir()}


def reachable(start: list[str], root: Path) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b first
        source = module_file(module, root)
        if source:  # None: a namespace package, which runs nothing
            todo += sorted(imports_of(source, root) - seen)
    return seen


def modules_in(folder: Path, root: Path) -> list[str]:
    return [".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__") for p in folder.rglob("*.py")]


def test_the_check_follows_imports_through_other_modules(tmp_path):
    (tmp_path / "services" / "privacy").mkdir(parents=True)
    (tmp_path / "services" / "privacy" / "keystore.py").write_text("")
    (tmp_path / "services" / "helper.py").write_text("def f():\n    from services.privacy import keystore\n")
    (tmp_path / "services" / "leaky.py").write_text("import services.helper\n")
    assert KEY_STORE in reachable(["services.leaky"], tmp_path)


def test_the_check_sees_that_agents_reach_the_key_store_through_the_sdk():
    assert KEY_STORE in reachable(["services.sdk.agent"], ROOT)


@pytest.mark.parametrize("processor", [p for p in PROCESSORS if (ROOT / "services" / p).is_dir()])
def test_a_processor_never_reaches_the_key_store(processor):
    assert KEY_STORE not in reachable(modules_in(ROOT / "services" / processor, ROOT), ROOT)
