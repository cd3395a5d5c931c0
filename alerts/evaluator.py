"""The alert evaluator: a task in the worker that owns ClickHouse, on a timer.

It reads what the judges (``gmv.alerts.judging``, pure) need and delivers what they find: the
worker's status (a frozen snapshot: it never reaches into the worker), the rollups' series and
the stored alerts (``AlertStore``, synchronous ClickHouse, so in a thread), and it fans each
change out to the receivers' outlets.

Business rules run every ``evaluation_interval_s`` over every event-time minute that became
complete since the last run, reading the rollups in chunks (a replay of days is many minutes);
alerts already in ``gmv.alerts`` are not fired or sent again. Pipeline rules run every second on
the worker's own counters (wall clock). ``gmv run`` (a replay, behind by design) evaluates
business rules only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from gmv.alerts.conditions import PipelineSample, minute_start
from gmv.alerts.delivery import Outlet
from gmv.alerts.judging import BusinessJudge, PipelineJudge, as_stored
from gmv.alerts.model import Alert
from gmv.alerts.rules import AlertConfig
from gmv.alerts.store import AlertStore
from gmv.streams.status import StatusSource

log = logging.getLogger("gmv.alerts")

CHUNK_MINUTES = 24 * 60  # minutes judged per read of the rollups (a replay of days reads them in chunks)
SAMPLE_S = 1.0  # pipeline rules: how often the worker's counters are sampled


class AlertEvaluator:
    def __init__(self, config: AlertConfig, status: StatusSource, store: AlertStore, outlets: list[Outlet],
                 pipeline_rules: bool = True, where: tuple[str, ...] = ()) -> None:
        self.config = config
        self.where = where  # the gmv sql flags naming this ClickHouse, put in every evidence command
        self.status = status  # the worker's, as a snapshot: the evaluator never reaches into the worker
        self.store = store
        self.outlets = outlets
        self.pipeline_rules = pipeline_rules
        self.database = store.database
        self.business = BusinessJudge(config, store.database)
        self.pipeline = PipelineJudge(config.rules, store.database)
        self.fired: list[Alert] = []  # every change this process emitted (the tools' summaries read it)
        self._last_sample = 0.0  # monotonic time of the last pipeline sample
        self._last_business = 0.0
        self._to_resume: list[Alert] = []  # stored business alerts still firing, handed on in the event loop
        self._read_error: Exception | None = None  # a chunk that could not be read in the last run

    # -- business rules ----------------------------------------------------------------------
    def evaluate_business_sync(self, final: bool = False, now: datetime | None = None) -> list[Alert]:
        """Judge every minute that became complete; returns the alert changes to deliver. Runs in a
        thread: it reads ClickHouse. ``final``: the input ended (no grace for late events)."""
        judge, st = self.business, self.status()
        last = judge.complete_through(st.rolled_up_to_ms, final)
        if last is None:
            return []
        now = now or datetime.now(UTC)
        if not judge.started and st.earliest_minute is not None:
            first = judge.catch_up_from(st.earliest_minute, last)
            stored = self.store.known(judge.stored_since(first))  # may raise (ClickHouse away): nothing changed yet
            self._to_resume = judge.start(first, stored)
        changes: list[Alert] = []
        try:
            while (chunk := judge.next_chunk(last, CHUNK_MINUTES)) is not None:
                first, end = chunk
                lives, shops = self.store.series(first - judge.lookback_minutes(), end)
                history = self.store.history(first, end, judge.history_reach(), judge.seasonal_shifts(),
                                             judge.seasonal_subjects(first, end, lives, shops))
                changes.extend(judge.judge_minutes(first, end, lives, shops, now, history))
            # Read again: the slow refresh (trust scores) may have moved on while the chunks were read.
            scored = judge.complete_through(self.status().scored_up_to_ms, final)
            if scored is not None and (days := judge.days_to_read(min(last, scored))) is not None:
                changes.extend(judge.judge_days(min(last, scored), self.store.shop_scores(*days), now))
        except Exception as e:  # a later chunk could not be read: deliver what was judged, retry the rest
            self._read_error = e
        return judge.new_changes(changes)

    async def evaluate_business(self, final: bool = False) -> None:
        try:
            changes = await asyncio.to_thread(self.evaluate_business_sync, final)
            self._resume(self._to_resume)
            self._to_resume = []
            self.emit(changes)
            error, self._read_error = self._read_error, None
            if error is not None:
                raise error
        except Exception as e:  # ClickHouse away: the next run judges the minutes not judged yet
            log.warning("alert evaluation could not read the rollups (%s: %s); trying again next run",
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")

    # -- pipeline rules ----------------------------------------------------------------------
    def sample(self, now: datetime | None = None) -> PipelineSample:
        """The worker's status now, as the pipeline rules see it."""
        st = self.status()
        now = as_stored(now or datetime.now(UTC))
        mono = time.monotonic()
        dead = self.pipeline.dead_letters(mono, st.counters, st.source_topics)
        oldest = st.oldest_read_since(self._last_sample)  # what this sample read, not the last one
        self._last_sample = mono
        read_age = max(0.0, now.timestamp() - oldest / 1000) if oldest else 0.0
        last_stored = st.last_stored_at
        return PipelineSample(now, st.lag, read_age, now.timestamp() - last_stored if last_stored else None,
                              st.sink_failing_s, dead, st.worker_id)

    def evaluate_pipeline(self, s: PipelineSample) -> list[Alert]:
        return self.pipeline.judge(s)

    async def adopt_open_pipeline_alerts(self) -> None:
        """Pipeline alerts an earlier run of this worker left firing (it stopped or crashed): they
        continue here, and resolve at the first sample that finds them clear."""
        st = self.status()
        subjects = [st.worker_id, *st.source_topics]
        try:
            stored = await asyncio.to_thread(self.store.open_pipeline, subjects)
        except Exception as e:  # ClickHouse away: they stay open until a later start adopts them
            log.warning("could not read the open pipeline alerts (%s); they resolve at a later start", e)
            return
        self.pipeline.adopt(stored, datetime.now(UTC))
        self._resume(stored)

    def resolve_pipeline_alerts(self, now: datetime | None = None) -> list[Alert]:
        """The worker is stopping in order: its pipeline alerts (lag, flush age, ClickHouse writes, dead
        letters) say nothing about a worker that no longer runs, so they resolve now, here and at
        every receiver, rather than stay firing in ``gmv.alerts`` after Alertmanager expired them."""
        return self.pipeline.resolve_all(as_stored(now or datetime.now(UTC)))

    # -- delivering ----------------------------------------------------------------------------
    def report(self) -> dict[str, object]:
        """For ``/gmv/stats/``: what is open, how far business rules have judged, each receiver's queue."""
        nxt = self.business.next_minute
        return {"open": sorted(f"{s.rule}:{s.id}" for s in (*self.business.incidents.open,
                                                             *self.pipeline.incidents.open)),
                "judged_until": None if nxt is None else minute_start(nxt).isoformat(), "emitted": len(self.fired),
                "receivers": {o.receiver.name: {"queued": len(o.queued), "delivered": o.delivered,
                                                "failures": o.failures, "last_error": o.last_error}
                              for o in self.outlets}}

    def emit(self, changes: list[Alert]) -> None:
        changes = [replace(a, evidence=replace(a.evidence, where=self.where)) for a in changes]
        for a in changes:
            if a.resolved_at is None:
                log.warning("ALERT %s %s %s/%s: %s (alert_id %s)", a.severity.upper(), a.rule, a.subject_kind,
                            a.subject_id, a.message, a.alert_id)
            else:
                log.warning("RESOLVED %s %s/%s (alert_id %s)", a.rule, a.subject_kind, a.subject_id, a.alert_id)
        self.fired.extend(changes)
        for outlet in self.outlets:
            outlet.put(changes)

    def _resume(self, still_firing: list[Alert]) -> None:
        """Alerts an earlier run left firing go to the receivers that keep state (Alertmanager)
        again, so they stay firing there until they resolve here; the others had them already."""
        for outlet in self.outlets:
            if outlet.receiver.latest_only and still_firing:
                outlet.put(still_firing)

    # -- running -------------------------------------------------------------------------------
    async def run(self, should_stop: Callable[[], bool]) -> None:
        """Evaluate on the timer and keep the receivers' queues moving, until told to stop."""
        senders = [asyncio.create_task(o.run(should_stop), name=f"alerts-{o.receiver.name}") for o in self.outlets]
        if self.pipeline_rules:
            await self.adopt_open_pipeline_alerts()
        try:
            while not should_stop():
                if self.pipeline_rules:
                    self.emit(self.evaluate_pipeline(self.sample()))
                if time.monotonic() - self._last_business >= self.config.evaluation_interval_s:
                    self._last_business = time.monotonic()
                    await self.evaluate_business()
                await asyncio.sleep(SAMPLE_S)
        finally:
            for t in senders:
                t.cancel()
            await asyncio.gather(*senders, return_exceptions=True)

    async def finish(self, flush_timeout_s: float = 10.0) -> bool:
        """End of input: judge every minute up to the end of the data, resolve the pipeline's own
        alerts (the pipeline stops), then deliver what is queued (for at most ``flush_timeout_s``).
        True when every receiver took everything."""
        await self.evaluate_business(final=True)
        self.emit(self.resolve_pipeline_alerts())
        results = await asyncio.gather(*(o.flush(flush_timeout_s) for o in self.outlets))
        return all(results)

    async def stopping(self, flush_timeout_s: float = 5.0) -> None:
        """The worker is about to stop (while its producer still runs): resolve its pipeline alerts
        and deliver that for at most ``flush_timeout_s``."""
        changes = self.resolve_pipeline_alerts()
        if changes:
            self.emit(changes)
            await asyncio.gather(*(o.flush(flush_timeout_s) for o in self.outlets))

    async def close(self) -> None:
        for o in self.outlets:
            await o.receiver.close()
        await asyncio.to_thread(self.store.close)
