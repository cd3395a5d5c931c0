"""Writing ClickHouse directly: the client factory and ``ClickHouseSink``.

Every ClickHouse access in the project goes through clickhouse-connect: the
embedded engine with a ``chdb:///abs/path`` DSN, a server with ``http(s)://``.
The chdb client is synchronous, so async callers go through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
import pydantic_core
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from gmv.schemas.catalogue import FACTS, Table
from gmv.schemas.times import shanghai_day
from gmv.sinks.base import BatchingSink, RollupWork
from gmv.sinks.exceptions import (
    RefreshYielded,
    SinkGaveUp,
    SinkRejected,
    SinkStopped,
    SinkUnavailable,
    classify,
)
from gmv.sinks.owed import Entry, OwedLedger

log = logging.getLogger(__name__)
T = TypeVar("T")


def redact_dsn(dsn: str) -> str:
    """The DSN with any password removed, safe to print."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn


def connect(dsn: str, password: SecretStr | None = None, compression: str = "lz4", **kwargs: Any) -> Client:
    """A clickhouse-connect client for a ``chdb://`` or ``http(s)://`` DSN.

    Over HTTP(S), inserts and results travel compressed (``compression``: lz4, zstd, gzip or
    none) and the password goes in from a SecretStr, never through the DSN text. Raises
    ``SinkUnavailable`` (retriable: the server is down or starting) or ``SinkRejected`` (it
    answered no, e.g. a wrong password), each with one line that names no secret."""
    if dsn.startswith("chdb://"):
        return clickhouse_connect.get_client(dsn=dsn, **kwargs)
    extra: dict[str, Any] = {"password": password.get_secret_value()} if password is not None else {}
    extra["compress"] = False if compression == "none" else compression
    try:
        return clickhouse_connect.get_client(dsn=dsn, **extra, **kwargs)
    except Exception as e:  # connection errors can echo the URL: never the password
        err = classify(e)
        detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        for secret in (password.get_secret_value() if password else "", urlsplit(dsn).password or ""):
            if secret:
                detail = detail.replace(secret, "***")
        if err is not None and not err.retriable:
            raise SinkRejected(f"ClickHouse at {redact_dsn(dsn)} refused the connection: {detail}; "
                               "check the user and GMV_CLICKHOUSE_PASSWORD") from None
        errno = re.search(r"\[Errno -?\d+\] [^'\")]+", detail)
        raise SinkUnavailable(
            f"cannot reach ClickHouse at {redact_dsn(dsn)}: {errno.group(0) if errno else type(e).__name__}; "
            "check GMV_CLICKHOUSE_DSN and that the server is up"
        ) from None


def dedup_token(table: str, rows: Sequence[Sequence[Any]]) -> str:
    """An insert dedup token for one flush: every retry of that flush sends it again.

    A retry carries exactly the rows of its first attempt, so a token minted once per
    flush identifies them; the server drops a retried insert that had in fact landed.
    (Hashing the rows' contents cost more than encoding them.) Exactness across
    processes does not rest on it: rows re-derived after a crash carry new processing
    times anyway and are absorbed by the ReplacingMergeTree behind each FINAL view.
    """
    return f"{table}:{len(rows)}:{uuid.uuid4().hex}"


# Every JSON insert (about a third faster than the defaults: docs/performance.md).
# ``optimize_on_insert`` collapses duplicate keys inside each inserted block; every read goes
# through a FINAL view (and merges collapse them anyway), so that work is wasted. Parsing in one
# thread leaves the other core to the worker's own loop.
INSERT_SETTINGS = {"date_time_input_format": "best_effort", "optimize_on_insert": 0,
                   "input_format_parallel_parsing": 0,
                   # A retried insert that had landed is dropped by its dedup token; the materialized
                   # views' inserts (ingest_log's accepted rows, funnel_events) are then judged by
                   # their own block ids, so a view that failed the first time still gets its rows.
                   "deduplicate_blocks_in_dependent_materialized_views": 1,
                   # events.payload of a producer batch's element arrives as a JSON object: keep its text
                   "input_format_json_read_objects_as_strings": 1}

# Tables whose rows may carry arbitrary bytes (a dead letter's raw payload need not be UTF-8):
# those go through the native binary encoder; every other table is inserted as JSON columns.
BINARY_TABLES = frozenset({"dead_letters"})


