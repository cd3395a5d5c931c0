"""Frozen migrations on the real engine: an install made by migrations 1-2 (their files, as they
shipped) upgrades in place; the latest schema is exactly the catalogue, every table and view, column
by column with its type and comment, and every stored table's key, partition, version and settings;
ClickHouse logs accepted events into ingest_log from the events rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from gmv.schemas.catalogue import EVENTS, INGEST_LOG, TABLES, VIEWS, Table
from gmv.schemas.catalogue.base import STORE_NOTE, VIEW_NOTE
from gmv.sinks.clickhouse import ClickHouseSink, connect
from gmv.sinks.migrations import LATEST, migrate

pytestmark = pytest.mark.integration


def _upgrade(env: dict[str, str]) -> dict:
    """Migrations 1-2 as they shipped, an old worker's rows, the upgrade, a new worker's row; then
    what the engine built and what the catalogue wants (through JSON, as a report would read)."""
    db = env["GMV_CLICKHOUSE_DATABASE"]
    password = env.get("GMV_CLICKHOUSE_PASSWORD")
    client = connect(env["GMV_CLICKHOUSE_DSN"], SecretStr(password) if password else None)
    assert migrate(client, db, upto=2) == 2  # the install as migrations 1 and 2 left it

    def q(sql: str) -> list[dict]:
        result = client.query(sql)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    old_columns = [r["name"] for r in q(f"SELECT name FROM system.columns WHERE database = '{db}' "
                                         "AND table = 'events_store' ORDER BY position")]
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    # an old worker's rows: events without element_index (migration 3) and engaged (migration 9), its
    # accepted log row written by the worker
    old_events = Table("events", "", tuple(c for c in EVENTS.columns if c.name not in ("element_index", "engaged")), "")
    old_sink = ClickHouseSink(lambda: client, db, tables=[old_events, INGEST_LOG])
    old_sink.add("events", [("old-1", "view", now, "u1", "u1", "t:0:1", "t", 0, 1, "{}", now)])
    old_sink.add("ingest_log", [("t:0:1", "t", 0, 1, -1, "old-1", "view", "accepted", "", now)])
    old_sink.flush_sync()

    version = migrate(client, db)
    sink = ClickHouseSink(lambda: client, db)
    sink.add("events", [("new-1", "view", now, "u2", "u2", "t:0:2#7", "t", 0, 2, 7, "{}", now, 1)])
    sink.flush_sync()
    want = {}
    for t in TABLES:
        cols = [[c.name, c.type, c.comment] for c in t.columns]
        want[t.store] = {"comment": f"{t.comment} {STORE_NOTE.format(name=t.name)}", "columns": cols,
                         "key": [t.order_by.strip("()"), t.partition_by, t.version, t.settings]}
        want[t.name] = {"comment": f"{t.comment} {VIEW_NOTE}", "columns": cols}
    for v in VIEWS:
        want[v.name] = {"comment": v.comment, "columns": [[c.name, c.type, c.comment] for c in v.columns]}
    built = {}
    for r in q(f"SELECT name, comment, sorting_key, partition_key, engine, engine_full FROM system.tables "
               f"WHERE database = '{db}' AND name != 'schema_migrations' AND engine != 'MaterializedView'"):
        cols = [[c["name"], c["type"], c["comment"]] for c in q(f"SELECT name, type, comment FROM system.columns "
                                                                f"WHERE database = '{db}' AND table = '{r['name']}' ORDER BY position")]
        built[r["name"]] = {"comment": r["comment"], "columns": cols}
        if r["engine"] == "ReplacingMergeTree":
            full = r["engine_full"]
            ver = full.split("ReplacingMergeTree(")[1].split(")")[0] if "ReplacingMergeTree(" in full else ""
            settings = full.split("SETTINGS ")[1] if "SETTINGS " in full else ""
            settings = ", ".join(x for x in settings.split(", ") if x != "index_granularity = 8192")
            built[r["name"]]["key"] = [r["sorting_key"], r["partition_key"], ver, settings]
    uncommented = q(f"SELECT table, name FROM system.columns WHERE database = '{db}' AND comment = '' AND table NOT IN "
                    f"(SELECT name FROM system.tables WHERE database = '{db}' AND engine = 'MaterializedView')")
    report = json.loads(json.dumps({
        "version": version, "latest": LATEST, "old_columns": old_columns, "want": want, "built": built,
        "uncommented": uncommented,
        "events": q(f"SELECT event_id, element_index, engaged FROM `{db}`.events ORDER BY event_id"),
        "funnel": q(f"SELECT event_id, engaged FROM `{db}`.funnel_events ORDER BY event_id"),
        "log": q(f"SELECT src, source_offset, element_index, event_id, event_type, outcome, reason_code, "
                 f"logged_at = toDateTime64('2026-11-20 12:00:00', 3, 'UTC') AS same_time "
                 f"FROM `{db}`.ingest_log ORDER BY src"),
        "counts": q(f"SELECT received, accepted FROM `{db}`.ingest_counts"),
    }, default=str))
    client.close()
    return report


def test_an_install_from_the_old_migrations_upgrades_to_exactly_the_sinks_tables(gmv_env):
    out = _upgrade(gmv_env)
    assert out["version"] == out["latest"] >= 3
    assert "element_index" not in out["old_columns"] and "engaged" not in out["old_columns"]  # really the old schema
    assert "payload" in out["old_columns"]
    # the upgraded schema is exactly the catalogue: every table and view, every column with its type and
    # comment, in order; every stored table's key, partition, version column and settings
    assert set(out["built"]) == set(out["want"])
    for name, want in out["want"].items():
        assert out["built"][name] == want, name
    assert out["uncommented"] == []  # every column of every table and view carries a COMMENT
    # the old row reads element_index -1; the new one keeps its index in the producer batch
    assert out["events"] == [{"event_id": "new-1", "element_index": 7, "engaged": 1},
                             {"event_id": "old-1", "element_index": -1, "engaged": 0}]
    # the new view's funnel row was derived by ClickHouse from its events row; the old one's is not made up
    assert out["funnel"] == [{"event_id": "new-1", "engaged": 1}]
    # the new event's log row was written by ClickHouse (the sink sent none), the same fields as before
    assert out["log"] == [
        {"src": "t:0:1", "source_offset": 1, "element_index": -1, "event_id": "old-1", "event_type": "view",
         "outcome": "accepted", "reason_code": "", "same_time": 1},
        {"src": "t:0:2#7", "source_offset": 2, "element_index": 7, "event_id": "new-1", "event_type": "view",
         "outcome": "accepted", "reason_code": "", "same_time": 1},
    ]
    assert out["counts"] == [{"received": 2, "accepted": 2}]
