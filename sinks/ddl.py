"""The next migration's DDL, derived from the catalogue: ``python -m gmv.sinks.ddl > NNNN_name.sql``.

Builds a scratch database from the migrations as they are, compares it with the catalogue
(``gmv.schemas.catalogue``), and prints the statements that bring the one to the other: a table
or view the catalogue has and the database lacks is created (a ``Table`` as its stored table and
FINAL view, in the frozen files' format); a table, view or column whose comment differs gets it.
Anything else (a column added, removed or retyped; a key changed) is printed as a ``-- by hand:``
line, since only a person can say how existing rows move. The output is reviewed, given its
``-- migration N:`` header and frozen as a new file; it is never regenerated after release.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence

from gmv.schemas.catalogue import TABLES, VIEWS, Table, View
from gmv.schemas.catalogue.base import STORE_NOTE, VIEW_NOTE, _quote

Query = Callable[[str, dict], list[tuple]]


def _columns(query: Query, db: str, name: str) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in query("SELECT name, type, comment FROM system.columns WHERE database = {db:String} "
                                    "AND table = {t:String} ORDER BY position", {"db": db, "t": name})]  # type: ignore[misc]


def statements(query: Query, db: str, tables: Sequence[Table] = TABLES, views: Sequence[View] = VIEWS,
               out_db: str = "{db}") -> list[str]:
    """What turns database ``db`` (as the migrations built it) into the catalogue (``out_db`` in the SQL)."""
    live = {r[0]: r[1] for r in query("SELECT name, comment FROM system.tables WHERE database = {db:String}",
                                      {"db": db})}
    out: list[str] = []
    targets: list[tuple[str, str, tuple]] = []
    for t in tables:
        if t.store not in live and t.name not in live:
            out += t.create_statements(out_db)
            continue
        targets += [(t.store, f"{t.comment} {STORE_NOTE.format(name=t.name)}", t.columns),
                    (t.name, f"{t.comment} {VIEW_NOTE}", t.columns)]
    for v in views:
        if v.name not in live:
            out.append(f"-- by hand: the view {v.name} (its query is a person's to write)")
            continue
        targets.append((v.name, v.comment, v.columns))
    for name, comment, columns in targets:
        if live.get(name) != comment:
            out.append(f"ALTER TABLE `{out_db}`.`{name}` MODIFY COMMENT {_quote(comment)}")
        have = _columns(query, db, name)
        if [(n, ty) for n, ty, _ in have] != [(c.name, c.type) for c in columns]:
            out.append(f"-- by hand: the columns of {name} differ from the catalogue's")
            continue
        for (n, _, comment_now), c in zip(have, columns, strict=True):
            if comment_now != c.comment:
                out.append(f"ALTER TABLE `{out_db}`.`{name}` COMMENT COLUMN `{n}` {_quote(c.comment)}")
    return out


def main() -> int:
    from gmv.sinks.clickhouse import connect
    from gmv.sinks.migrations import migrate

    with tempfile.TemporaryDirectory() as scratch:
        client = connect(f"chdb://{scratch}")
        migrate(client, "scratch")
        found = statements(lambda sql, p: client.query(sql, parameters=p).result_rows, "scratch")
        client.close()
    if not found:
        print("-- the migrations build exactly the catalogue: no migration needed", file=sys.stderr)
        return 0
    sys.stdout.write("-- migration N: <say what it does>\n-- Frozen: the DDL exactly as it shipped. Never edit it; "
                     "add a new migration instead.\n-- Statements are separated by a line holding only ';'. {db} "
                     "stands for the database.\n" + "\n;\n".join(found) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
