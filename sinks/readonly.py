"""Read-only SQL for people: ``gmv sql``, the dashboard, the SQL a worker serves its users.

Every request is one read statement (``sql_policy``: anything else is refused before it is
sent) run on a read-only session (``readonly=1``: ClickHouse itself refuses writes, DDL and any
change of a setting), under the operator's limits (``query_limits``: time, memory, result rows
and bytes), with its values as parameters. A session whose request failed is closed, never
handed to the next request: what a refused statement left behind must not reach the next one.
Errors come back as one line a person can act on, without the ``FORMAT`` clause the client
appends or the parser's list of forty expected tokens; a tripped limit says which, its value,
the setting behind it and what to do.
"""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import SecretStr

from gmv.schemas.errors import GmvError
from gmv.sinks.clickhouse import connect
from gmv.sinks.query_limits import QueryLimits
from gmv.sinks.sql_policy import SqlRefused, read_statement

__all__ = ["SQL_FORMATS", "Readers", "ReadonlyClients", "SqlBusy", "SqlFailed", "SqlRefused", "connect_readonly",
           "run_readonly_sql", "sql_error_text"]

# The engine's formats by the names the commands take; ``json`` (one document) is made from ``jsonl``
# by gmv.sinks.sql_formats, for gmv sql and the web SQL endpoint alike.
SQL_FORMATS = {"tsv": "TabSeparated", "tsvh": "TabSeparatedWithNames", "jsonl": "JSONEachRow",
               "pretty": "PrettyCompactMonoBlock", "csv": "CSVWithNames"}


class SqlFailed(GmvError):
    """ClickHouse refused the query; the message is one line a person can act on."""


class SqlBusy(GmvError):
    """As many reads as the operator allows run already, and none ended within the wait."""

    retriable = True


def sql_error_text(e: BaseException) -> str:
    """ClickHouse's error as one line: its own words, without the appended FORMAT clause, the
    parser's list of expected tokens or the server version."""
    text = str(e)
    found = re.search(r"Code: (\d+)\. DB::Exception: (.*)", text, re.S)
    body = found.group(2) if found else text
    body = body.split("Expected one of:")[0].rstrip(" .\n")
    # a statement cut short fails at the FORMAT clause the client appended after it (and after the tag)
    body = re.sub(r"failed at position \d+ \(FORMAT\)(?: \(line \d+, col \d+\))?:?\.?",
                  "failed at the end of the query:", body)
    body = re.sub(r"\s*FORMAT (?:" + "|".join(SQL_FORMATS.values()) + r")\b", "", body)
    body = re.sub(r"\s*\(version [^)]*\)\s*$", "", body)
    body = " ".join(body.split())
    if "READONLY" in text or "readonly mode" in text:
        return "gmv sql is read-only: it runs SELECT, SHOW, DESCRIBE and EXPLAIN only (ClickHouse: " + body + ")"
    if "SYNTAX_ERROR" in text or "Syntax error" in body:
        return f"{body}; check the SQL at that position"
    return body


def query_marker(tag: str) -> str:
    """The comment a tagged read carries, found in ``system.processes`` to cancel it."""
    return f"gmv-sql:{tag}"


def run_readonly_sql(client: Client, query: str, fmt: str = "tsv", parameters: dict | None = None,
                     limits: QueryLimits | None = None, tag: str | None = None) -> bytes:
    """Run one read statement (``sql_policy.read_statement``) with the server-side ``readonly``
    setting. Values go in ``parameters`` (``{name:Type}`` placeholders), never into the SQL text;
    ``tag`` marks the query so that ``cancel`` finds it. Raises ``SqlRefused`` (not sent) or
    ``SqlFailed`` (ClickHouse said no; a tripped limit is said as ``limits`` explains it)."""
    ch_format = SQL_FORMATS.get(fmt)
    if ch_format is None:
        raise SqlRefused(f"unknown format {fmt!r}; use one of {', '.join(SQL_FORMATS)}")
    statement = read_statement(query)
    if tag:  # at the end, on a line of its own: error positions stay the user's, a trailing -- comment ends
        statement = f"{statement}\n/* {query_marker(tag)} */"
    # A client opened read-only (``connect_readonly``) already has it for every query; setting it per
    # query costs chdb a settings snapshot, a SET and a restore: ~13 ms against ~2 ms for the query.
    settings = None if client.get_client_setting("readonly") == "1" else {"readonly": 1}
    try:
        return client.raw_query(statement, parameters=parameters or None, fmt=ch_format, settings=settings)
    except ClickHouseError as e:
        explained = limits.explain(str(e)) if limits is not None else None
        raise SqlFailed(explained or sql_error_text(e)) from e


