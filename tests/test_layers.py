"""The package's layering (README, Development): no module imports one above its own layer, no
import cycle through module-level imports, nothing in the package imports the old ``fwmrl.runs``
path, and every ``task.kind`` has a job and an ``fwmrl eval``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fwmrl"

LAYERS: dict[str, int] = {
    # 0: leaves; 1: cores and envs; 2: config and the process group
    "fwmrl.errors": 0,
    "fwmrl.atomic": 0,
    "fwmrl.threads": 0,
    "fwmrl.version": 0,
    "fwmrl.memory": 1,
    "fwmrl.envs": 1,
    "fwmrl.config": 2,
    "fwmrl.distributed": 2,
    # 3: services that only read and write run files, and the one job loop
    "fwmrl.rundir": 3,
    "fwmrl.plots": 3,
    "fwmrl.results": 3,
    "fwmrl.jobloop": 3,
    # 4: the trainers (their job adapters, agents/job.py and tasks/job.py, included)
    "fwmrl.agents": 4,
    "fwmrl.tasks": 4,
    "fwmrl.sb3": 4,
    # 5: which job a config runs, the Python API; 6: sweeps; 7: the command line
    "fwmrl.jobs": 5,
    "fwmrl.api": 5,
    "fwmrl.memory_plot": 5,  # draws the memory of supervised and of RL runs: above both trainers
    "fwmrl.sweep": 6,
    "fwmrl.runs": 7,  # the old import path: re-exports, imported by nothing in the package
    "fwmrl.cli": 7,
    "fwmrl.__main__": 7,
}
SIDEWAYS: set[tuple[str, str]] = set()
"""Allowed arrows between trainer packages (none)."""


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    for prefix, layer in LAYERS.items():  # no prefix holds another
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(module imported, at module level, line) of every fwmrl import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fwmrl"):
            names = [f"{node.module}.{a.name}" for a in node.names]  # a name or a submodule
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("fwmrl")]
        for name in names:
            if name.startswith("fwmrl"):
                found.append((name, id(node) in top, node.lineno))
    return found


def _files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_layer() -> None:
    assert [_module(p) for p in _files() if _layer(_module(p)) is None] in ([], ["fwmrl"])


def test_no_arrow_runs_up() -> None:
    """Module-level and function-level imports alike (``TYPE_CHECKING`` ones too)."""
    upward = []
    for path in _files():
        source = _module(path)
        here = _layer(source)
        for target, _, line in _imports(path):
            there = _layer(target)
            if there is None or here is None or there <= here:
                continue
            if any(source.startswith(a) and target.startswith(b) for a, b in SIDEWAYS):
                continue
            upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {source} -> {target}")
    assert upward == []


def test_no_module_imports_the_old_runs_path() -> None:
    users = [
        f"{p.relative_to(PACKAGE.parent)}:{line}"
        for p in _files()
        if _module(p) != "fwmrl.runs"
        for target, _, line in _imports(p)
        if target == "fwmrl.runs" or target.startswith("fwmrl.runs.")
    ]
    assert users == []


def test_no_cycle_through_module_level_imports() -> None:
    modules = {_module(p): p for p in _files()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target, top, _ in _imports(path):
            while target and target not in modules:  # fwmrl.x.NAME -> fwmrl.x
                target = target.rpartition(".")[0]
            if top and target and target != name and target != "fwmrl":
                targets.add(target)
        graph[name] = targets
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize("kind", ["rl", "retrieval", "catbabi", "lm"])
def test_every_task_kind_has_a_job_and_an_eval(kind: str) -> None:
    from fwmrl import cli, jobs
    from fwmrl.config import TASK_KINDS

    assert kind in TASK_KINDS
    assert set(jobs.JOBS) == set(TASK_KINDS) == set(cli._EVALUATORS)
