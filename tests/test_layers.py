"""The layers of docs/architecture.md, enforced: no import cycle, no import against the layer order.

Every ``import`` of ``crmse_cli`` is read with ``ast``, function-local ones included (a local
import that dodges a cycle is still the cycle); imports under ``if TYPE_CHECKING:`` never run, so
they count for the layer order but not for cycles.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

PACKAGE = "crmse_cli"
ROOT = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, ...], ...] = (
    # base: plain modules that anything may import (they import only each other)
    (
        "crmse_cli",
        "errors",
        "units",
        "keys",
        "defaults",
        "names",
        "text",
        "fileio",
        "validate",
        "config",
        "workspace",
        "runlock",
        "workers",
        "progress",
        "settings",
        "metric",
    ),  # fmt: skip
    ("data",),
    ("model",),
    ("sampling",),
    ("train",),
    ("analysis",),
    ("registry",),
    ("describe", "report"),
    ("stages",),
    ("api",),
    ("cli",),
    ("__main__",),
)
"""Units (a sub-package or a top-level module) from the bottom up: a unit imports its own modules
and those of lower layers; two units of one layer do not import each other (except in the base)."""

KNOWN_UPWARD: set[tuple[str, str]] = set()
"""(importer, imported) pairs allowed against the layer order while a move is under way: none."""
KNOWN_CYCLES: list[set[str]] = []
"""Cycles allowed while a move is under way: none."""


def scan(root: Path = ROOT) -> dict[str, str]:
    """Module name -> source of every module of the package under ``root``."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path.read_text()
    return out


Edge = tuple[str, str, int, bool]


def imports(sources: dict[str, str]) -> list[Edge]:
    """(importer, imported module, line, under TYPE_CHECKING) for each package import."""
    out: list[Edge] = []
    for mod, src in sources.items():
        out += _module_imports(mod, src, frozenset(sources))
    return out


@cache
def _module_imports(mod: str, src: str, sources: frozenset[str]) -> list[Edge]:
    out: list[Edge] = []
    tree = ast.parse(src)
    typing_only = {
        id(n)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = mod.split(".") if _is_package(mod, sources) else mod.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            # `from pkg import module` names the module, `from module import name` the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base for a in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                out.append((mod, target, node.lineno, id(node) in typing_only))
    return out


def _is_package(mod: str, sources: frozenset[str]) -> bool:
    return any(other.startswith(mod + ".") for other in sources)


def unit(mod: str) -> str:
    """The layer unit of a module: its sub-package, or the top-level module itself."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def layer(u: str) -> int:
    return next(i for i, units in enumerate(LAYERS) if u in units)


def upward(sources: dict[str, str]) -> list[str]:
    """Imports against the layer order, as ``importer:line -> imported`` lines."""
    out = []
    for mod, target, line, _ in imports(sources):
        a, b = unit(mod), unit(target)
        if a == b or (mod, target) in KNOWN_UPWARD:
            continue
        if layer(b) > layer(a) or (layer(b) == layer(a) and layer(a) > 0):
            out.append(f"{mod}:{line} -> {target}")
    return out


def cycles(sources: dict[str, str]) -> list[set[str]]:
    """Module-level import cycles (strongly connected components), function-local imports included."""
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, target, _, typing_only in imports(sources):
        if not typing_only and target != mod:
            graph[mod].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 and comp not in KNOWN_CYCLES:
                found.append(comp)

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_goes_up_the_layers() -> None:
    assert upward(scan()) == []


def test_no_import_cycle() -> None:
    assert cycles(scan()) == []


def test_every_unit_has_a_layer() -> None:
    for mod in scan():
        layer(unit(mod))  # StopIteration: a new sub-package needs its place in LAYERS (and the docs)


def test_a_planted_upward_import_fails() -> None:
    """A function-local import of a stage from the model is caught, naming the line."""
    sources = scan()
    sources["crmse_cli.model._planted"] = "def f():\n    from crmse_cli.stages.sample import sample\n"
    assert upward(sources) == ["crmse_cli.model._planted:2 -> crmse_cli.stages.sample"]
    sources["crmse_cli.registry._planted"] = "import crmse_cli.report.collect\n"
    assert "crmse_cli.registry._planted:1 -> crmse_cli.report.collect" in upward(sources)


def test_a_planted_cycle_fails_even_through_a_local_import() -> None:
    sources = scan()
    sources["crmse_cli.model._a"] = "from crmse_cli.model._b import g\n"
    sources["crmse_cli.model._b"] = "def g():\n    from crmse_cli.model._a import f\n"
    assert cycles(sources) == [{"crmse_cli.model._a", "crmse_cli.model._b"}]
    sources["crmse_cli.model._b"] = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from crmse_cli.model._a import f\n"
    )
    assert cycles(sources) == []  # a typing-only import never runs


def test_a_relative_import_is_read() -> None:
    sources = scan()
    sources["crmse_cli.sampling._planted"] = "from ..stages import sample\n"
    assert upward(sources) == ["crmse_cli.sampling._planted:1 -> crmse_cli.stages.sample"]
