"""The batching sink interface the worker writes through: ``add`` rows per table, ``flush`` them.

Two sinks implement it: ``ClickHouseSink`` writes ClickHouse directly; ``TopicSink``
hands the rows to the one process that owns ClickHouse (``sink_mode=topic``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gmv.sinks.schema import STORED_TABLES, StoredTable
from gmv.sinks.scores import ScoreDays


class BatchingSink(ABC):
    """Buffers rows per stored table until ``flush``.

    Rows of ``deferrable`` tables may stay buffered past a ``flush(everything=False)``, until the
    next full flush: only the trust scores read them, and the journal marks wait for the score
    refresh (which flushes everything first), so a crash re-derives whatever was still buffered."""

    deferrable: frozenset[str] = frozenset()

    def __init__(self, tables: Sequence[StoredTable] = STORED_TABLES) -> None:
        self.tables = {t.name: t for t in tables}
        self._buffers: dict[str, list[Sequence[Any]]] = {name: [] for name in self.tables}
        self.rows_written = 0
        self.rows_by_table: Counter[str] = Counter()  # rows written per stored table (metrics)
        self.write_failures = 0  # failed write attempts, retried ones included (metrics)
        self.inserts = 0

    def add(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        self._buffers[table].extend(rows)

    def pending(self, everything: bool = True) -> int:
        return sum(len(b) for name, b in self._buffers.items() if everything or name not in self.deferrable)

    def _take_buffers(self, everything: bool = True) -> dict[str, list[Sequence[Any]]]:
        batches = {name: rows for name, rows in self._buffers.items()
                   if rows and (everything or name not in self.deferrable)}
        for name in batches:
            self._buffers[name] = []
        return batches

    @abstractmethod
    async def flush(self, everything: bool = True) -> int:
        """Write what is buffered (``everything=False``: but the deferrable tables' rows); returns the
        rows written. Raises a ``SinkError``."""

    @abstractmethod
    async def refresh_rollups(self, gmv_minutes: set[datetime], funnel_minutes: set[datetime],
                              score_days: ScoreDays | None = None,
                              levels: tuple[set[datetime], set[datetime]] = (set(), set())) -> None:
        """Recompute the minute rollups of these minutes from the facts (``gmv.sinks.rollups``), the
        levels of ``levels`` (credit minutes, funnel minutes) at every grain (``gmv.sinks.levels``), and
        the trust scores that facts of these Asia/Shanghai days weigh on (``gmv.sinks.scores``)."""

    def abort(self) -> None:
        """Stop retrying: the process is stopping (a write in progress raises ``SinkStopped``).
        A sink without retries of its own has nothing to stop."""
        return None

    @property
    def failing_since(self) -> float | None:
        """Monotonic time writes started failing (None while they succeed)."""
        return None
