"""ClickHouse access: client factory, migrations, and the batching sink.

Every ClickHouse access in the project goes through clickhouse-connect: the
embedded engine with a ``chdb:///abs/path`` DSN, a server with ``http(s)://``.
The chdb client is synchronous, so async callers go through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
import pydantic_core
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from sinks.schema import STORED_TABLES, StoredTable, migrations

log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """ClickHouse could not take a batch within the retry budget."""


def redact_dsn(dsn: str) -> str:
    """The DSN with any password removed, safe to print."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn


def connect(dsn: str, password: SecretStr | None = None, **kwargs: Any) -> Client:
    """A clickhouse-connect client for a ``chdb://`` or ``http(s)://`` DSN."""
    if dsn.startswith("chdb://"):
        return clickhouse_connect.get_client(dsn=dsn, **kwargs)
    extra = {"password": password.get_secret_value()} if password is not None else {}
    try:
        return clickhouse_connect.get_client(dsn=dsn, **extra, **kwargs)
    except Exception as e:  # connection errors can echo the URL: never the password
        raise SinkError(
            f"cannot reach ClickHouse at {redact_dsn(dsn)}: {type(e).__name__}; "
            "check GMV_CLICKHOUSE_DSN and that the server is up"
        ) from None


def migrate(client: Client, db: str) -> int:
    """Apply pending migrations; idempotent. Returns the schema version."""
    client.command(f"CREATE DATABASE IF NOT EXISTS `{db}` COMMENT 'GMV pipeline: attributed GMV, rollups, ingest audit'")
    client.command(
        f"CREATE TABLE IF NOT EXISTS `{db}`.`schema_migrations` ("
        "`version` UInt32 COMMENT 'migration number', "
        "`description` String COMMENT 'what the migration created', "
        f"`applied_at` DateTime64(3, 'UTC') COMMENT 'when it was applied') "
        "ENGINE = ReplacingMergeTree ORDER BY version COMMENT 'Applied schema migrations'"
    )
    done = {row[0] for row in client.query(f"SELECT version FROM `{db}`.`schema_migrations`").result_rows}
    latest = max(done, default=0)
    for m in migrations(db):
        if m.version in done:
            continue
        for stmt in m.statements:
            client.command(stmt)
        client.insert(
            "schema_migrations", [(m.version, m.description, _utcnow())], database=db,
            column_names=["version", "description", "applied_at"],
            column_type_names=["UInt32", "String", "DateTime64(3, 'UTC')"],
        )
        latest = m.version
    return latest


def _utcnow():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def dedup_token(table: str, rows: Sequence[Sequence[Any]]) -> str:
    """An insert dedup token for one flush: every retry of that flush sends it again.

    A retry carries exactly the rows of its first attempt, so a token minted once per
    flush identifies them; the server drops a retried insert that had in fact landed.
    (Hashing the rows' contents cost more than encoding them.) Exactness across
    processes does not rest on it: rows re-derived after a crash carry new processing
    times anyway and are absorbed by the ReplacingMergeTree behind each FINAL view.
    """
    return f"{table}:{len(rows)}:{uuid.uuid4().hex}"


# Every JSON insert. Measured on this 2-core machine (4 inserts of 15k events rows): 0.48 s
# with the defaults, 0.31 s with these. ``optimize_on_insert`` collapses duplicate keys inside
# each inserted block; every read goes through a FINAL view (and merges collapse them anyway),
# so that work is wasted. Parsing in one thread leaves the other core to the worker's own loop.
INSERT_SETTINGS = {"date_time_input_format": "best_effort", "optimize_on_insert": 0,
                   "input_format_parallel_parsing": 0,
                   # events.payload of a producer batch's element arrives as a JSON object: keep its text
                   "input_format_json_read_objects_as_strings": 1}

# Tables whose rows may carry arbitrary bytes (a dead letter's raw payload need not be UTF-8):
# those go through the native binary encoder; every other table is inserted as JSON columns.
BINARY_TABLES = frozenset({"dead_letters"})


