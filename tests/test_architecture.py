"""The layout stays the one README "Layout" describes: these fail the build when it drifts.

import-linter checks the contracts in pyproject.toml (layers, a core that imports no feature,
features that reach each other only through their public modules, no imports of a tasks
module); the rest are checks import-linter has no contract for.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["core", "policies", "fleet", "rollout", "audit", "approvals", "exports", "alerts", "checks", "activity", "console",
            "gavel_cli"]
MAX_MODULES_PER_FOLDER = 15
MAX_LINES = 500


def project_modules() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
            if "migrations" not in path.parts]


def cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module), Tarjan's way."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(imports.get(module, ())):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return found


def test_the_import_contracts_hold():
    linted = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_no_module_imports_itself_round_a_cycle():
    graph = grimp.build_graph(*PACKAGES)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    assert cycles(imports) == []


def test_the_cycle_check_finds_a_cycle_through_other_modules():
    imports = {"a.x": {"b.y"}, "b.y": {"c.z"}, "c.z": {"a.x"}, "a.w": {"a.x"}}
    assert cycles(imports) == [["a.x", "b.y", "c.z"]]


def test_no_project_import_hides_inside_a_function():
    """Imports inside functions hide what depends on what (and dodge cycles). Only Django's
    AppConfig.ready may import there: models are not loaded before it runs."""
    hidden = []
    for path in project_modules():
        tree = ast.parse(path.read_text())
        allowed = {id(node) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef)
                   for fn in cls.body if isinstance(fn, ast.FunctionDef) and fn.name == "ready"
                   for node in ast.walk(fn)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset and id(node) not in allowed:
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else (
                    ["." * node.level + (node.module or "")] if isinstance(node, ast.ImportFrom) else
                    [alias.name for alias in node.names])
                if any(name.startswith(".") or name.split(".")[0] in PACKAGES for name in names):
                    hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert hidden == []


@pytest.mark.parametrize("package", PACKAGES)
def test_each_folder_stays_small_enough_to_read_at_a_glance(package):
    for folder in {path.parent for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts}:
        modules = sorted(path.name for path in folder.glob("*.py"))
        assert len(modules) <= MAX_MODULES_PER_FOLDER, f"{folder.relative_to(ROOT)}: {modules}"


def test_no_module_is_a_god_file():
    long = {str(path.relative_to(ROOT)): n for path in [*project_modules(), *(ROOT / "scripts").glob("*.py")]
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def queued_task_names() -> set[str]:
    """Every task name given to core/queue.py (`queue.after_commit("app.tasks.x", ...)`)."""
    names = set()
    for path in project_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("after_commit", "now") and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "queue"):
                assert isinstance(node.args[0], ast.Constant), f"{path}:{node.lineno} names its task with a literal"
                names.add(node.args[0].value)
    return names


def test_every_queued_task_name_is_a_registered_task():
    from core import queue

    names = queued_task_names()
    assert "policies.tasks.push_publication" in names  # the scan finds what it should
    for name in sorted(names):
        queue.task(name)  # KeyError for a name no tasks module registers
