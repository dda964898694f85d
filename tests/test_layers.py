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
        "lazy",
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


# ---- function-local imports: only to defer a heavy dependency ----------------------------------

HEAVY = frozenset(
    {"torch", "numpy", "scipy", "plotly", "ase", "sqlalchemy", "alembic", "mace", "e3nn", "tblite"}
)
"""Packages whose import costs the command line measurable start-up time (docs/results.md,
2026-12-07: `crmse --help` loads none of them). A function-local import of a crmse_cli module is
allowed only when it would load one of these that its importer's module level does not."""

KNOWN_LIGHT_LOCAL: set[tuple[str, str]] = set()
"""(importer, imported) function-local imports that defer nothing heavy, allowed while a move is
under way."""


_ALL = frozenset(scan())
"""The package's module names (to tell ``from pkg import module`` from ``from module import name``)."""


def _runtime_imports(src: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(module-level, function-local) imports that run: names as written, with their line."""
    tree = ast.parse(src)
    typing_only = {
        id(n)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    local = {
        id(n)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for n in ast.walk(fn)
    }
    top: list[tuple[str, int]] = []
    inner: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        else:
            base = node.module or ""
            # `from pkg import module` names the module, `from module import name` the module
            found = [f"{base}.{a.name}" if f"{base}.{a.name}" in _ALL else base for a in node.names]
        (inner if id(node) in local else top).extend((name, node.lineno) for name in found)
    return top, inner


def _loaded_at_import(mod: str, sources: dict[str, str]) -> set[str]:
    """The heavy packages that importing ``mod`` loads: its packages' and its module level's,
    through every crmse_cli module they import at module level."""
    seen: set[str] = set()
    heavy: set[str] = set()
    parts = mod.split(".")
    stack = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    while stack:
        m = stack.pop()
        if m in seen or m not in sources:
            continue
        seen.add(m)
        for name, _ in _runtime_imports(sources[m])[0]:
            root = name.split(".")[0]
            if root == PACKAGE:
                bits = name.split(".")
                stack += [".".join(bits[:i]) for i in range(1, len(bits) + 1)]
            elif root in HEAVY:
                heavy.add(root)
    return heavy


def light_local_imports(sources: dict[str, str]) -> list[str]:
    """Function-local crmse_cli imports that defer no heavy package: ``importer:line -> imported``."""
    out = []
    for mod, src in sources.items():
        own = _loaded_at_import(mod, sources)
        for name, line in _runtime_imports(src)[1]:
            if name.split(".")[0] != PACKAGE or name not in sources or (mod, name) in KNOWN_LIGHT_LOCAL:
                continue
            if not _loaded_at_import(name, sources) - own:
                out.append(f"{mod}:{line} -> {name}")
    return sorted(set(out))


def test_a_function_local_import_defers_a_heavy_package() -> None:
    """No local import exists only to dodge a cycle: each one keeps torch, numpy, plotly... out of
    its module's import (a cycle would fail test_no_import_cycle, which counts local imports)."""
    assert light_local_imports(scan()) == []


def test_a_planted_light_local_import_fails() -> None:
    sources = scan()
    sources["crmse_cli.cli._planted"] = (
        "def f():\n    from crmse_cli.errors import CrmseError\n\n"
        "def g():\n    from crmse_cli.stages.sample import sample\n"  # torch: a reason
    )
    assert light_local_imports(sources) == ["crmse_cli.cli._planted:2 -> crmse_cli.errors"]
