"""What a table of the catalogue is: its columns, its key and engine, and what is derived from them.

A ``Table`` is a stored ReplacingMergeTree table ``<name>_store`` and the view ``<name>`` that
reads it with ``FINAL``, so a plain ``SELECT sum(...)`` on the view counts each row once, however
often it was written (exact under replays and crashes). A ``View`` is a view with a query of its own (the
cookbook's, the KPIs); its query lives in the migration that created it, its columns here.

Derived from a table, never written again elsewhere: its row type (a NamedTuple of its columns in
order, ``row_type``), the column list of every INSERT into it (``column_names``), the DDL of a new
migration that creates it (``create_statements``), and the check that the migrations built exactly
these columns (tests/integration/test_schema_migrations.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

STORE_NOTE = "Stored rows; may hold not-yet-merged copies: query the view {name}."
VIEW_NOTE = "Exact: each row once, however often it was written."


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str


@dataclass(frozen=True)
class Table:
    """A stored table behind its FINAL view."""

    name: str  # the view analysts query; the stored table is ``<name>_store``
    comment: str
    columns: tuple[Column, ...]
    order_by: str  # the row identity: rows with the same key collapse into one
    version: str = ""  # ReplacingMergeTree version column ("" = any copy wins; copies are identical)
    partition_by: str = ""
    settings: str = "non_replicated_deduplication_window = 1000"
    # The view's query when it is more than ``SELECT columns FROM <store> FINAL`` ({db}: the database;
    # {columns}: the column list): attributed_gmv also shows markov_credits' rows.
    view_select: str = ""
    ttl: str = ""  # a TTL clause's expression ("" = rows live until deleted)

    @property
    def store(self) -> str:
        return f"{self.name}_store"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def column_types(self) -> list[str]:
        return [c.type for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def row_type(self, type_name: str) -> type[NamedTuple]:
        """A NamedTuple of the columns in order, with ``TABLE`` = the table's name: the sink writes a row
        as it is (a tuple is a ``JSONCompactEachRow`` array); code reads its fields by name."""
        row = NamedTuple(type_name, [(c.name, Any) for c in self.columns])  # type: ignore[misc]
        row.TABLE = self.name  # type: ignore[attr-defined]
        row.__doc__ = f"``{self.name}``: {self.comment.split('. ')[0].rstrip('.')}."
        return row

    def insert_select(self, db: str, exprs: Mapping[str, str], rest: str) -> str:
        """``INSERT INTO <db>.<store> (columns) SELECT <expr> AS <column>, ... <rest>``: every column
        named, in the catalogue's order, with its expression by name (two columns of one type swapped
        cannot go in silently). ``db`` is SQL text (``{db:Identifier}`` when the caller binds it)."""
        missing, extra = set(self.column_names) - set(exprs), set(exprs) - set(self.column_names)
        if missing or extra:
            raise ValueError(f"{self.store}: expressions for {sorted(missing)} missing, {sorted(extra)} unknown")
        names = ", ".join(f"`{c}`" for c in self.column_names)
        select = ", ".join(f"{exprs[c]} AS `{c}`" for c in self.column_names)
        return f"INSERT INTO {db}.`{self.store}` ({names}) SELECT {select} {rest}"

    def create_statements(self, db: str = "{db}") -> list[str]:
        """The DDL of a migration that creates the table and its view, in the frozen files' format."""
        cols = ",\n".join(f"  `{c.name}` {c.type} COMMENT {_quote(c.comment)}" for c in self.columns)
        engine = f"ReplacingMergeTree({self.version})" if self.version else "ReplacingMergeTree"
        partition = f"PARTITION BY {self.partition_by}\n" if self.partition_by else ""
        settings = f"SETTINGS {self.settings}\n" if self.settings else ""
        ttl = f"TTL {self.ttl}\n" if self.ttl else ""
        store = (f"CREATE TABLE IF NOT EXISTS `{db}`.`{self.store}` (\n{cols}\n)\nENGINE = {engine}\n{partition}"
                 f"ORDER BY {self.order_by}\n{ttl}{settings}COMMENT {_quote(f'{self.comment} {STORE_NOTE.format(name=self.name)}')}")
        return [store, self.view_statement(db)]

    def view_statement(self, db: str = "{db}", replace: bool = False) -> str:
        """The view's DDL (``replace``: CREATE OR REPLACE, for a migration that changes its query)."""
        cols = ",\n".join(f"  `{c.name}` {c.type} COMMENT {_quote(c.comment)}" for c in self.columns)
        names = ", ".join(f"`{c.name}`" for c in self.columns)
        select = (self.view_select.format(db=db, columns=names) if self.view_select else
                  f"SELECT {names} FROM `{db}`.`{self.store}` FINAL")
        create = "CREATE OR REPLACE VIEW" if replace else "CREATE VIEW IF NOT EXISTS"
        return (f"{create} `{db}`.`{self.name}` (\n{cols}\n) AS {select}\n"
                f"COMMENT {_quote(f'{self.comment} {VIEW_NOTE}')}")


@dataclass(frozen=True)
class View:
    """A view with a query of its own (in the migration that created it)."""

    name: str
    comment: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
