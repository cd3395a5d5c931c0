"""What a person's SQL may be, decided before any engine sees it (pure: no I/O).

``gmv sql``, the web SQL endpoint and every command that reads for a person send one read
statement: ``SELECT`` / ``WITH`` / ``SHOW`` / ``DESCRIBE`` (``DESC``) / ``EXPLAIN`` / ``EXISTS``, or a
parenthesised ``SELECT``. Refused here, with one line saying what is allowed:

- several statements (the embedded engine runs them all and keeps what a refused one left
  behind for the next request on the same session);
- any other verb: ``KILL`` (a read-only session may still cancel any query, the pipeline's
  INSERTs among them), ``SYSTEM``, ``SET``, ``INSERT``, DDL, ...;
- a ``SETTINGS`` clause: the limits are the operator's (``GMV_SQL_*``), never the query's;
- ``INTO OUTFILE``: the embedded engine would write the file in the worker's process;
- functions that reach outside the database (``file`` reads any file the worker can read, even
  on a ``readonly=1`` session; ``url``, ``s3``, ``remote``, ``mysql``, ``executable``, ...).

ClickHouse's own ``readonly=1`` stays the second wall behind this one. The check reads the
statement as tokens: words inside quotes (``'...'``, ``"..."``, `` `...` ``) and comments are data,
so a column named ``settings`` in backticks or ``'kill'`` in a string is fine.
"""

from __future__ import annotations

import re

from gmv.schemas.errors import GmvError


class SqlRefused(GmvError):
    """A request that is not sent: an unknown format, several statements, anything but a read."""


# A statement's text in lexemes: quoted parts and comments whole, so that a ';' or a keyword inside
# them is not one.
_LEXEME = re.compile(r"""'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`|--[^\n]*"""
                     r"""|/\*.*?\*/|;|[^'"`;/-]+|.""", re.S)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

READ_VERBS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
ALLOWED = "one SELECT, WITH, SHOW, DESCRIBE, EXPLAIN or EXISTS statement"

# Functions (table or scalar) that read or write outside the database, lower-cased; ClickHouse's
# names are case-insensitive for most of them, so the check is too.
OUTSIDE_FUNCTIONS = frozenset({
    "file", "filecluster", "url", "urlcluster", "s3", "s3cluster", "gcs", "oss", "cosn",
    "remote", "remotesecure", "cluster", "clusterallreplicas", "mysql", "postgresql", "mongodb",
    "redis", "jdbc", "odbc", "sqlite", "hdfs", "hdfscluster", "executable", "input", "arrowflight",
    "ytsaurus", "azureblobstorage", "azureblobstoragecluster", "iceberg", "icebergs3", "icebergazure",
    "iceberghdfs", "icebergcluster", "deltalake", "deltalakecluster", "hudi", "hudicluster",
    "paimon", "dictionary_source",
})


def one_statement(query: str) -> str:
    """The query without trailing semicolons; ``SqlRefused`` if it holds more than one statement."""
    statements: list[str] = []
    current: list[str] = []
    for token in _LEXEME.findall(query):
        if token == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(token)
    statements.append("".join(current))
    real = [s for s in statements if _words(s)]
    if len(real) > 1:
        raise SqlRefused(f"one statement per request, please: this one has {len(real)}; send each separately "
                         f"({ALLOWED} at a time)")
    if not real:
        raise SqlRefused("the query is empty")
    return real[0].strip()


def _words(text: str) -> list[tuple[str, str, str]]:
    """Each bare word of the code with the code character before and after it ('' at an end):
    quoted parts and comments are skipped, and stand as a space between their neighbours."""
    code = "".join(t if not t.startswith(("'", '"', "`", "--", "/*")) else " " for t in _LEXEME.findall(text))
    return [(m.group(0), code[:m.start()].rstrip()[-1:], code[m.end():].lstrip()[:1])
            for m in _WORD.finditer(code)]


def read_statement(query: str) -> str:
    """The one read statement in ``query``, or ``SqlRefused`` with a line saying what is allowed."""
    statement = one_statement(query)
    words = _words(statement)
    verb = words[0][0].upper() if words else ""
    if verb not in READ_VERBS:
        shown = verb or statement[:20]
        raise SqlRefused(f"{shown} is not a read: gmv sql runs {ALLOWED} (read-only; writes, KILL, SYSTEM "
                         "and SET are refused before ClickHouse sees them)")
    for i, (word, before, after) in enumerate(words):
        upper = word.upper()
        if before == ".":
            continue  # a column or table name after a dot: system.settings
        if upper == "SETTINGS":
            raise SqlRefused("a SETTINGS clause is not taken from a query: the limits are the operator's "
                             "(GMV_SQL_MAX_EXECUTION_S, GMV_SQL_MAX_MEMORY_MB, ...; docs/configuration.md); "
                             "remove it and run the query again")
        if upper == "INTO" and i + 1 < len(words) and words[i + 1][0].upper() == "OUTFILE":
            raise SqlRefused("INTO OUTFILE is refused: the rows would be written by the server; redirect "
                             "gmv sql's output instead (gmv sql '...' --format csv > rows.csv)")
        if after == "(" and word.lower() in OUTSIDE_FUNCTIONS:
            raise SqlRefused(f"{word}() reaches outside the database and is refused: gmv sql reads the "
                             "gmv tables and system tables only")
    return statement
