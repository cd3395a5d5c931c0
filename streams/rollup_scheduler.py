"""When the rollups are recomputed and which journal marks may follow: decisions only, no I/O.

Minute rollups are recomputed from the facts (an INSERT…SELECT per refresh, ``gmv.sinks.rollups``):
at most every ``FRESH_INTERVAL_S`` while the worker is caught up (freshness), at most every
``rollup_interval_s`` under a backlog (catching up matters more than refreshing minutes that are
behind anyway). The slow refresh (the markov model and credits, trust scores, and the hour/day and
content/SKU/shop/path rollups of ``gmv.sinks.levels``) runs at most every ``SLOW_INTERVAL_S`` while
batches flow, and ``SLOW_IDLE_INTERVAL_S`` after the last one once input is quiet. A journal mark says ClickHouse holds
the rows of a partition's entries up to a sequence number; it is released only with a refresh after
which nothing covering its rows is left due, so a crash never leaves a rollup stale behind a mark.
With a sink that keeps owed work (``gmv.sinks.owed``), a fast refresh may release the marks while the
slow refresh is still due: what the slow refresh owes for their rows is recorded first (``owed``, what
was not recorded since the last slow refresh), and whoever starts next does it if this process does
not. Otherwise marks wait for the slow refresh. ``Checkpoint`` carries the decisions out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from gmv.schemas.times import from_ms, shanghai_day
from gmv.sinks.base import RollupWork
from gmv.sinks.scores import ScoreDays
from gmv.streams.core.journal import Confirmation
from gmv.streams.core.processor import BatchResult
from gmv.streams.core.rows import FUNNEL_EVENT_TYPES, CsTurnRow, ReviewRow

# The slow refresh runs at most this often while batches flow, and always at the end of a run (a stop
# or a rebalance owes it, with a sink that keeps owed work): it is ~18 statements (~20 ms each here,
# most of it writing a part), against three for the minute rollups every batch needs. Under a
# backlog, catching up matters more.
SLOW_INTERVAL_S = 5.0
SLOW_BACKLOG_INTERVAL_S = 15.0
# Input went quiet: what the last batches left due (markov credits, levels, scores) is refreshed
# this soon, instead of at the flowing cadence (a harness or an analyst waits for it, nobody else).
SLOW_IDLE_INTERVAL_S = 1.0
# While caught up, minute rollups at most this often instead of after every batch: at 1,500 events/s
# a batch came every ~60 ms and its 3-statement refresh cost ~30 ms of ClickHouse work, over a third
# of a core (gmv demo). At 0.25 s, freshness p99 at 3k/s rose 0.73-0.78 -> 0.97-0.98 s (goal 1 s).
FRESH_INTERVAL_S = 0.1
# Marks released by a fast refresh, with what they owe recorded, at most this often: each release is
# an insert of the deferred trust facts and one refresh_owed row. Marks that waited for the slow
# refresh held 30-95k records under load, all re-emitted by a restart, and a stop waited for a
# slow refresh it could not finish (the 3M soak: 41k records re-emitted at every restart).
OWED_INTERVAL_S = 2.0

Marks = dict[int, list[Confirmation]]  # partition -> its pending records a mark will confirm


@dataclass
class Refresh:
    """One refresh to carry out (``work``), then the marks that may follow it."""

    work: RollupWork = field(default_factory=RollupWork)
    slow: bool = False
    watermark_ms: int = 0
    marks: Marks = field(default_factory=dict)
    # The marks follow this fast refresh while the slow one is due: the deferred rows are flushed
    # first, and ``owed`` (its slow work not recorded yet, if any) is recorded before the marks.
    owing: bool = False
    owed: RollupWork | None = None


class RollupScheduler:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._gmv_minutes: set[datetime] = set()  # minutes whose rollups are due a refresh
        self._funnel_minutes: set[datetime] = set()
        self._score_days = ScoreDays()  # Asia/Shanghai days of new trust-score facts
        self._level_minutes: set[datetime] = set()  # credit minutes whose levels (hour, day, ...) are due
        self._level_funnel_minutes: set[datetime] = set()  # the same for the funnel's hours and days
        self._marks_due: Marks = {}
        self._recorded = RollupWork()  # slow work recorded as owed since the last slow refresh took its sets
        self._last_refresh = 0.0
        self._last_slow = 0.0
        self._last_owed = 0.0
        self._watermark_due = 0
        # Event time (epoch ms) up to which every order is attributed, stored and in the minute
        # rollups: what event-time readers of the rollups (the alert evaluator) may trust.
        self.rolled_up_to_ms = 0
        self.scored_up_to_ms = 0  # the same, for the trust scores and the levels (the slow refresh)
        self.earliest_minute: datetime | None = None  # the earliest minute of any row this process stored
        self.backlog = True  # some assigned partition is not read to its high watermark (the loop says)

    @property
    def pending(self) -> bool:
        return bool(self._gmv_minutes or self._funnel_minutes or self._slow_pending or self._marks_due)

    @property
    def _slow_pending(self) -> bool:
        return bool(self._score_days or self._level_minutes or self._level_funnel_minutes)

    def interval_passed(self) -> bool:
        interval = self.interval_s if self.backlog else min(self.interval_s, FRESH_INTERVAL_S)
        return time.monotonic() - self._last_refresh >= interval

    def slow_due(self, idle: bool = False) -> bool:
        """Whether the slow refresh (scores, levels, markov) is due (``idle``: input is quiet)."""
        interval = (SLOW_IDLE_INTERVAL_S if idle else SLOW_BACKLOG_INTERVAL_S if self.backlog
                    else SLOW_INTERVAL_S)
        return time.monotonic() - self._last_slow >= interval

    def note_stale(self, funnel_minutes: set[datetime]) -> None:
        """Funnel minutes found stale at start (``ClickHouseSink.stale_funnel_minutes``): due with the
        next refresh, their hours, days and markov days with the next slow one."""
        self._funnel_minutes |= funnel_minutes
        self._level_funnel_minutes |= funnel_minutes

    def note_owed(self, work: RollupWork) -> None:
        """Slow work a worker owed when it stopped (``refresh_owed``'s open entries, read at start): due
        with the next slow refresh, which closes those entries."""
        self._level_minutes |= work.level_minutes
        self._level_funnel_minutes |= work.level_funnel_minutes
        self._score_days.update(work.score_days)

    def note(self, result: BatchResult, marks: Marks) -> None:
        """A batch's rows are in the facts: note their minutes and the marks that may follow."""
        gmv = _minutes(r.event_time for r in result.credit_rows)
        # funnel_events rows: derived by ClickHouse from the views' and live-room events' rows
        funnel = _minutes(r.event_time for r in result.event_rows if r.event_type in FUNNEL_EVENT_TYPES)
        self._gmv_minutes.update(gmv)
        self._funnel_minutes.update(funnel)
        self._level_minutes.update(gmv)
        self._level_funnel_minutes.update(funnel)
        self._score_days.update(_score_days(result, gmv))
        if gmv or funnel:
            first = min(gmv | funnel)
            self.earliest_minute = first if self.earliest_minute is None else min(self.earliest_minute, first)
        for p, confirmations in marks.items():
            self._marks_due.setdefault(p, []).extend(confirmations)
        self._watermark_due = max(self._watermark_due, result.watermark_ms)

    def due(self) -> bool:
        """After a stored batch: refresh now? (its interval has passed)"""
        return self.interval_passed()

    def take(self, slow: bool, owes: bool = False, now: bool = False) -> Refresh:
        """What to refresh now (``slow``: the scores and levels too), and the marks that may follow it.
        ``owes``: the sink records owed slow work, so a fast refresh may release the marks (at most every
        ``OWED_INTERVAL_S``; ``now``: this time whatever the interval, a rebalance or a stop)."""
        r = Refresh(RollupWork(self._gmv_minutes, self._funnel_minutes), slow=slow, watermark_ms=self._watermark_due)
        self._gmv_minutes, self._funnel_minutes = set(), set()
        if slow:
            r.work.score_days, r.work.level_minutes = self._score_days, self._level_minutes
            r.work.level_funnel_minutes = self._level_funnel_minutes
            self._score_days, self._level_minutes, self._level_funnel_minutes = ScoreDays(), set(), set()
            self._recorded = RollupWork()
        if not self._slow_pending:  # nothing covering the marked rows is left due after this refresh
            r.marks, self._marks_due = self._marks_due, {}
        elif owes and (now or (self._marks_due and time.monotonic() - self._last_owed >= OWED_INTERVAL_S)):
            # ``now`` (a stop, a rebalance) records even slow work no mark waits for: a view's funnel levels
            r.marks, self._marks_due, r.owing = self._marks_due, {}, True
            r.owed = self._unrecorded()
            self._last_owed = time.monotonic()
        return r

    def _unrecorded(self) -> RollupWork | None:
        """The slow work due and not recorded as owed yet, or None (``applied`` counts it recorded)."""
        rec = self._recorded
        work = RollupWork(level_minutes=self._level_minutes - rec.level_minutes,
                          level_funnel_minutes=self._level_funnel_minutes - rec.level_funnel_minutes,
                          score_days=ScoreDays(self._score_days.facts - rec.score_days.facts,
                                               self._score_days.stale - rec.score_days.stale))
        return work if work else None

    def untake(self, r: Refresh) -> None:
        """A slow refresh yielded after its minute rollups (``RefreshYielded``): its slow work and its
        marks are due again (the next owed record covers the work: nothing is counted recorded now)."""
        self.note_owed(r.work)
        for p, confirmations in r.marks.items():
            self._marks_due.setdefault(p, []).extend(confirmations)
        self._last_refresh = time.monotonic()

    def applied(self, r: Refresh) -> None:
        """ClickHouse holds the refresh (and its owed work, recorded): the watermarks move."""
        if r.owed is not None:
            self._recorded.update(r.owed)
        self._last_refresh = time.monotonic()
        self.rolled_up_to_ms = max(self.rolled_up_to_ms, r.watermark_ms)
        if r.slow:
            self._last_slow = self._last_refresh
        if not self._slow_pending:
            self.scored_up_to_ms = max(self.scored_up_to_ms, r.watermark_ms)


def _score_days(result: BatchResult, credit_minutes: set[datetime]) -> ScoreDays:
    """The Asia/Shanghai days of a batch's trust-score facts: paid orders and refunds (their credit
    rows' minutes), reviews and turns; and of buyer messages that no longer start a turn."""
    turns = result.rows[CsTurnRow.TABLE]
    times = [r.event_time for r in result.rows[ReviewRow.TABLE]] + [r.start_time for r in turns if r.is_turn]
    facts = {shanghai_day(m) for m in credit_minutes | _minutes(times)}
    stale = {shanghai_day(m) for m in _minutes(r.start_time for r in turns if not r.is_turn)} - facts
    return ScoreDays(facts, stale)


def _minutes(times: Iterable[float]) -> set[datetime]:
    """The minutes (UTC) of row times (epoch seconds, see ``gmv.schemas.times.row_time``)."""
    return {from_ms(m * 60_000) for m in {int(t // 60) for t in times}}