def json_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows -> a ``JSONCompactEachRow`` body: one JSON array per row, rows separated by commas
    (ClickHouse reads either commas or newlines between rows). One Rust call for the whole list
    of plain tuples: per-row calls, or typed rows (NamedTuples) handed to pydantic-core as they
    are, cost several times as much. Time columns go as the rows carry them (exact epoch seconds,
    see ``gmv.streams.core.state.row_time``); a datetime goes as ISO-8601 UTC."""
    if not rows:
        return b""
    return pydantic_core.to_json([tuple(r) for r in rows])[1:-1]


class ClickHouseSink(BatchingSink):
    """Writes ClickHouse directly: one insert per table per flush.

    Column names and types are known up front (no schema round trip per batch). A
    failed insert is retried with exponential backoff for up to ``retry_for_s``
    seconds with the same dedup token (a retry of an insert that did land is dropped
    by the server; rows are also keyed for ReplacingMergeTree, so a replay after a
    crash is absorbed too) — but only when the error is retriable
    (``gmv.sinks.exceptions.classify``): a rejected statement or a bug fails at once.
    ``abort`` ends the retries (the process is stopping): the write raises ``SinkStopped``.
    """

    def __init__(self, client_factory: Callable[[], Client], database: str,
                 tables: Sequence[Table] = FACTS, retry_for_s: float = 600.0,
                 on_retry: Callable[[str, int, BaseException, float], None] | None = None,
                 refresh_client_factory: Callable[[], Client] | None = None) -> None:
        super().__init__(tables)
        self._client_factory = client_factory
        self._client: Client | None = None
        # Refreshes on a session of their own (when given one): a slow refresh then never holds the
        # inserts of the batches behind it, and the minute rollups of one batch overlap the next one's
        # insert (the checkpoint runs them in a lane of their own).
        self._refresh_client_factory = refresh_client_factory
        self._refresh_client: Client | None = None
        self.database = database
        self.retry_for_s = retry_for_s
        self.on_retry = on_retry
        self._lock = threading.Lock()  # one write at a time per session: a chdb client is not thread-safe
        self._refresh_lock = self._lock if refresh_client_factory is None else threading.Lock()
        self._stop = threading.Event()
        # Since when each session's statements have failed (None: its last one succeeded); kept per
        # session so a refresh that succeeds does not hide inserts that keep failing.
        self._failing: dict[str, float | None] = {"insert": None, "refresh": None}
        self._yield = threading.Event()  # a stop or a rebalance wants the refresh lane: the slow refresh yields
        self.owed = OwedLedger()
        self.owed_open: list[Entry] = []  # recorded or taken up at start; closed by the next slow refresh

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    @property
    def refresh_client(self) -> Client:
        """The session refreshes run on: its own, or the inserts' when the sink was given one only."""
        if self._refresh_client_factory is None:
            return self.client
        if self._refresh_client is None:
            self._refresh_client = self._refresh_client_factory()
        return self._refresh_client

    @property
    def failing_since(self) -> float | None:
        since = [t for t in self._failing.values() if t is not None]
        return min(since) if since else None

    def abort(self) -> None:
        self._stop.set()

    # The trust-score facts wait for a refresh's full flush (the slow one, or a fast one that writes
    # marks, at most every ``OWED_INTERVAL_S``): three more inserts
    # per flush cost ~0.5 s in a 60k-event bench run (each insert is a part written).
    deferrable = frozenset({"reviews", "refunds", "cs_turns"})
    owes = True

    async def flush(self, everything: bool = True) -> int:
        """Write what is buffered (in a thread; never blocks the event loop). Everything: after any write
        in flight too (a batch's flush took the deferred rows first; a mark must not pass them)."""
        if not self.pending(everything):
            if everything:
                await asyncio.to_thread(self._writes_done)
            return 0
        return await asyncio.to_thread(self._write_all, self._take_buffers(everything))

    def _writes_done(self) -> None:
        with self._lock:
            pass

    def flush_sync(self) -> int:
        return self._write_all(self._take_buffers())

    def _write_all(self, batches: dict[str, list[Sequence[Any]]]) -> int:
        with self._lock:
            n = 0
            for name, rows in batches.items():
                self._insert_with_retry(self.tables[name], rows)
                n += len(rows)
                self.rows_by_table[name] += len(rows)
            self.rows_written += n
            return n

    def insert_json_sync(self, table_name: str, body: bytes) -> None:
        """Insert a ready ``JSONCompactEachRow`` body (from the rows topic), with retries."""
        with self._lock:
            self._insert_with_retry(self.tables[table_name], [], body)

    def _insert_with_retry(self, table: Table, rows: list[Sequence[Any]], body: bytes | None = None) -> None:
        token = dedup_token(table.store, rows)
        if body is None and table.name not in BINARY_TABLES:
            body = json_rows(rows)

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

    def _with_retry(self, action: Callable[[], T], what: str, target: str, session: str = "insert") -> T:
        deadline = time.monotonic() + self.retry_for_s
        attempt, delay = 0, 0.2
        while True:
            if self._stop.is_set():
                raise SinkStopped(f"ClickHouse {what} abandoned: the process is stopping")
            attempt += 1
            try:
                result = action()
                self._failing[session] = None
                return result
            except Exception as e:
                self.write_failures += 1
                err = classify(e)
                if err is None:
                    raise  # a bug: fail fast, with its own traceback
                if not err.retriable:
                    raise SinkRejected(f"ClickHouse refused the {what}: {e}") from e
                if self._failing[session] is None:
                    self._failing[session] = time.monotonic()
                if time.monotonic() + delay > deadline:
                    raise SinkGaveUp(
                        f"ClickHouse {what} failed {attempt} times over {self.retry_for_s:.0f}s; source offsets "
                        "stay uncommitted, so restarting the worker once ClickHouse is healthy loses nothing. "
                        f"Last error: {e}"
                    ) from e
                if self.on_retry:
                    self.on_retry(target, attempt, e, delay)
                else:
                    log.warning("%s failed (attempt %d): %s; retrying in %.1fs", what, attempt, e, delay)
                if self._stop.wait(delay):
                    raise SinkStopped(f"ClickHouse {what} abandoned after {attempt} failed attempts: the "
                                      "process is stopping") from e
                delay = min(delay * 2, 10.0)

    def yield_slow(self, on: bool) -> None:
        if on:
            self._yield.set()
        else:
            self._yield.clear()

    def _between(self) -> None:
        """Between two statements of a slow refresh: yield the lane if a stop or a rebalance asks."""
        if self._yield.is_set():
            raise RefreshYielded("the slow refresh yielded the lane to a stop or a rebalance")

    async def record_owed(self, work: RollupWork) -> None:
        entry = self.owed.next_entry()

        def record() -> None:
            with self._refresh_lock:
                self._with_retry(lambda: self.owed.record(self.refresh_client, self.database, entry, work),
                                 "owed-work record", "refresh_owed", "refresh")
                self.owed_open.append(entry)
        await asyncio.to_thread(record)

    def take_up_owed(self) -> RollupWork:
        """At start: the slow work every worker left owed, for this process's next slow refresh to do
        (and close)."""
        with self._refresh_lock:
            work, entries = self._with_retry(lambda: self.owed.open_work(self.refresh_client, self.database),
                                             "owed-work query", "refresh_owed", "refresh")
        self.owed_open.extend(entries)
        if entries:
            log.info("taking up %d slow-refresh entries left owed (%d level minutes, %d score days)", len(entries),
                     len(work.level_minutes | work.level_funnel_minutes), len(work.score_days.facts))
        return work

    async def refresh(self, work: RollupWork) -> None:
        """Recompute what ``work`` names from the facts (in a thread; never blocks the event loop)."""
        if work:
            await asyncio.to_thread(self.refresh_sync, work)

    def refresh_sync(self, work: RollupWork) -> None:
        """The minute rollups; then (the slow refresh) the markov model and credits of the levels' days
        and minutes, their markov minute rollups, the levels, and the trust scores."""
        from gmv.sinks.levels import level_statements
        from gmv.sinks.markov import MarkovRefresh
        from gmv.sinks.rollups import markov_statements, refresh_statements
        from gmv.sinks.scores import refresh_scores

        with self._refresh_lock:
            # A slow refresh does what every entry recorded before it owes (their work is in ``work``).
            closing = list(self.owed_open) if (work.level_minutes or work.level_funnel_minutes or work.score_days) \
                else []
            self._run(refresh_statements(self.database, work.gmv_minutes, work.funnel_minutes), "rollups")
            # A stop or a rebalance may take the lane before the markov step or before the scores, never
            # between: a markov model stored is not restated again, and its credits' minutes are known here only.
            markov_minutes: set = set()
            markov: MarkovRefresh | None = None
            if work.level_minutes or work.level_funnel_minutes:
                self._between()
                days = {shanghai_day(m) for m in work.level_minutes | work.level_funnel_minutes}
                markov = MarkovRefresh(self.refresh_client, self.database)
                markov_minutes = self._with_retry(lambda: markov.run(days, work.level_minutes), "markov refresh",
                                                  "markov_model", "refresh")
                self._run(markov_statements(self.database, markov_minutes), "rollups")
            self._run(level_statements(self.database, work.level_minutes, work.level_funnel_minutes, markov_minutes),
                      "rollups")
            if markov is not None:
                self._with_retry(markov.store, "markov model store", "markov_model", "refresh")
            if work.score_days:
                self._between()
                self._with_retry(lambda: refresh_scores(self.refresh_client, self.database, work.score_days),
                                 "trust score refresh", "trust_scores", "refresh")
            if closing:
                self._with_retry(lambda: self.owed.close(self.refresh_client, self.database, closing),
                                 "owed-work close", "refresh_owed", "refresh")
                del self.owed_open[:len(closing)]

    def stale_funnel_minutes(self) -> set[datetime]:
        """The funnel minutes a killed process may have stored and not refreshed (``STALE_FUNNEL_MINUTES``)."""
        from gmv.sinks.rollups import STALE_FUNNEL_MINUTES

        rows = self._with_retry(lambda: self.client.query(STALE_FUNNEL_MINUTES, parameters={"db": self.database}),
                                "stale minutes query", "funnel_minute").result_rows
        return {m.replace(tzinfo=UTC) if m.tzinfo is None else m for (m,) in rows}

    def _run(self, statements: list[tuple[str, dict]], target: str) -> None:
        for sql, params in statements:
            self._with_retry(lambda sql=sql, params=params: self.refresh_client.command(sql, parameters=params),
                             "rollup refresh", target, "refresh")
