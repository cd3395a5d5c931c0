"""Test tiers: tests/unit need nothing (no network, no processes); tests/integration get a real
broker and ClickHouse from fixtures and carry the ``integration`` marker. Both rules are checked
here, so a test in the wrong tier fails collection instead of passing by accident."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wrong = []
    for item in items:
        in_integration = "integration" in item.path.parts
        marked = item.get_closest_marker("integration") is not None
        if in_integration != marked:
            wrong.append(item.nodeid)
    if wrong:
        raise pytest.UsageError(
            "tests under tests/integration/ must be marked integration (pytestmark = pytest.mark.integration), "
            f"and only those: {', '.join(wrong[:10])}")
