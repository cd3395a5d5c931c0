"""Slow-refresh work owed, kept in ClickHouse (``refresh_owed``): what lets a journal mark follow the
fast refresh instead of the slow one.

A mark confirms records whose rows ClickHouse holds and whose minute rollups are refreshed. Their markov
credits, levels and trust scores come with the slow refresh, which runs every 5–15 s and under load
takes seconds of its own. So before a fast refresh confirms records, the worker records what the slow
refresh still owes for their rows (``record``), and the slow refresh that recomputes it closes the
entry (``close``). A worker that stops or is killed in between leaves its entries open; the next worker
to start takes up every open entry (``open_work``) with its first slow refresh, and closes them.

``refresh_owed_store`` row: ``writer`` (8 hex digits, new at each start), ``seq`` (from 1 within the
run), ``noted_at``, ``work`` (``gmv.sinks.base.encode_work`` of the slow parts: ISO minutes of the
levels and funnel levels, ISO days of the scores and stale scores), ``closed`` 0. Its close is a row
of the same (writer, seq) with ``closed`` 1 and ``work`` '', which wins in the ReplacingMergeTree.
An entry done twice costs a refresh, never a number: every slow step recomputes from the facts.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from gmv.schemas.catalogue import REFRESH_OWED
from gmv.sinks.base import RollupWork, decode_work, encode_work

OPEN = "SELECT writer, seq, noted_at, work FROM {db:Identifier}.refresh_owed WHERE closed = 0 ORDER BY noted_at"

Entry = tuple[str, int, datetime]  # writer, seq, noted_at: an entry's identity (and its partition)


class OwedLedger:
    """One worker run's entries: numbers them, writes them, closes them."""

    def __init__(self) -> None:
        self.writer = secrets.token_hex(4)
        self._seq = 0

    def next_entry(self) -> Entry:
        self._seq += 1
        return self.writer, self._seq, datetime.now(UTC)

    @staticmethod
    def record(client: Client, db: str, entry: Entry, work: RollupWork) -> None:
        """Write an entry (a retry writes the same one: an attempt that did land is replaced, not doubled)."""
        _insert(client, db, [(*entry, encode_work(work), 0)])

    @staticmethod
    def close(client: Client, db: str, entries: list[Entry]) -> None:
        if entries:
            _insert(client, db, [(*e, "", 1) for e in entries])

    @staticmethod
    def open_work(client: Client, db: str) -> tuple[RollupWork, list[Entry]]:
        """Every open entry's work, merged, and the entries (any writer's: a killed worker's too)."""
        work = RollupWork()
        entries: list[Entry] = []
        for writer, seq, noted_at, body in client.query(OPEN, parameters={"db": db}).result_rows:
            work.update(decode_work(body.encode()))
            entries.append((writer, int(seq), noted_at if noted_at.tzinfo else noted_at.replace(tzinfo=UTC)))
        return work, entries


def _insert(client: Client, db: str, rows: list[tuple]) -> None:
    client.insert(REFRESH_OWED.store, rows, database=db, column_names=REFRESH_OWED.column_names,
                  column_type_names=REFRESH_OWED.column_types)
