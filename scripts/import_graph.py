"""The import graph of pytest_harnessbench: every import between its modules, and any circle in it.

Every import counts: at module level, inside functions (the lazy imports of heavy or late parts) and under
``TYPE_CHECKING`` (a type named in a signature is a dependency too). A package's ``__init__`` that a
submodule import runs on the way is not counted as an edge of its own (``from .sandbox import base`` is an
edge to ``sandbox.base``), so keep package ``__init__`` files free of imports that run back up.

    python scripts/import_graph.py            # each module, its layer (0 = imports nothing of ours) and imports
    python scripts/import_graph.py --cycles   # only the circles; exit status 1 if there is one

``tests/test_imports.py`` asserts there is none.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "pytest_harnessbench"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its text)."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    edges: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, package, files):
                if target.startswith(PACKAGE) and target in files and target != name:
                    edges[name].add(target)
    return edges


def _targets(node: ast.AST, package: str, files: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package.split(".")
        base = base[:len(base) - (node.level - 1)]
        start = ".".join(base + ([node.module] if node.module else []))
    else:
        start = node.module or ""
    # `from X import Y`: Y is a submodule (an edge to X.Y) or a name defined in X (an edge to X)
    return [f"{start}.{alias.name}" if f"{start}.{alias.name}" in files else start for alias in node.names]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted; sorted by first member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    sys.setrecursionlimit(max(1000, 10 * len(edges)))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def layers(edges: dict[str, set[str]]) -> dict[str, int]:
    """Each module's layer: 0 if it imports nothing of ours, else one above the highest it imports.

    Modules in a circle get no layer (they are left out)."""
    in_cycle = {m for c in cycles(edges) for m in c}
    done: dict[str, int] = {}

    def layer(node: str) -> int:
        if node not in done:
            below = [layer(n) for n in edges[node] if n not in in_cycle]
            done[node] = 1 + max(below) if below else 0
        return done[node]

    for node in edges:
        if node not in in_cycle:
            layer(node)
    return done


def main(argv: list[str]) -> int:
    edges = graph()
    circles = cycles(edges)
    if "--cycles" not in argv:
        short = lambda m: m.removeprefix(f"{PACKAGE}.")  # noqa: E731
        for module, level in sorted(layers(edges).items(), key=lambda kv: (kv[1], kv[0])):
            print(f"{level:2d}  {short(module):32s} -> {', '.join(sorted(map(short, edges[module]))) or '-'}")
    for circle in circles:
        print("CIRCLE: " + " <-> ".join(circle))
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
