"""When the minute rollups are recomputed, and when the journal is marked as stored.

Minute rollups are recomputed from the facts (an INSERT…SELECT per refresh,
``gmv.sinks.rollups``): after every batch while the worker is caught up (freshness),
at most every ``rollup_interval_s`` under a backlog (catching up matters more than
refreshing minutes that are behind anyway). A journal mark says ClickHouse holds the
rows of a partition's entries up to a sequence number; it is written only after the
rollup that covers those rows, so a crash never leaves a rollup stale behind a mark.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from gmv.sinks.base import BatchingSink
from gmv.sinks.scores import ScoreDays, shanghai_day
from gmv.streams.core.processor import BatchProcessor, BatchResult
from gmv.streams.core.rows import CsTurnRow, ReviewRow
from gmv.streams.core.state import from_ms
from gmv.streams.stats import WorkerStats
from gmv.streams.store import Outbox

# The slow refresh (trust scores, and the hour/day and content/SKU/shop/path rollups of
# ``gmv.sinks.levels``) runs at most this often while batches flow, and always at the end of a run and
# on a rebalance: it is ~18 statements (~20 ms each here, most of it writing a part), against three
# for the minute rollups every batch needs. Under a backlog, catching up matters more.
SLOW_INTERVAL_S = 5.0
SLOW_BACKLOG_INTERVAL_S = 15.0


class RollupScheduler:
    def __init__(self, sink: BatchingSink, outbox: Outbox, processor: BatchProcessor, stats: WorkerStats,
                 interval_s: float) -> None:
        self.sink = sink
        self.outbox = outbox
        self.processor = processor
        self.stats = stats
        self.interval_s = interval_s
        self._gmv_minutes: set[datetime] = set()  # minutes whose rollups are due a refresh
        self._funnel_minutes: set[datetime] = set()
        self._score_days = ScoreDays()  # Asia/Shanghai days of new trust-score facts
        self._level_minutes: set[datetime] = set()  # credit minutes whose levels (hour, day, ...) are due
        self._level_funnel_minutes: set[datetime] = set()  # the same for the funnel's hours and days
        self._marks_due: dict[int, int] = {}  # partition -> journal seq whose rows are in the facts
        self._last_refresh = 0.0
        self._last_scores = 0.0
        self._watermark_due = 0
        # Event time (epoch ms) up to which every order is attributed, stored and in the minute
        # rollups: what event-time readers of the rollups (the alert evaluator) may trust.
        self.rolled_up_to_ms = 0
        self.scored_up_to_ms = 0  # the same, for the trust scores (refreshed every SLOW_INTERVAL_S)
        self.earliest_minute: datetime | None = None  # the earliest minute of any row this process stored
        self.backlog = True  # some assigned partition is not read to its high watermark (the loop says)

    @property
    def pending(self) -> bool:
        return bool(self._gmv_minutes or self._funnel_minutes or self._score_days or self._level_minutes
                    or self._level_funnel_minutes or self._marks_due)

    def interval_passed(self) -> bool:
        return time.monotonic() - self._last_refresh >= self.interval_s

    def slow_due(self) -> bool:
        """Whether the slow refresh (scores, levels) is due (``SLOW_INTERVAL_S``)."""
        interval = SLOW_BACKLOG_INTERVAL_S if self.backlog else SLOW_INTERVAL_S
        return time.monotonic() - self._last_scores >= interval

    async def stored(self, result: BatchResult, marks: dict[int, int], final: bool) -> None:
        """A batch's rows are in the facts: note their minutes and marks; refresh if it is time."""
        gmv, funnel = _minutes(r.event_time for r in result.credit_rows), _minutes(r.event_time for r in result.funnel_rows)
        self._gmv_minutes.update(gmv)
        self._funnel_minutes.update(funnel)
        self._level_minutes.update(gmv)
        self._level_funnel_minutes.update(funnel)
        self._score_days.update(_score_days(result, gmv))
        if gmv or funnel:
            first = min(gmv | funnel)
            self.earliest_minute = first if self.earliest_minute is None else min(self.earliest_minute, first)
        self._marks_due.update(marks)
        self._watermark_due = max(self._watermark_due, result.watermark_ms)
        if final or not self.backlog or self.interval_passed():
            await self.refresh_rollups_and_mark(slow=final or self.slow_due())

    async def refresh_rollups_and_mark(self, slow: bool = True) -> None:
        """Recompute the minutes noted since the last refresh (and, ``slow``, the trust scores and
        the levels of ``gmv.sinks.levels``); then mark the journal entries whose rows are now in the
        facts and the rollups (a mark must never precede its rollup: while the slow refresh waits,
        marks wait too)."""
        if self.outbox.changelog is None:
            return  # the loop never started: nothing was written, nothing is due
        with self.stats.timing("rollups"):
            gmv, funnel = self._gmv_minutes, self._funnel_minutes
            days = self._score_days if slow else ScoreDays()
            levels = (self._level_minutes, self._level_funnel_minutes) if slow else (set(), set())
            watermark = self._watermark_due
            self._gmv_minutes, self._funnel_minutes = set(), set()
            if slow:
                self._score_days, self._level_minutes, self._level_funnel_minutes = ScoreDays(), set(), set()
                await self.sink.flush()  # the trust facts that waited for this refresh
            await self.sink.refresh_rollups(gmv, funnel, days, levels)
            self._last_refresh = time.monotonic()
            self.rolled_up_to_ms = max(self.rolled_up_to_ms, watermark)
            if slow:
                self._last_scores = self._last_refresh
            if self._score_days or self._level_minutes or self._level_funnel_minutes:
                return  # the marks wait for the slow refresh
            self.scored_up_to_ms = max(self.scored_up_to_ms, watermark)
            marks, self._marks_due = self._marks_due, {}
            for p, seq in marks.items():
                ps = self.processor.partitions.get(p)  # the writer that journalled it (never a new one)
                if ps is not None:
                    key, value = ps.mark_key_value(seq)
                    await self.outbox.put_mark(p, key, value)


def _score_days(result: BatchResult, credit_minutes: set[datetime]) -> ScoreDays:
    """The Asia/Shanghai days of a batch's trust-score facts: paid orders and refunds (their credit
    rows' minutes), reviews and turns; and of buyer messages that no longer start a turn."""
    turns = result.rows[CsTurnRow.TABLE]
    times = [r.event_time for r in result.rows[ReviewRow.TABLE]] + [r.start_time for r in turns if r.is_turn]
    facts = {shanghai_day(m) for m in credit_minutes | _minutes(times)}
    stale = {shanghai_day(m) for m in _minutes(r.start_time for r in turns if not r.is_turn)} - facts
    return ScoreDays(facts, stale)


def _minutes(times: Iterable[float]) -> set[datetime]:
    """The minutes (UTC) of row times (epoch seconds, see ``gmv.streams.core.state.row_time``)."""
    return {from_ms(m * 60_000) for m in {int(t // 60) for t in times}}
