"""The arrows between packages point one way, and the pure core does no I/O (docs/architecture.md, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# package -> the gmv packages it may import (besides itself)
ALLOWED = {
    "schemas": set(),
    # the state stores (a key-value interface, RocksDB behind it): the core keeps its state there
    "streams.state": set(),
    "streams.core": {"schemas", "streams.state"},
    # the contract (output names, the catalogue, the trust-score formulas) and the pure core (the markov solve)
    "sinks": {"schemas", "streams.core"},
    "dashboards": {"schemas"},
    "streams": {"schemas", "streams.core", "streams.state", "sinks", "dashboards"},
    "alerts": {"schemas", "streams.core", "streams", "sinks"},
    "tools": {"schemas", "streams.core", "streams.state", "streams", "sinks", "dashboards", "alerts"},
}
IO_MODULES = {"aiokafka", "kafka", "clickhouse_connect", "chdb", "faust", "socket", "subprocess", "urllib",
              "asyncio", "threading", "requests", "noida_db"}


def _package(module: str) -> str:
    parts = module.split(".")
    if parts[:2] in (["streams", "core"], ["streams", "state"]):
        return ".".join(parts[:2])
    return parts[0]


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _modules() -> list[tuple[str, Path]]:
    found = []
    for folder in ("schemas", "streams", "sinks", "alerts", "dashboards", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found.append((".".join(path.relative_to(ROOT).with_suffix("").parts), path))
    return found


def test_packages_import_only_downstream_packages():
    wrong = []
    modules = _modules()
    assert len(modules) > 30
    for module, path in modules:
        own = _package(module)
        for imported in _imports(path):
            if not imported.startswith("gmv."):
                continue
            target = _package(imported.removeprefix("gmv."))
            if target != own and target not in ALLOWED[own]:
                wrong.append(f"{module} imports {imported}")
    assert not wrong, wrong


def test_the_pure_core_imports_no_io():
    core = [(m, p) for m, p in _modules() if _package(m) == "streams.core"]
    assert len(core) >= 8
    wrong = [f"{m} imports {i}" for m, p in core for i in _imports(p) if i.split(".")[0] in IO_MODULES]
    assert not wrong, wrong


def test_no_shipped_module_imports_the_benchmarks_or_the_tests():
    wrong = [f"{m} imports {i}" for m, p in _modules() for i in _imports(p) if i.split(".")[0] in ("bench", "tests")]
    assert not wrong, wrong
    tests = [p for p in (ROOT / "tests").rglob("*.py")]
    assert not [str(p) for p in tests if any(i.split(".")[0] == "bench" for i in _imports(p))]


def test_the_alert_rules_conditions_and_shapes_import_no_io():
    pure = {"alerts.rules", "alerts.conditions", "alerts.model", "alerts.exceptions", "alerts.judging",
            "alerts.baselines"}
    modules = [(m, p) for m, p in _modules() if m in pure]
    assert len(modules) == len(pure)
    wrong = [f"{m} imports {i}" for m, p in modules for i in _imports(p)
             if i.split(".")[0] in IO_MODULES or i.startswith("gmv.alerts.") and i.removeprefix("gmv.") not in pure]
    assert not wrong, wrong


def _module_graph() -> dict[str, set[str]]:
    """gmv module -> the gmv modules it imports, anywhere in it (functions and TYPE_CHECKING blocks too)."""
    modules = {m for m, _ in _modules()}
    graph: dict[str, set[str]] = {}
    for module, path in _modules():
        deps = set()
        for imported in _imports(path):
            name = imported.removeprefix("gmv.")
            if not imported.startswith("gmv."):
                continue
            while name and name not in modules and f"{name}.__init__" not in modules:
                name = name.rpartition(".")[0]  # `from gmv.a.b import c`: c may be a name, not a module
            if name:
                deps.add(name if name in modules else f"{name}.__init__")
        graph[module] = deps - {module}
    return graph


def test_no_import_circle_anywhere_not_even_under_type_checking():
    graph = _module_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, circles


MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 250


def test_no_shipped_module_over_450_lines_and_no_class_over_250():
    long_modules, long_classes = [], []
    for module, path in _modules():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{module}: {len(text.splitlines())}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                long_classes.append(f"{module}.{node.name}: {node.end_lineno - node.lineno + 1}")
    assert not long_modules and not long_classes, (long_modules, long_classes)

