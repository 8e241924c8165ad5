"""Imports point down only: errors <- progress <- extras <- events <- log <- store <-
projections <- recall <- view <- cognition <- facade <- client <- aio <- integrations <-
bench <- adapters."""

from __future__ import annotations

import ast
import pathlib

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "engramdb"
ORDER = ["errors", "progress", "extras", "events", "log", "store", "projections", "recall", "view",
         "cognition", "memory", "client", "aio", "integrations", "bench", "adapters"]


def layer_of(module: str) -> int | None:
    head = module.split(".")[0]
    return ORDER.index(head) if head in ORDER else None


def runtime_imports(tree: ast.AST) -> list[ast.ImportFrom]:
    """Imports that run (those under ``if TYPE_CHECKING:`` are only for the type checker)."""
    found: list[ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_imports_point_down() -> None:
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        own = layer_of(".".join(rel.parts))
        if own is None:
            continue
        for node in runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
                base = rel.parts[: len(rel.parts) - node.level]
                target = ".".join([*base, node.module]) if base else node.module
                other = layer_of(target)
                if other is not None and other > own:
                    bad.append(f"{rel} imports {target}")
    assert not bad, bad
