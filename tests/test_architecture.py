"""The house holds: no module imports its way back to itself (TYPE_CHECKING and function-level
imports included, which import-linter's sibling check sees only between packages), the
layers and component contracts pass `lint-imports`, and the core stays in rooms a reader can
take in (no engine module far over 400 lines, no engine folder over 12 modules)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "l3tui"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every l3tui module and the l3tui modules it imports, anywhere in its source."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t if t in modules else node.module for t in targets]
            for target in targets:
                while target and target not in modules:  # `import l3tui.x.y` names a module
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("l3tui"):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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


def test_the_cycle_finder_finds_a_cycle_through_a_type_checking_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_its_way_back_to_itself() -> None:
    graph = import_graph()
    assert "l3tui.engine.workflow.engine" in graph  # the walk found the package
    assert "l3tui.engine.scheduling.queue_entry" in graph["l3tui.engine.scheduling.scheduler"]
    assert cycles(graph) == []


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    for contract in ("Layers:", "Engine components:", "No import cycles between siblings"):
        assert contract in result.stdout


def test_the_core_is_in_rooms_a_reader_can_take_in() -> None:
    engine = PACKAGE / "engine"
    long = {str(p.relative_to(REPO)): n for p in engine.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 430}  # fmt: skip
    assert long == {}
    for folder in [engine, *[d for d in engine.iterdir() if d.is_dir() and d.name != "__pycache__"]]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 12, folder
