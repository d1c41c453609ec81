"""The import graph has no circle, and its arrows point one way."""

from __future__ import annotations

from pathlib import Path

from tests._import_graph import EAGER, LAZY, cycles, edges, graph, product_modules

ROOTS = frozenset(
    {
        "crm_otel._cli",
        "crm_otel._configurator",
        "crm_otel._distro",
        "crm_otel._doc",
        "crm_otel._probe",
    }
)
"""Where the packages meet: entry points (configurator, distro, console script) and the
tools only they use. They may import anything; nothing else imports them."""

ALLOWED = {
    "semconv": {"semconv"},
    "sampling": {"sampling", "semconv"},
    "core": {"core", "sampling", "semconv"},
    "logs": {"logs", "core", "sampling", "semconv"},
    "metrics": {"metrics", "core", "sampling", "semconv"},
    "root": {"root", "logs", "metrics", "core", "sampling", "semconv"},
}
"""The layers each layer may import (at import time or inside a function)."""


def layer(module: str) -> str:
    """The layer of a product module."""
    top, _, rest = module.partition(".")
    if top in ("semconv", "sampling"):
        return top
    if module in ROOTS:
        return "root"
    sub = rest.partition(".")[0]
    return sub if sub in ("logs", "metrics") else "core"


def test_no_import_circle() -> None:
    """No product module imports itself through others, counting imports inside functions."""
    found = cycles(graph(edges(), (EAGER, LAZY)))
    assert found == [], "import circles (python -m tests._import_graph --lazy): " + "; ".join(
        " ".join(component) for component in found
    )


def test_arrows_point_one_way() -> None:
    """crm_otel imports sampling and semconv, the logs and metrics import the core, and
    only the entry points import the logs and metrics: never the other way."""
    wrong = [
        f"{e.source} -> {e.target} (line {e.line}, {layer(e.source)} -> {layer(e.target)})"
        for e in edges()
        if e.kind in (EAGER, LAZY) and layer(e.target) not in ALLOWED[layer(e.source)]
    ]
    assert wrong == []


def test_the_variable_registry_is_a_leaf() -> None:
    """`crm_otel._variables` imports nothing of the product, so anything can list it."""
    assert [e.target for e in edges() if e.source == "crm_otel._variables"] == []
    assert "crm_otel._variables" in product_modules()


def test_a_circle_is_found(tmp_path: Path) -> None:
    """The detector reports a circle through a function-level import and a package."""
    package = tmp_path / "demo"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from demo.sub import b\n")
    (package / "sub" / "__init__.py").write_text("from demo.sub.b import thing\n")
    (package / "sub" / "b.py").write_text("def thing():\n    import demo.a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import demo.a\n"
    )
    found_edges = edges(tmp_path, ("demo",))
    modules = product_modules(tmp_path, ("demo",))
    assert cycles(graph(found_edges, (EAGER,), modules)) == []
    assert cycles(graph(found_edges, (EAGER, LAZY), modules)) == [
        ["demo.a", "demo.sub", "demo.sub.b"]
    ]
