"""Schema migrations on the real engine: an install from before migration 3 upgrades in place,
and ClickHouse logs accepted events into ingest_log from the events rows."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.integration.conftest import ROOT

# Runs in its own process: the embedded engine opens a data path from one process only.
UPGRADE = r'''
import dataclasses, json, os, sys
from datetime import UTC, datetime
from sinks.clickhouse import ClickHouseSink, connect, migrate
from sinks.schema import EVENTS, INGEST_LOG, STORED_TABLES, migrations
from streams.settings import Settings

s = Settings()
db = s.clickhouse_database
client = connect(s.resolved_clickhouse_dsn, s.clickhouse_password)
# The install as migrations 1 and 2 left it: events without element_index, no events_log view.
old_events = dataclasses.replace(EVENTS, columns=tuple(c for c in EVENTS.columns if c.name != "element_index"))
client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
migrate_1_2 = [m for m in migrations(db) if m.version <= 2]
client.command(f"CREATE TABLE `{db}`.`schema_migrations` (`version` UInt32, `description` String, "
               "`applied_at` DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY version")
for m in migrate_1_2:
    for stmt in m.statements:
        for table in STORED_TABLES:
            if table is EVENTS:
                for new, old in zip(EVENTS.ddl(db), old_events.ddl(db)):
                    stmt = stmt.replace(new, old)
        client.command(stmt)
    client.insert("schema_migrations", [(m.version, m.description, datetime.now(UTC))], database=db,
                  column_names=["version", "description", "applied_at"])
now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
old_sink = ClickHouseSink(lambda: client, db, tables=[old_events, INGEST_LOG])
old_sink.add("events", [("old-1", "view", now, "u1", "u1", "t:0:1", "t", 0, 1, "{}", now)])
old_sink.add("ingest_log", [("t:0:1", "t", 0, 1, -1, "old-1", "view", "accepted", "", now)])
old_sink.flush_sync()

version = migrate(client, db)
sink = ClickHouseSink(lambda: client, db)
sink.add("events", [("new-1", "view", now, "u2", "u2", "t:0:2#7", "t", 0, 2, 7, "{}", now)])
sink.flush_sync()
q = lambda sql: [dict(zip(r.column_names, row)) for r in [client.query(sql)] for row in r.result_rows]
print(json.dumps({
    "version": version,
    "events": q(f"SELECT event_id, element_index FROM `{db}`.events ORDER BY event_id"),
    "log": q(f"SELECT src, source_offset, element_index, event_id, event_type, outcome, reason_code, "
             f"logged_at = toDateTime64('2026-11-20 12:00:00', 3, 'UTC') AS same_time "
             f"FROM `{db}`.ingest_log ORDER BY src"),
    "counts": q(f"SELECT received, accepted FROM `{db}`.ingest_counts"),
}, default=str))
'''


def test_an_old_install_upgrades_and_clickhouse_logs_accepted_events(gmv_env):
    proc = subprocess.run([sys.executable, "-c", UPGRADE], env=gmv_env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["version"] == 3
    # the old row reads element_index -1; the new one keeps its index in the producer batch
    assert out["events"] == [{"event_id": "new-1", "element_index": 7}, {"event_id": "old-1", "element_index": -1}]
    # the new event's log row was written by ClickHouse (the sink sent none), the same fields as before
    assert out["log"] == [
        {"src": "t:0:1", "source_offset": 1, "element_index": -1, "event_id": "old-1", "event_type": "view",
         "outcome": "accepted", "reason_code": "", "same_time": 1},
        {"src": "t:0:2#7", "source_offset": 2, "element_index": 7, "event_id": "new-1", "event_type": "view",
         "outcome": "accepted", "reason_code": "", "same_time": 1},
    ]
    assert out["counts"] == [{"received": 2, "accepted": 2}]
