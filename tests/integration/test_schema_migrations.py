"""Frozen migrations on the real engine: an install made by migrations 1-2 (their files, as they
shipped) upgrades in place; the latest schema is exactly the tables the sink writes; ClickHouse
logs accepted events into ingest_log from the events rows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

# Runs in its own process: the embedded engine opens a data path from one process only.
UPGRADE = r'''
import json
from datetime import UTC, datetime
from gmv.sinks.clickhouse import ClickHouseSink, connect
from gmv.sinks.migrations import LATEST, migrate
from gmv.sinks.schema import STORED_TABLES, INGEST_LOG, Column, StoredTable, EVENTS
from gmv.streams.settings import Settings

s = Settings()
db = s.clickhouse_database
client = connect(s.resolved_clickhouse_dsn, s.clickhouse_password)
assert migrate(client, db, upto=2) == 2  # the install as migrations 1 and 2 left it
q = lambda sql: [dict(zip(r.column_names, row)) for r in [client.query(sql)] for row in r.result_rows]
old_columns = [r["name"] for r in q(f"SELECT name FROM system.columns WHERE database = '{db}' "
                                     "AND table = 'events_store' ORDER BY position")]
now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# an old worker's rows: events without element_index, its accepted log row written by the worker
old_events = StoredTable("events", "", tuple(c for c in EVENTS.columns if c.name != "element_index"), "")
old_sink = ClickHouseSink(lambda: client, db, tables=[old_events, INGEST_LOG])
old_sink.add("events", [("old-1", "view", now, "u1", "u1", "t:0:1", "t", 0, 1, "{}", now)])
old_sink.add("ingest_log", [("t:0:1", "t", 0, 1, -1, "old-1", "view", "accepted", "", now)])
old_sink.flush_sync()

version = migrate(client, db)
sink = ClickHouseSink(lambda: client, db)
sink.add("events", [("new-1", "view", now, "u2", "u2", "t:0:2#7", "t", 0, 2, 7, "{}", now)])
sink.flush_sync()
schema = {t.store: [(c.name, c.type) for c in t.columns] for t in STORED_TABLES}
built = {t: [(r["name"], r["type"]) for r in q(f"SELECT name, type FROM system.columns WHERE database = '{db}' "
                                                f"AND table = '{t}' ORDER BY position")] for t in schema}
uncommented = q(f"SELECT table, name FROM system.columns WHERE database = '{db}' AND comment = '' AND table NOT IN "
                f"(SELECT name FROM system.tables WHERE database = '{db}' AND engine = 'MaterializedView')")
print(json.dumps({
    "version": version, "latest": LATEST, "old_columns": old_columns, "schema": schema, "built": built,
    "uncommented": uncommented,
    "events": q(f"SELECT event_id, element_index FROM `{db}`.events ORDER BY event_id"),
    "log": q(f"SELECT src, source_offset, element_index, event_id, event_type, outcome, reason_code, "
             f"logged_at = toDateTime64('2026-11-20 12:00:00', 3, 'UTC') AS same_time "
             f"FROM `{db}`.ingest_log ORDER BY src"),
    "counts": q(f"SELECT received, accepted FROM `{db}`.ingest_counts"),
}, default=str))
'''


def test_an_install_from_the_old_migrations_upgrades_to_exactly_the_sinks_tables(gmv_env):
    proc = subprocess.run([sys.executable, "-c", UPGRADE], env=gmv_env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["version"] == out["latest"] >= 3
    assert "element_index" not in out["old_columns"] and "payload" in out["old_columns"]  # really the old schema
    # the upgraded tables are exactly what the sink inserts: same columns, same order, same types
    assert out["built"] == {t: [list(c) for c in cols] for t, cols in out["schema"].items()}
    assert out["uncommented"] == []  # every column of every table and view carries a COMMENT
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
