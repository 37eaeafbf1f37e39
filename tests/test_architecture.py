"""The import graph of ``huale``: no import cycle, no import from a lower layer to a higher one.

Every module under ``src/huale`` is parsed with :mod:`ast`; every ``import huale...`` /
``from huale... import`` counts, wherever it stands (module level, inside a function, under
``TYPE_CHECKING``): a deferred import is still a dependency. The layer order below is the one
``docs/architecture.md`` explains; keep the two in step.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "huale"

# Bottom to top. A module may import modules of its own layer (acyclically) and of layers below.
# Units are the subpackages and top-level modules of huale ("huale" itself = huale/__init__.py).
LAYERS: list[set[str]] = [
    {"huale", "errors", "io", "options", "boxes", "locking", "predictions", "runtime", "presets"},
    {"data", "losses", "augment", "evaluation", "reports"},  # domain leaves: formats, maths
    {"models"},  # the detector: torchvision parts, RoI head, losses, checkpoints
    {"inference"},  # run a detector over a pool -> prediction records, shards
    {"strategies"},  # rank prediction records (never run a model)
    {"selection"},  # huale select: pool, context, scoring + strategy, exports
    {"engine"},  # train, evaluate, the active-learning loop
    {"demo", "project", "serve"},  # applications on top: demo, labeling rounds, ML backend
    {"cli", "__main__"},  # argument parsing, one module per command
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def imported(tree: ast.AST, known: set[str]) -> set[str]:
    """The huale modules ``tree`` imports (``from a import b`` is ``a.b`` when that is a module)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return out & known


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {
        name: imported(ast.parse(path.read_text(encoding="utf-8")), set(found)) - {name}
        for name, path in found.items()
    }


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of() -> dict[str, int]:
    return {name: level for level, names in enumerate(LAYERS) for name in names}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read():
    graph = import_graph()
    assert "huale.strategies.registry" in graph
    assert "huale.strategies.base" in graph["huale.strategies.registry"]


def test_every_package_has_a_layer():
    units = {unit(m) for m in modules()}
    missing = sorted(units - set(layer_of()))
    assert not missing, (
        f"{missing} not in LAYERS of tests/test_architecture.py: add each at its layer, and a "
        "line to docs/architecture.md"
    )


def test_no_import_cycle_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for source, targets in import_graph().items():
        graph[unit(source)] |= {unit(t) for t in targets} - {unit(source)}
    cycle = find_cycle(graph)
    assert cycle is None, "package cycle: " + " -> ".join(cycle)


def test_no_upward_import():
    level = layer_of()
    upward = sorted(
        f"{source} imports {target} ({unit(target)} is above {unit(source)})"
        for source, targets in import_graph().items()
        for target in targets
        if unit(source) in level and unit(target) in level and level[unit(target)] > level[unit(source)]
    )
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize(
    ("graph", "has_cycle"),
    [({"a": {"b"}, "b": {"c"}, "c": set()}, False), ({"a": {"b"}, "b": {"a"}}, True)],
)
def test_find_cycle(graph, has_cycle):
    assert (find_cycle(graph) is not None) == has_cycle
