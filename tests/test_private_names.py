"""Private names of other libraries are used only in the seam modules."""

from __future__ import annotations

import ast
import re

from tests._import_graph import PACKAGES, product_modules

SEAMS = frozenset({"crm_otel._sdk", "sampling._sdk"})
"""One per package: the only modules that may use another library's private names."""

THIRD_PARTY = re.compile(
    r"^(opentelemetry|django|celery|kombu|billiard|redis|psycopg\w*|rest_framework)"
    r"(\.\w+)*\.(_[a-zA-Z]\w*)"
)
"""A dotted path into another library with an underscored part."""

KNOWN = {
    # Django documents the Model `_meta` API as public despite the underscore.
    ("crm_otel._identity", "_meta"),
}
"""(module, name) uses outside the seams that are known and accounted for."""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_names(trees: dict[str, ast.Module]) -> set[str]:
    """Every name the product itself defines or assigns (its own private attributes)."""
    names: set[str] = set()
    for module, tree in trees.items():
        names.update(module.split("."))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
    return names


def private_uses() -> list[tuple[str, int, str]]:
    """(module, line, name) of each use of another library's private name outside the seams."""
    trees = {m: ast.parse(p.read_text(), str(p)) for m, p in product_modules().items()}
    own = _defined_names(trees)
    found: list[tuple[str, int, str]] = []
    for module, tree in trees.items():
        if module in SEAMS:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if node.module.split(".")[0] in PACKAGES:
                    continue
                parts = [*node.module.split("."), *(a.name for a in node.names)]
                found += [(module, node.lineno, p) for p in parts if _private(p)]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] not in PACKAGES:
                        parts = alias.name.split(".")
                        found += [(module, node.lineno, p) for p in parts if _private(p)]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = THIRD_PARTY.match(node.value)
                if match:
                    found.append((module, node.lineno, match.group(3)))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _private(node.args[1].value)
            ):
                found.append((module, node.lineno, node.args[1].value))
            elif (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and node.attr not in own
                and not (isinstance(node.value, ast.Name) and node.value.id == "sys")
            ):
                found.append((module, node.lineno, node.attr))
    return sorted(found)


def test_private_names_only_in_the_seams() -> None:
    """No module but `crm_otel._sdk` and `sampling._sdk` uses a private name of the SDK,
    the contrib instrumentations, Django or the other libraries crm-otel works with."""
    outside = [
        f"{module}:{line} {name}"
        for module, line, name in private_uses()
        if (module, name) not in KNOWN
    ]
    assert outside == [], "move these behind the package's seam (_sdk.py): " + ", ".join(outside)
