"""Read-only SQL for people: ``gmv sql``, the dashboard, the SQL a worker serves its users.

Every request is one statement run on a read-only session (``readonly=1``: ClickHouse itself
refuses writes and DDL), with its values as parameters. A request with several statements is
refused before it reaches ClickHouse: the embedded engine runs them all and keeps what a
refused one left behind for the next request on the same session (``SELECT 7; INSERT ...`` was
refused, and the next ``SELECT 8`` printed 7 and 8). A session whose request failed is closed,
never handed to the next request. Errors come back as one line a person can act on, without the
``FORMAT`` clause the client appends or the parser's list of forty expected tokens.
"""

from __future__ import annotations

import contextlib
import re
import threading

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import SecretStr

from gmv.schemas.errors import GmvError
from gmv.sinks.clickhouse import connect

SQL_FORMATS = {"tsv": "TabSeparated", "tsvh": "TabSeparatedWithNames", "json": "JSONEachRow",
               "pretty": "PrettyCompactMonoBlock", "csv": "CSVWithNames"}


class SqlRefused(GmvError):
    """A request ``gmv sql`` does not send: an unknown format, several statements, a write."""


class SqlFailed(GmvError):
    """ClickHouse refused the query; the message is one line a person can act on."""


# A statement's text with its quoted parts and comments, so that a ';' inside them is not a separator.
_LEXEME = re.compile(r"""'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`|--[^\n]*"""
                     r"""|/\*.*?\*/|;|[^'"`;/-]+|.""", re.S)


def one_statement(query: str) -> str:
    """The query without trailing semicolons; ``SqlRefused`` if it holds more than one statement."""
    statements, current = [], []
    for token in _LEXEME.findall(query):
        if token == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(token)
    statements.append("".join(current))
    real = [s for s in statements if _code(s).strip()]
    if len(real) > 1:
        raise SqlRefused(f"one statement per request, please: this one has {len(real)}; "
                         "send each separately (gmv sql runs one SELECT, SHOW, DESCRIBE or EXPLAIN at a time)")
    if not real:
        raise SqlRefused("the query is empty")
    return real[0].strip()


def _code(text: str) -> str:
    """The text without comments."""
    return "".join(t for t in _LEXEME.findall(text) if not t.startswith(("--", "/*")))


def sql_error_text(e: BaseException) -> str:
    """ClickHouse's error as one line: its own words, without the appended FORMAT clause, the
    parser's list of expected tokens or the server version."""
    text = str(e)
    found = re.search(r"Code: (\d+)\. DB::Exception: (.*)", text, re.S)
    body = found.group(2) if found else text
    body = body.split("Expected one of:")[0].rstrip(" .\n")
    body = re.sub(r"\s*FORMAT (?:" + "|".join(SQL_FORMATS.values()) + r")\b", "", body)
    body = re.sub(r"\s*\(version [^)]*\)\s*$", "", body)
    body = " ".join(body.split())
    if "READONLY" in text or "readonly mode" in text:
        return "gmv sql is read-only: it runs SELECT, SHOW, DESCRIBE and EXPLAIN only (ClickHouse: " + body + ")"
    if "SYNTAX_ERROR" in text or "Syntax error" in body:
        return f"{body}; check the SQL at that position"
    return body


def run_readonly_sql(client: Client, query: str, fmt: str = "tsv", parameters: dict | None = None) -> bytes:
    """Run one statement with the server-side ``readonly`` setting: writes and DDL are refused by
    ClickHouse. Values go in ``parameters`` (``{name:Type}`` placeholders), never into the SQL text.
    Raises ``SqlRefused`` (not sent) or ``SqlFailed`` (ClickHouse said no)."""
    ch_format = SQL_FORMATS.get(fmt)
    if ch_format is None:
        raise SqlRefused(f"unknown format {fmt!r}; use one of {', '.join(SQL_FORMATS)}")
    statement = one_statement(query)
    # A client opened read-only (``connect_readonly``) already has it for every query; setting it per
    # query costs chdb a settings snapshot, a SET and a restore: ~13 ms against ~2 ms for the query.
    settings = None if client.get_client_setting("readonly") == "1" else {"readonly": 1}
    try:
        return client.raw_query(statement, parameters=parameters or None, fmt=ch_format, settings=settings)
    except ClickHouseError as e:
        raise SqlFailed(sql_error_text(e)) from e


def connect_readonly(dsn: str, password: SecretStr | None = None, compression: str = "lz4") -> Client:
    """A client whose session is read-only: ClickHouse refuses its writes and DDL."""
    return connect(dsn, password, compression, settings={"readonly": 1})


class ReadonlyClients:
    """Read-only SQL for concurrent readers: each query takes an idle read-only client, opening one
    while fewer than ``size`` exist. The dashboard runs two statements at a time (on these 2 cores one
    refresh took ~60 ms that way against ~110 ms on one client). Never the session the sink writes
    through: a read-only session cannot be made writable again. A client whose query failed is
    closed, not reused: what a failed request left in its session must not reach the next one."""

    def __init__(self, dsn: str, password: SecretStr | None = None, size: int = 2,
                 compression: str = "lz4") -> None:
        self.dsn, self.password, self.size, self.compression = dsn, password, size, compression
        self._idle: list[Client] = []
        self._opened: list[Client] = []
        self._cond = threading.Condition()

    def _take(self) -> Client:
        with self._cond:
            while not self._idle and len(self._opened) >= self.size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            client = connect_readonly(self.dsn, self.password, self.compression)
            self._opened.append(client)
            return client

    def run(self, query: str, fmt: str = "tsv", parameters: dict | None = None) -> bytes:
        statement = one_statement(query)  # refused before a session is taken
        client = self._take()
        healthy = False
        try:
            out = run_readonly_sql(client, statement, fmt, parameters)
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

    def close(self) -> None:
        with self._cond:
            for client in self._opened:
                with contextlib.suppress(Exception):
                    client.close()
            self._opened, self._idle = [], []
