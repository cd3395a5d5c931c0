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

# Trust scores and the content/SKU/path rollups (``gmv.sinks.levels``) are recomputed at most this
# often while batches flow (always when input stops, at the end of a run, on a rebalance): the scores
# are two statements over the changed days' facts, ~0.15 s at 100k facts here, the levels nine,
# against ~0.03 s for the minute rollups every batch needs (nine more per batch cost the bench ~15%).
# Under a backlog, catching up matters more (the bench's 60k-event runs lost ~0.7 s to it at 2 s).
SCORES_INTERVAL_S = 2.0
SCORES_BACKLOG_INTERVAL_S = 10.0


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
        self._level_minutes: set[datetime] = set()  # minutes whose content/SKU/path rollups are due
        self._marks_due: dict[int, int] = {}  # partition -> journal seq whose rows are in the facts
        self._last_refresh = 0.0
        self._last_scores = 0.0
        self._watermark_due = 0
        # Event time (epoch ms) up to which every order is attributed, stored and in the minute
        # rollups: what event-time readers of the rollups (the alert evaluator) may trust.
        self.rolled_up_to_ms = 0
        self.scored_up_to_ms = 0  # the same, for the trust scores (refreshed every SCORES_INTERVAL_S)
        self.earliest_minute: datetime | None = None  # the earliest minute of any row this process stored
        self.backlog = True  # some assigned partition is not read to its high watermark (the loop says)

    @property
    def pending(self) -> bool:
        return bool(self._gmv_minutes or self._funnel_minutes or self._score_days or self._level_minutes
                    or self._marks_due)

    def interval_passed(self) -> bool:
        return time.monotonic() - self._last_refresh >= self.interval_s

    async def stored(self, result: BatchResult, marks: dict[int, int], final: bool) -> None:
        """A batch's rows are in the facts: note their minutes and marks; refresh if it is time."""
        gmv, funnel = _minutes(r.event_time for r in result.credit_rows), _minutes(r.event_time for r in result.funnel_rows)
        self._gmv_minutes.update(gmv)
        self._funnel_minutes.update(funnel)
        self._level_minutes.update(gmv | funnel)
        self._score_days.update(_score_days(result, gmv))
        if gmv or funnel:
            first = min(gmv | funnel)
            self.earliest_minute = first if self.earliest_minute is None else min(self.earliest_minute, first)
        self._marks_due.update(marks)
        self._watermark_due = max(self._watermark_due, result.watermark_ms)
        if final or not self.backlog or self.interval_passed():
            interval = SCORES_BACKLOG_INTERVAL_S if self.backlog else SCORES_INTERVAL_S
            await self.refresh_rollups_and_mark(scores=final or time.monotonic() - self._last_scores >= interval)

    async def refresh_rollups_and_mark(self, scores: bool = True) -> None:
        """Recompute the minutes noted since the last refresh (and, ``scores``, the trust scores and
        the content/SKU/path rollups, ``gmv.sinks.levels``); then mark the journal entries whose rows
        are now in the facts and the rollups (a mark must never precede its rollup: while scores and
        those rollups wait for their next refresh, marks wait too)."""
        if self.outbox.changelog is None:
            return  # the loop never started: nothing was written, nothing is due
        with self.stats.timing("rollups"):
            gmv, funnel = self._gmv_minutes, self._funnel_minutes
            days = self._score_days if scores else ScoreDays()
            levels = self._level_minutes if scores else set()
            watermark = self._watermark_due
            self._gmv_minutes, self._funnel_minutes = set(), set()
            if scores:
                self._score_days, self._level_minutes = ScoreDays(), set()
                await self.sink.flush()  # the trust facts that waited for this refresh
            await self.sink.refresh_rollups(gmv, funnel, days, levels)
            self._last_refresh = time.monotonic()
            self.rolled_up_to_ms = max(self.rolled_up_to_ms, watermark)
            if scores:
                self._last_scores = self._last_refresh
            if self._score_days or self._level_minutes:
                return  # the marks wait for the scores and the content/SKU/path rollups
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
