"""The import graph among the product's modules, and the circles in it.

`python -m tests._import_graph` prints, for each module of `crm_otel`, `sampling` and
`semconv`, the product modules it imports when it is imported (module level, outside
`if TYPE_CHECKING:`), then every import circle (a strongly connected component of more
than one module). `--lazy` also counts imports inside functions. Importing `a.b.c` runs
`a/__init__` and `a/b/__init__` first, so those count as edges too, except the importing
module's own parents (Python is already running them).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crm_otel", "sampling", "semconv")

EAGER = "eager"
LAZY = "lazy"
TYPING = "typing"


@dataclass(frozen=True)
class Edge:
    """`source` imports `target`, at import time (`eager`), in a function (`lazy`) or for
    the type checker only (`typing`)."""

    source: str
    target: str
    kind: str
    line: int


def product_modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every module of the product packages, by dotted name."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Each import statement with its kind."""

    def walk(node: ast.AST, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, kind
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, TYPING if kind == TYPING else LAZY)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), TYPING)
                for statement in child.orelse:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), kind)
            else:
                yield from walk(child, kind)

    yield from walk(tree, EAGER)


def _resolve(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names a statement imports (modules, or `from` names that may be modules)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        if not is_package:
            anchor.pop()
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def edges(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> list[Edge]:
    """Every import of one product module by another."""
    modules = product_modules(root, packages)
    found: dict[tuple[str, str], Edge] = {}
    rank = {EAGER: 0, LAZY: 1, TYPING: 2}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        own_parents = set(_parents(module))
        for node, kind in _imports(tree):
            for name in _resolve(module, path.name == "__init__.py", node):
                if name not in modules:
                    continue
                for target in [*_parents(name), name]:
                    if target in own_parents or target == module or target not in modules:
                        continue
                    edge = Edge(module, target, kind, node.lineno)
                    known = found.get((module, target))
                    if known is None or rank[kind] < rank[known.kind]:
                        found[(module, target)] = edge
    return sorted(found.values(), key=lambda e: (e.source, e.target))


def graph(
    all_edges: Iterable[Edge],
    kinds: Iterable[str] = (EAGER,),
    modules: Iterable[str] | None = None,
) -> dict[str, set[str]]:
    """Adjacency sets of the edges of the given kinds, every module a key."""
    wanted = set(kinds)
    names = product_modules() if modules is None else modules
    adjacency: dict[str, set[str]] = {module: set() for module in names}
    for edge in all_edges:
        if edge.kind in wanted:
            adjacency[edge.source].add(edge.target)
    return adjacency


def cycles(adjacency: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(adjacency.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(adjacency):
            if node not in index:
                connect(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(components)


def main(argv: list[str] | None = None) -> int:
    """Print the graph and its circles; exit 1 when there is a circle."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lazy", action="store_true", help="count imports inside functions")
    parser.add_argument("--quiet", action="store_true", help="print only the circles")
    args = parser.parse_args(argv)
    kinds = (EAGER, LAZY) if args.lazy else (EAGER,)
    all_edges = edges()
    adjacency = graph(all_edges, kinds)
    if not args.quiet:
        for module in sorted(adjacency):
            targets = ", ".join(sorted(adjacency[module])) or "-"
            print(f"{module} -> {targets}")
    found = cycles(adjacency)
    print(
        f"{len(adjacency)} modules, {sum(map(len, adjacency.values()))} edges ({'+'.join(kinds)})"
    )
    for number, component in enumerate(found, 1):
        print(f"circle {number} ({len(component)} modules): {' '.join(component)}")
    if not found:
        print("no import circle")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
