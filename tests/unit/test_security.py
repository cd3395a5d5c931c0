"""Security basics: secrets never printed, loopback by default, values parameterised."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_clickhouse_password_never_appears_in_output_or_settings_repr():
    env = {k: v for k, v in os.environ.items() if not k.startswith("GMV_")}
    env.update({"GMV_CLICKHOUSE_DSN": "http://alice:hunter2@127.0.0.1:1", "GMV_CLICKHOUSE_PASSWORD": "s3cretpw",
                "GMV_LOG_LEVEL": "DEBUG"})
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "sql", "SELECT 1"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "cannot reach ClickHouse" in proc.stderr
    assert "s3cretpw" not in proc.stdout + proc.stderr and "hunter2" not in proc.stdout + proc.stderr
    s = Settings(clickhouse_password="s3cretpw")
    assert "s3cretpw" not in repr(s) and "s3cretpw" not in str(s.model_dump())


def test_web_binds_loopback_unless_configured():
    assert Settings().web_host == "127.0.0.1"


def test_no_value_is_formatted_into_dashboard_or_rollup_sql():
    """Queries carry {name:Type} placeholders only; identifiers are validated settings."""
    from dashboards import queries
    from sinks import rollups

    for name in dir(queries):
        q = getattr(queries, name)
        if isinstance(q, str) and q.lstrip().startswith("SELECT"):
            assert "{db:Identifier}" in q
            assert not re.search(r"'\{|\{[a-z_]+\}", q), name  # no str.format slots for values
    assert "{{minutes:Array(DateTime('UTC'))}}" in rollups.GMV_MINUTE_REFRESH


def test_topic_retention_applies_to_the_embedded_broker_only():
    from streams.settings import Settings

    assert Settings(embedded_retention="30m").topic_retention_ms == 30 * 60_000
    assert Settings(kafka_bootstrap_servers="kafka:9092").topic_retention_ms is None
