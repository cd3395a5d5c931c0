"""The batching sink interface the worker writes through: ``add`` rows per table, ``flush`` them.

Two sinks implement it: ``ClickHouseSink`` writes ClickHouse directly; ``TopicSink``
hands the rows to the one process that owns ClickHouse (``sink_mode=topic``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from gmv.schemas.catalogue import FACTS, Table
from gmv.sinks.scores import ScoreDays


@dataclass
class RollupWork:
    """What one refresh recomputes from the facts: the minute rollups of some minutes, and (the slow
    refresh) the trust scores of some days, the markov model and credits of the days and minutes the
    levels name, and the levels (hours, days, content/SKU/shop/path) of some minutes."""

    gmv_minutes: set[datetime] = field(default_factory=set)
    funnel_minutes: set[datetime] = field(default_factory=set)
    score_days: ScoreDays = field(default_factory=ScoreDays)
    level_minutes: set[datetime] = field(default_factory=set)  # of credit rows (paid orders, refunds)
    level_funnel_minutes: set[datetime] = field(default_factory=set)  # of funnel events

    def __bool__(self) -> bool:
        return bool(self.gmv_minutes or self.funnel_minutes or self.score_days or self.level_minutes
                    or self.level_funnel_minutes)

    def update(self, other: RollupWork) -> None:
        """Add ``other``'s minutes and days (refresh requests merged, owed entries taken up)."""
        self.gmv_minutes |= other.gmv_minutes
        self.funnel_minutes |= other.funnel_minutes
        self.level_minutes |= other.level_minutes
        self.level_funnel_minutes |= other.level_funnel_minutes
        self.score_days.update(other.score_days)


def encode_work(work: RollupWork) -> bytes:
    """A refresh as a rows-topic message: one JSON object of ISO minutes and days."""
    return json.dumps({"gmv": sorted(m.isoformat() for m in work.gmv_minutes),
                       "funnel": sorted(m.isoformat() for m in work.funnel_minutes),
                       "levels": sorted(m.isoformat() for m in work.level_minutes),
                       "funnel_levels": sorted(m.isoformat() for m in work.level_funnel_minutes),
                       "scores": sorted(d.isoformat() for d in work.score_days.facts),
                       "stale": sorted(d.isoformat() for d in work.score_days.stale)}).encode()


def decode_work(body: bytes) -> RollupWork:
    doc = json.loads(body)
    minutes = lambda name: {datetime.fromisoformat(m) for m in doc.get(name, ())}  # noqa: E731
    return RollupWork(minutes("gmv"), minutes("funnel"),
                      ScoreDays({date.fromisoformat(d) for d in doc.get("scores", ())},
                                {date.fromisoformat(d) for d in doc.get("stale", ())}),
                      minutes("levels"), minutes("funnel_levels"))


class BatchingSink(ABC):
    """Buffers rows per stored table until ``flush``.

    Rows of ``deferrable`` tables may stay buffered past a ``flush(everything=False)``, until the
    next full flush: only the trust scores read them, and the journal marks wait for a full flush
    (a slow refresh, or a fast refresh that writes marks), so a crash re-derives whatever was still
    buffered."""

    deferrable: frozenset[str] = frozenset()
    # Keeps slow-refresh work owed (``gmv.sinks.owed``), so that marks may follow a fast refresh. The
    # rows topic needs none: a refresh there is a message, done by the writer even after a crash.
    owes: bool = False

    def __init__(self, tables: Sequence[Table] = FACTS) -> None:
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
    async def refresh(self, work: RollupWork) -> None:
        """Recompute from the facts what ``work`` names: the minute rollups (``gmv.sinks.rollups``), the
        markov model and credits (``gmv.sinks.markov``), the levels at every grain (``gmv.sinks.levels``)
        and the trust scores those days weigh on (``gmv.sinks.scores``)."""

    def yield_slow(self, on: bool) -> None:
        """``on``: a slow refresh running (or starting) stops at its next statement (``RefreshYielded``);
        off again once the stop or rebalance that asked has its marks. A sink without owed work waits."""
        return None

    async def record_owed(self, work: RollupWork) -> None:
        """Record slow work owed for rows already stored, before their marks are written (``owes``)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no owed work")

    def abort(self) -> None:
        """Stop retrying: the process is stopping (a write in progress raises ``SinkStopped``).
        A sink without retries of its own has nothing to stop."""
        return None

    @property
    def failing_since(self) -> float | None:
        """Monotonic time writes started failing (None while they succeed)."""
        return None
