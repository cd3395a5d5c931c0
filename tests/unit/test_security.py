"""Security basics without a process: secrets out of settings output, values parameterised
(the end-to-end checks are in tests/integration/test_security.py)."""

from __future__ import annotations

import re

from gmv.streams.settings import Settings


def test_settings_never_show_the_clickhouse_password():
    s = Settings(clickhouse_password="s3cretpw")
    assert "s3cretpw" not in repr(s) and "s3cretpw" not in str(s.model_dump())


def test_no_value_is_formatted_into_dashboard_or_rollup_sql():
    """Queries carry {name:Type} placeholders only; identifiers are validated settings."""
    from gmv.dashboards import queries
    from gmv.sinks import rollups

    for name in dir(queries):
        q = getattr(queries, name)
        if isinstance(q, str) and q.lstrip().startswith("SELECT"):
            assert "{db:Identifier}" in q
            assert not re.search(r"'\{|\{[a-z_]+\}", q), name  # no str.format slots for values
    assert "{{minutes:Array(DateTime('UTC'))}}" in rollups.GMV_MINUTE_REFRESH


def test_topic_retention_applies_to_the_embedded_broker_only():
    assert Settings(embedded_retention="30m").topic_retention_ms == 30 * 60_000
    assert Settings(kafka_bootstrap_servers="kafka:9092").topic_retention_ms is None