def _json_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows -> ``JSONCompactEachRow``, ~1 µs a row (time columns as the rows carry them: exact epoch
    seconds, see ``streams.state.row_time``; a datetime goes as ISO-8601 UTC)."""
    to_json = pydantic_core.to_json
    return b"\n".join([to_json(r) for r in rows])


class ClickHouseSink:
    """A small batching sink: ``add`` buffers rows, ``flush`` writes one insert per table.

    Column names and types are known up front (no schema round trip per batch).
    A failed insert is retried with exponential backoff for up to
    ``retry_for_s`` seconds with the same dedup token, so a retry of an insert
    that did land is dropped by the server; rows are also keyed for
    ReplacingMergeTree, so a replay after a crash is absorbed too.
    """

    def __init__(self, client_factory: Callable[[], Client], database: str,
                 tables: Sequence[StoredTable] = STORED_TABLES, retry_for_s: float = 600.0,
                 on_retry: Callable[[str, int, BaseException, float], None] | None = None) -> None:
        self._client_factory = client_factory
        self._client: Client | None = None
        self.database = database
        self.tables = {t.name: t for t in tables}
        self.retry_for_s = retry_for_s
        self.on_retry = on_retry
        self._buffers: dict[str, list[Sequence[Any]]] = {name: [] for name in self.tables}
        self._lock = threading.Lock()  # one flush at a time: the chdb client is not thread-safe
        self.rows_written = 0
        self.inserts = 0
        self.fault_file: Path | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def add(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        self._buffers[table].extend(rows)

    def pending(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    async def flush(self) -> int:
        """Write everything buffered (in a thread; never blocks the event loop)."""
        if not self.pending():
            return 0
        return await asyncio.to_thread(self._write_all, self._take_buffers())

    def flush_sync(self) -> int:
        return self._write_all(self._take_buffers())

    def _take_buffers(self) -> dict[str, list[Sequence[Any]]]:
        batches = {name: rows for name, rows in self._buffers.items() if rows}
        self._buffers = {name: [] for name in self.tables}
        return batches

    def _write_all(self, batches: dict[str, list[Sequence[Any]]]) -> int:
        with self._lock:
            n = 0
            for name, rows in batches.items():
                self._insert_with_retry(self.tables[name], rows)
                n += len(rows)
            self.rows_written += n
            return n

    def insert_json_sync(self, table_name: str, body: bytes) -> None:
        """Insert a ready ``JSONCompactEachRow`` body (from the rows topic), with retries."""
        with self._lock:
            self._insert_with_retry(self.tables[table_name], [], body)

    def _insert_with_retry(self, table: StoredTable, rows: list[Sequence[Any]], body: bytes | None = None) -> None:
        token = dedup_token(table.store, rows)
        if body is None and table.name not in BINARY_TABLES:
            body = _json_rows(rows)

        def insert() -> None:
            if body is not None:
                # One JSON document per insert, built in Rust; ClickHouse parses it in C++
                # without the GIL, while the worker goes on with the next batch. (The
                # row-by-row native encoder cost more Python time than validating the events.)
                self.client.raw_insert(
                    f"`{self.database}`.`{table.store}`", column_names=table.column_names, insert_block=body,
                    fmt="JSONCompactEachRow",
                    settings={"insert_deduplication_token": token, **INSERT_SETTINGS},
                )
            else:
                self.client.insert(
                    table.store, rows, database=self.database,
                    column_names=table.column_names, column_type_names=table.column_types,
                    settings={"insert_deduplication_token": token},
                )
            self.inserts += 1

        self._with_retry(insert, f"insert of {len(rows)} rows into {self.database}.{table.store}", table.store)

    def _with_retry(self, action: Callable[[], None], what: str, target: str) -> None:
        deadline = time.monotonic() + self.retry_for_s
        attempt, delay = 0, 0.2
        while True:
            attempt += 1
            try:
                if self.fault_file is not None and self.fault_file.exists():
                    # Chaos runs (bench.chaos) make ClickHouse "unavailable" by creating this file.
                    raise ConnectionError(f"ClickHouse unavailable (fault injected via {self.fault_file})")
                action()
                return
            except Exception as e:
                if time.monotonic() + delay > deadline:
                    raise SinkError(
                        f"ClickHouse {what} failed {attempt} times over {self.retry_for_s:.0f}s; source offsets "
                        "stay uncommitted, so restarting the worker once ClickHouse is healthy loses nothing. "
                        f"Last error: {e}"
                    ) from e
                if self.on_retry:
                    self.on_retry(target, attempt, e, delay)
                else:
                    log.warning("%s failed (attempt %d): %s; retrying in %.1fs", what, attempt, e, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def refresh_rollups(self, gmv_minutes: set, funnel_minutes: set) -> None:
        """Recompute the minute rollups of the given minutes from the facts (see ``sinks.rollups``)."""
        if gmv_minutes or funnel_minutes:
            await asyncio.to_thread(self.refresh_rollups_sync, gmv_minutes, funnel_minutes)

    def refresh_rollups_sync(self, gmv_minutes: set, funnel_minutes: set) -> None:
        from sinks.rollups import refresh_statements

        with self._lock:
            for sql, params in refresh_statements(self.database, gmv_minutes, funnel_minutes):
                self._with_retry(lambda sql=sql, params=params: self.client.command(sql, parameters=params),
                                 "minute rollup refresh", "rollups")

    def refresh_coarse_sync(self) -> None:
        """Bring hour/day rollups up to date now (they also refresh every few seconds on their own)."""
        from sinks.rollups import COARSE_VIEWS

        with self._lock:
            for view in COARSE_VIEWS:
                self.client.command(f"SYSTEM REFRESH VIEW `{self.database}`.`{view}`")
            for view in COARSE_VIEWS:
                self.client.command(f"SYSTEM WAIT VIEW `{self.database}`.`{view}`")
