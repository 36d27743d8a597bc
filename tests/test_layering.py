"""No import cycles (issue 14): every ``import`` in cnnlab, at module level or inside a
function, read from the source, must leave the module graph (and the package graph, where
``cnnlab.models.resnet`` counts as ``cnnlab.models``) without a cycle. A package's
``__init__`` that imports its own submodules to re-export them is not a cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "cnnlab"


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    p = ROOT.parent.joinpath(*module.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _imported(node: ast.AST, here: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parts = here.split(".")[: len(here.split(".")) - node.level + is_package]
        base = ".".join(parts + ([node.module] if node.module else []))
    # `from pkg import sub` imports the submodule; `from pkg import name` the package
    return [f"{base}.{a.name}" if _exists(f"{base}.{a.name}") else base for a in node.names]


def import_graph(package_level: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        here = _name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _imported(node, here, path.name == "__init__.py"):
                if not target.startswith("cnnlab.") or not _exists(target):
                    continue  # the top-level package's lazy names; compiled extensions
                a, b = here, target
                if package_level:
                    a, b = ".".join(a.split(".")[:2]), ".".join(b.split(".")[:2])
                if a != b and not b.startswith(a + "."):  # a package's own submodules
                    graph[a].add(b)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("package_level", [False, True], ids=["modules", "packages"])
def test_no_import_cycles(package_level):
    assert cycles(import_graph(package_level)) == []


def test_the_checker_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    g = import_graph(package_level=True)
    assert "cnnlab.registry" in g["cnnlab.models"]  # the families register themselves
    assert "cnnlab.models" in g["cnnlab.profile"]