def connect_readonly(dsn: str, password: SecretStr | None = None, compression: str = "lz4",
                     limits: QueryLimits | None = None) -> Client:
    """A client whose session is read-only (ClickHouse refuses its writes and DDL, and any change of
    a setting) under ``limits``: they are set first, then ``readonly`` freezes them. Over HTTP the
    socket waits the time limit and a little more, so the server's own time-out speaks first."""
    settings: dict[str, object] = dict(limits.clickhouse_settings()) if limits is not None else {}
    settings["readonly"] = 1
    if dsn.startswith("chdb://"):
        return connect(dsn, password, compression, settings=settings)
    extra = {"send_receive_timeout": int(limits.max_execution_s) + 10} if limits is not None else {}
    client = connect(dsn, password, compression, **extra)
    for name, value in settings.items():
        known = client.server_settings.get(name)
        if known is not None and known.readonly:
            continue  # a read-only user's profile holds it: the server's operator set it (docs/production.md)
        client.set_client_setting(name, value)
    return client


def cancel_tagged(admin: Client, tag: str) -> int:
    """Cancel the queries that carry ``tag`` (``KILL QUERY ... ASYNC``), through ``admin``, a session
    allowed to (a read-only one is refused KILL before it is sent). Returns how many were found."""
    found = admin.raw_query("SELECT query_id FROM system.processes WHERE position(query, {marker:String}) > 0 "
                            "AND query_id != queryID()", parameters={"marker": query_marker(tag)},
                            fmt="TabSeparated").decode().split()
    for query_id in found:
        admin.raw_query("KILL QUERY WHERE query_id = {query_id:String} ASYNC", parameters={"query_id": query_id},
                        fmt="TabSeparated")
    return len(found)


class ReadonlyClients:
    """Read-only SQL for concurrent readers under one set of ``limits``: each query takes an idle
    read-only client, opening one while fewer than ``size`` exist. With ``queue_wait_s`` a query
    that finds all ``size`` busy waits that long, then gets ``SqlBusy`` (people's queries); without,
    it waits its turn (the dashboard's, bounded by their own time limit). The dashboard runs two
    statements at a time (on these 2 cores one refresh took ~60 ms that way against ~110 ms on one
    client). Never the session the sink writes through: a read-only session cannot be made writable
    again. A client whose query failed is closed, not reused: what a failed request left in its
    session must not reach the next one. ``cancel`` ends a tagged query from another thread,
    through a session of its own that may KILL (opened at the first cancel)."""

    def __init__(self, dsn: str, password: SecretStr | None = None, size: int = 2,
                 compression: str = "lz4", limits: QueryLimits | None = None,
                 queue_wait_s: float | None = None, busy_hint: str = "") -> None:
        self.dsn, self.password, self.size, self.compression = dsn, password, size, compression
        self.limits, self.queue_wait_s, self.busy_hint = limits, queue_wait_s, busy_hint
        self._idle: list[Client] = []
        self._opened: list[Client] = []
        self._cond = threading.Condition()
        self._admin: Client | None = None
        self._admin_lock = threading.Lock()

    def _take(self) -> Client:
        with self._cond:
            if not self._cond.wait_for(lambda: self._idle or len(self._opened) < self.size, self.queue_wait_s):
                raise SqlBusy(f"busy: {self.size} queries run already and none ended within "
                              f"{self.queue_wait_s:g} s{self.busy_hint}; retry in a moment")
            if self._idle:
                return self._idle.pop()
            client = connect_readonly(self.dsn, self.password, self.compression, self.limits)
            self._opened.append(client)
            return client

    def run(self, query: str, fmt: str = "tsv", parameters: dict | None = None, tag: str | None = None) -> bytes:
        statement = read_statement(query)  # refused before a session is taken
        client = self._take()
        healthy = False
        try:
            out = run_readonly_sql(client, statement, fmt, parameters, self.limits, tag)
            healthy = True
            return out
        finally:
            with self._cond:
                if healthy:
                    self._idle.append(client)
                else:
                    self._opened.remove(client)
                    with contextlib.suppress(Exception):
                        client.close()
                self._cond.notify()

    def cancel(self, tag: str) -> int:
        """Cancel the running query tagged ``tag``; how many were found (0: it had ended)."""
        with self._admin_lock:
            if self._admin is None:
                self._admin = connect(self.dsn, self.password, self.compression)
            return cancel_tagged(self._admin, tag)

    def close(self) -> None:
        with self._cond:
            for client in self._opened:
                with contextlib.suppress(Exception):
                    client.close()
            self._opened, self._idle = [], []
        with self._admin_lock:
            if self._admin is not None:
                with contextlib.suppress(Exception):
                    self._admin.close()
                self._admin = None


@dataclass(frozen=True, slots=True)
class Readers:
    """A process's two pools of read-only sessions: ``adhoc`` for people (``gmv sql`` forwarded,
    the web SQL endpoint; at most ``GMV_SQL_MAX_CONCURRENT`` at once, the rest told it is busy)
    and ``dashboard`` for the live page and the product's own figures (two sessions, waiting their
    turn under the dashboard's limits). Analysts at their limits cannot hold the page's sessions."""

    adhoc: ReadonlyClients
    dashboard: ReadonlyClients

    def close(self) -> None:
        self.adhoc.close()
        self.dashboard.close()
