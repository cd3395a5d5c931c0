"""The arrows between packages point one way, and the pure core does no I/O (README, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# package -> the gmv packages it may import (besides itself)
ALLOWED = {
    "schemas": set(),
    "streams.core": {"schemas"},
    "sinks": {"schemas"},  # the contract: output names and the trust-score formulas (SPEC §7)
    "dashboards": {"schemas"},
    "streams": {"schemas", "streams.core", "sinks", "dashboards"},
    "alerts": {"schemas", "streams.core", "streams", "sinks"},
    "tools": {"schemas", "streams.core", "streams", "sinks", "dashboards", "alerts"},
}
IO_MODULES = {"aiokafka", "kafka", "clickhouse_connect", "chdb", "faust", "socket", "subprocess", "urllib",
              "asyncio", "threading", "requests", "noida_db"}


def _package(module: str) -> str:
    parts = module.split(".")
    return "streams.core" if parts[:2] == ["streams", "core"] else parts[0]


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
    pure = {"alerts.rules", "alerts.conditions", "alerts.model", "alerts.exceptions"}
    modules = [(m, p) for m, p in _modules() if m in pure]
    assert len(modules) == len(pure)
    wrong = [f"{m} imports {i}" for m, p in modules for i in _imports(p)
             if i.split(".")[0] in IO_MODULES or i.startswith("gmv.alerts.") and i.removeprefix("gmv.") not in pure]
    assert not wrong, wrong
