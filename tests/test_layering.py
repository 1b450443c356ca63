"""Imports point one way (DESIGN §3), and no module but OpenDP's callers can draw noise (R-DP-01).

An AST walk over every module of the package, lazy imports inside functions included: what a
layer may import is stated once per rule below, and a breach names the module and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import gateway

PACKAGE = Path(gateway.__file__).resolve().parent
RANDOMNESS = ("random", "numpy.random", "secrets", "scipy.stats")
# Synthetic demo data is drawn from a seeded generator on purpose; client secrets need `secrets`.
RANDOMNESS_EXEMPT = ("gateway.data.demo", "gateway.data.demo_people", "gateway.auth.secrets")


@dataclass(frozen=True)
class Use:
    module: str
    line: int
    name: str  # a dotted name the module imports or reaches (`np.random` -> numpy.random)

    def __str__(self) -> str:
        return f"{self.module}:{self.line} uses {self.name}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    keep = len(base) - node.level + (1 if is_package else 0)
    return ".".join(base[:keep] + ([node.module] if node.module else []))


def uses_in(source: str, module: str, is_package: bool = False) -> Iterator[Use]:
    """Every import (top-level or lazy) and every `alias.attr` reach into an imported module."""
    aliases: dict[str, str] = {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]  # `import a.b` binds `a`
                aliases[bound] = alias.name if alias.asname else bound
                yield Use(module, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node)
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                yield Use(module, node.lineno, f"{base}.{alias.name}")
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            yield Use(module, node.lineno, node.args[0].value)  # type: ignore[attr-defined]
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases):
            yield Use(module, node.lineno, f"{aliases[node.value.id]}.{node.attr}")


def _dynamic_import(node: ast.Call) -> bool:
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    return (name in ("__import__", "import_module") and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def all_uses() -> list[Use]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found.extend(uses_in(path.read_text(encoding="utf-8"), module_name(path),
                             path.name == "__init__.py"))
    return found


def reaches(use: Use, *names: str) -> bool:
    return any(use.name == n or use.name.startswith(n + ".") for n in names)


def in_layer(use: Use, *layers: str) -> bool:
    return any(use.module == layer or use.module.startswith(layer + ".") for layer in layers)


@pytest.fixture(scope="module")
def uses() -> list[Use]:
    return all_uses()


def breaches(uses: list[Use], layers: tuple[str, ...], banned: tuple[str, ...],
             exempt: tuple[str, ...] = ()) -> list[str]:
    return sorted(str(u) for u in uses
                  if in_layer(u, *layers) and not in_layer(u, *exempt) and reaches(u, *banned))


# ---------------------------------------------------------------- the walker itself


def test_the_walker_sees_lazy_relative_aliased_and_dynamic_imports() -> None:
    source = (
        "import numpy as np\n"
        "from . import plan\n"
        "from ..store import db\n"
        "def f():\n"
        "    import polars\n"
        "    return np.random.default_rng()\n"
        "g = __import__('random')\n"
    )
    names = {u.name for u in uses_in(source, "gateway.core.policy")}
    assert {"numpy", "gateway.core.plan", "gateway.store.db", "polars", "numpy.random",
            "random"} <= names
    pkg = {u.name for u in uses_in("from .policy import Column\n", "gateway.core", True)}
    assert pkg == {"gateway.core.policy.Column"}


def test_the_walk_covers_the_whole_package(uses: list[Use]) -> None:
    modules = {u.module for u in uses}
    assert {"gateway.core.policy", "gateway.store.db", "gateway.http.app", "gateway.cli.main"} <= modules


# ---------------------------------------------------------------- DESIGN §3


def test_core_imports_nothing_of_ours_but_errors_and_core(uses: list[Use]) -> None:
    ours = [str(u) for u in uses if in_layer(u, "gateway.core") and reaches(u, "gateway")
            and not reaches(u, "gateway.errors", "gateway.core")]
    assert ours == []


def test_core_is_pure(uses: list[Use]) -> None:
    impure = ("aiohttp", "polars", "opendp", "psycopg", "psycopg_pool", "sqlite3")
    assert breaches(uses, ("gateway.core",), impure) == []


def test_service_knows_no_http(uses: list[Use]) -> None:
    assert breaches(uses, ("gateway.service",), ("aiohttp", "gateway.http")) == []


def test_store_knows_neither_http_nor_the_service(uses: list[Use]) -> None:
    assert breaches(uses, ("gateway.store",), ("aiohttp", "gateway.http", "gateway.service")) == []


def test_only_dp_and_data_touch_opendp_and_polars(uses: list[Use]) -> None:
    exempt = ("gateway.dp", "gateway.data")
    assert breaches(uses, ("gateway",), ("opendp", "polars"), exempt=exempt) == []


def test_nothing_below_http_imports_it(uses: list[Use]) -> None:
    lower = ("gateway.core", "gateway.service", "gateway.store", "gateway.dp", "gateway.data")
    assert breaches(uses, lower, ("gateway.http",)) == []


# ---------------------------------------------------------------- R-DP-01


def test_no_module_draws_randomness_outside_opendp(uses: list[Use]) -> None:
    """Noise comes from OpenDP's measurements; the sandbox calls them and draws nothing itself."""
    assert breaches(uses, ("gateway",), RANDOMNESS, exempt=RANDOMNESS_EXEMPT) == []


# ---------------------------------------------------------------- the re-housed floor plan


@pytest.mark.parametrize(("layer", "banned"), [
    ("gateway.dp", ("gateway.store", "gateway.service", "gateway.runtime")),  # the sandbox keeps no ledger
    ("gateway.store", ("gateway.dp", "gateway.runtime", "gateway.data")),     # the store draws and loads nothing
    ("gateway.runtime", ("gateway.service", "gateway.http", "gateway.cli")),  # parts start no use case
    ("gateway.data", ("gateway.service", "gateway.runtime", "gateway.http")),
    ("gateway.http", ("gateway.store",)),                                      # HTTP goes through the service
    ("gateway.auth", ("gateway.service", "gateway.http", "gateway.runtime")),
])
def test_a_layer_does_not_reach_past_its_neighbours(uses: list[Use], layer: str, banned: tuple[str, ...]) -> None:
    assert breaches(uses, (layer,), banned) == []


def test_only_the_command_line_imports_the_command_line(uses: list[Use]) -> None:
    assert breaches(uses, ("gateway",), ("gateway.cli",), exempt=("gateway.cli",)) == []


def test_no_import_circle_between_modules(uses: list[Use]) -> None:
    """Module-level imports (lazy ones included) form no cycle: each room can be read on its own."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for u in uses:
        target = next((m for m in sorted(modules, key=len, reverse=True)
                       if u.name == m or u.name.startswith(m + ".")), None)
        package = Path(PACKAGE.parent, *(target or "").split(".")).is_dir()  # an __init__: names only
        if target and target != u.module and not package and u.module in graph:
            graph[u.module].add(target)
    cycles = _cycles(graph)
    assert cycles == [], cycles


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_house_sizes(uses: list[Use]) -> None:
    """At most 8 modules loose at the top of the package; no module over 400 lines."""
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= 8, loose
    long = sorted(f"{p.relative_to(PACKAGE)}: {n}" for p in PACKAGE.rglob("*.py")
                  if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400)
    assert long == [], long
