"""The engine's shape (issue 17, item 5): its modules import one another without a cycle (the
runner does not import the engine), and none is over ~600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import dialer.engine

ENGINE = Path(dialer.engine.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Each dialer.engine module -> the dialer.engine modules it imports (TYPE_CHECKING ones
    too: a cycle hidden from the runtime is still one)."""
    graph: dict[str, set[str]] = {}
    for path in ENGINE.glob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        graph[path.stem] = {n.rsplit(".", 1)[1] for n in names if n.startswith("dialer.engine.")}
    return graph


def test_no_import_cycle_in_the_engine() -> None:
    graph = _imports()
    assert "engine" not in graph["runner"]
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, f"import cycle: {' -> '.join([*path, module])}"
        if module in done:
            return
        for imported in graph.get(module, set()):
            visit(imported, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])
    # only the composition root imports the parts it wires
    assert not [m for m, imported in graph.items() if "engine" in imported]


def test_no_engine_module_over_600_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in ENGINE.glob("*.py")}
    assert max(sizes.values()) <= 600, sizes
