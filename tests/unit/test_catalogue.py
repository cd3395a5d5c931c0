"""The catalogue states each table once; what is derived from it cannot drift from it: row types,
the columns every INSERT…SELECT names (each with its expression, by name), the DDL of a new table."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from gmv.schemas.catalogue import BY_NAME, FACTS, TABLES, TRUST_DAILY, Column, Table
from gmv.sinks.levels import level_statements
from gmv.sinks.rollups import refresh_statements
from gmv.sinks.scores import DAILY
from gmv.streams.core.rows import ROW_TYPES

MINUTE = datetime(2026, 11, 29, 16, 5, tzinfo=UTC)


def _insert_select_statements() -> list[str]:
    return [sql for sql, _ in refresh_statements("gmv", {MINUTE}, {MINUTE})] + \
        [sql for sql, _ in level_statements("gmv", {MINUTE}, {MINUTE})] + [DAILY]


def test_every_insert_select_names_each_column_of_its_table_in_the_catalogues_order():
    statements = _insert_select_statements()
    assert len(statements) >= 20
    stores = {t.store: t for t in TABLES}
    for sql in statements:
        found = re.match(r"\s*INSERT INTO \S+?\.`?(\w+)`? \(([^)]*)\) SELECT ", sql)
        assert found, sql[:120]
        table = stores[found.group(1)]
        assert [c.strip(" `") for c in found.group(2).split(",")] == table.column_names, table.name
        for column in table.column_names:  # each column gets its expression by name
            assert f"AS `{column}`" in sql, (table.name, column)


def test_an_insert_select_missing_or_inventing_a_column_is_refused():
    with pytest.raises(ValueError, match="missing"):
        TRUST_DAILY.insert_select("db", {"day": "d"}, "FROM x")
    exprs = {c: c for c in TRUST_DAILY.column_names}
    with pytest.raises(ValueError, match="unknown"):
        TRUST_DAILY.insert_select("db", {**exprs, "nosuch": "1"}, "FROM x")


def test_each_row_type_is_its_tables_columns_in_order():
    facts = {t.name: t for t in FACTS}
    # every fact table but funnel_events, whose rows ClickHouse derives from the events rows (migration 9)
    assert {r.TABLE for r in ROW_TYPES} == set(facts) - {"funnel_events"}
    for row in ROW_TYPES:
        assert list(row._fields) == facts[row.TABLE].column_names, row.__name__


def test_every_table_and_column_is_described_and_names_are_unique():
    assert len(BY_NAME) == len(TABLES) + len({n for n in BY_NAME} - {t.name for t in TABLES})
    for t in BY_NAME.values():
        assert t.comment and "SPEC" not in t.comment, t.name
        names = [c.name for c in t.columns]
        assert len(names) == len(set(names)), t.name
        assert all(c.comment and "SPEC" not in c.comment for c in t.columns), t.name


def test_a_new_tables_ddl_is_derived_from_the_catalogue():
    t = Table("demo_rollup", "A demo.", (Column("day", "Date", "the day"), Column("n", "UInt64", "it's a count")),
              "(day)", "n", "toYYYYMM(day)")
    store, view = t.create_statements("analytics")
    assert store.startswith("CREATE TABLE IF NOT EXISTS `analytics`.`demo_rollup_store` (\n  `day` Date COMMENT 'the day'")
    assert "`n` UInt64 COMMENT 'it\\'s a count'" in store
    assert "ENGINE = ReplacingMergeTree(n)\nPARTITION BY toYYYYMM(day)\nORDER BY (day)" in store
    assert "query the view demo_rollup." in store
    assert view.startswith("CREATE VIEW IF NOT EXISTS `analytics`.`demo_rollup` (")
    assert "AS SELECT `day`, `n` FROM `analytics`.`demo_rollup_store` FINAL" in view
