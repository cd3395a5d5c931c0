"""ClickHouse schema: every table the pipeline writes, with column types known up front.

Exactness (SPEC §4): every stored row has a deterministic identity (its ORDER BY
key). Stored tables are ReplacingMergeTree, so a row written twice — a retried
insert, a replay after a crash, ``gmv run`` on the same file again — collapses
to one; the user-facing names are views with ``FINAL`` over them, so a plain
``SELECT sum(...)`` is exact without the user writing FINAL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TS = "DateTime64(3, 'UTC')"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str


@dataclass(frozen=True)
class StoredTable:
    """A table the sink inserts into, plus the FINAL view analysts query."""

    name: str  # the view name analysts use; the stored table is ``<name>_store``
    comment: str
    columns: tuple[Column, ...]
    order_by: str
    version: str = ""  # ReplacingMergeTree version column ("" = any copy wins; copies are identical)
    partition_by: str = ""
    view_filter: str = ""

    @property
    def store(self) -> str:
        return f"{self.name}_store"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def column_types(self) -> list[str]:
        return [c.type for c in self.columns]

    def ddl(self, db: str) -> list[str]:
        cols = ",\n  ".join(f"`{c.name}` {c.type} COMMENT {_lit(c.comment)}" for c in self.columns)
        part = f"\nPARTITION BY {self.partition_by}" if self.partition_by else ""
        store = (
            f"CREATE TABLE IF NOT EXISTS `{db}`.`{self.store}` (\n  {cols}\n)"
            f"\nENGINE = ReplacingMergeTree({self.version}){part}\nORDER BY {self.order_by}"
            # Lets a retried insert with the same dedup token be dropped by the server.
            "\nSETTINGS non_replicated_deduplication_window = 1000"
            f"\nCOMMENT {_lit(self.comment + ' Stored rows; may hold not-yet-merged copies: query the view ' + self.name + '.')}"
        )
        view_cols = ",\n  ".join(f"`{c.name}` {c.type} COMMENT {_lit(c.comment)}" for c in self.columns)
        where = f" WHERE {self.view_filter}" if self.view_filter else ""
        view = (
            f"CREATE VIEW IF NOT EXISTS `{db}`.`{self.name}` (\n  {view_cols}\n)"
            f" AS SELECT {', '.join('`' + n + '`' for n in self.column_names)} FROM `{db}`.`{self.store}` FINAL{where}"
            f"\nCOMMENT {_lit(self.comment + ' Exact: each row once, however often it was written.')}"
        )
        return [store, view]


def _lit(text: str) -> str:
    """A ClickHouse string literal for DDL comments (DDL takes no bind parameters)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


EVENTS = StoredTable(
    name="events",
    comment="Every accepted (valid, first-seen) event, for audit and replay.",
    columns=(
        Column("event_id", "String", "producer's unique event id"),
        Column("event_type", "LowCardinality(String)", "view | live_room | order"),
        Column("event_time", TS, "event time (UTC)"),
        Column("user_id", "String", "user the event belongs to ('' for live start/end)"),
        Column("partition_key", "String", "key the pipeline partitions by (user_id, or live_id for start/end)"),
        Column("src", "String", "source message identity (file:<sha>:<line> or topic:partition:offset, #index in a batch)"),
        Column("source_topic", "LowCardinality(String)", "Kafka topic it arrived on"),
        Column("source_partition", "Int32", "Kafka partition it arrived on"),
        Column("source_offset", "Int64", "Kafka offset it arrived at"),
        Column("payload", "String", "the validated event as canonical JSON (times in UTC)"),
        Column("ingested_at", TS, "when the pipeline accepted it (processing time, UTC)"),
    ),
    order_by="(event_type, event_id)",
    partition_by="toYYYYMM(event_time)",
)

INGEST_LOG = StoredTable(
    name="ingest_log",
    comment="One row per received event (or undecodable message) with its outcome; counters come from here.",
    columns=(
        Column("src", "String", "source message identity (see events.src)"),
        Column("source_topic", "LowCardinality(String)", "Kafka topic"),
        Column("source_partition", "Int32", "Kafka partition"),
        Column("source_offset", "Int64", "Kafka offset"),
        Column("element_index", "Int32", "index in a producer batch (JSON array), -1 for a single-event message"),
        Column("event_id", "String", "event id if one could be read, else ''"),
        Column("event_type", "LowCardinality(String)", "event type if one could be read, else ''"),
        Column("outcome", "LowCardinality(String)", "accepted | duplicate | dead_letter"),
        Column("reason_code", "LowCardinality(String)", "why it was dead-lettered ('' otherwise)"),
        Column("logged_at", TS, "processing time of the outcome (UTC); the latest outcome wins"),
    ),
    order_by="src",
    version="logged_at",
)

DEAD_LETTERS = StoredTable(
    name="dead_letters",
    comment="Rejected input with the raw payload, where it came from and a reason a person can act on (also on the DLQ topic).",
    columns=(
        Column("src", "String", "source message identity (see events.src)"),
        Column("source_topic", "LowCardinality(String)", "Kafka topic the bad input arrived on"),
        Column("source_partition", "Int32", "Kafka partition"),
        Column("source_offset", "Int64", "Kafka offset"),
        Column("element_index", "Int32", "index in a producer batch, -1 for a single-event message"),
        Column("event_id", "String", "event id if one could be read, else ''"),
        Column("event_type", "LowCardinality(String)", "event type if one could be read, else ''"),
        Column("reason_code", "LowCardinality(String)", "machine-readable reason (invalid_json, invalid_event, wrong_topic, ...)"),
        Column("reason", "String", "what is wrong and what to do about it"),
        Column("raw", "String", "the payload as received (first 64 KiB of an oversized one)"),
        Column("received_at", TS, "when it was rejected (processing time, UTC)"),
    ),
    order_by="src",
    version="received_at",
)

STORED_TABLES: tuple[StoredTable, ...] = (EVENTS, INGEST_LOG, DEAD_LETTERS)
TABLES_BY_NAME = {t.name: t for t in STORED_TABLES}


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: list[str] = field(default_factory=list)


def migrations(db: str) -> list[Migration]:
    """Idempotent, ordered migrations (every statement IF NOT EXISTS)."""
    base: list[str] = []
    for table in STORED_TABLES:
        base.extend(table.ddl(db))
    base.append(
        f"CREATE VIEW IF NOT EXISTS `{db}`.`ingest_counts` (\n"
        "  `source_topic` LowCardinality(String) COMMENT 'Kafka topic',\n"
        "  `received` UInt64 COMMENT 'events received (a producer batch counts each element)',\n"
        "  `accepted` UInt64 COMMENT 'valid, first-seen events',\n"
        "  `duplicates` UInt64 COMMENT 're-sent event_ids (counted once)',\n"
        "  `dead_lettered` UInt64 COMMENT 'rejected input (see dead_letters)'\n"
        ") AS SELECT source_topic, count() AS received, countIf(outcome = 'accepted') AS accepted,"
        " countIf(outcome = 'duplicate') AS duplicates, countIf(outcome = 'dead_letter') AS dead_lettered"
        f" FROM `{db}`.`ingest_log` GROUP BY source_topic"
        "\nCOMMENT 'Per-topic ingest counters: received = accepted + duplicates + dead_lettered.'"
    )
    return [Migration(1, "ingest: events, ingest_log, dead_letters, ingest_counts", base)]
