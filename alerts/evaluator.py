"""The alert evaluator: a task in the worker that owns ClickHouse, on a timer.

Business rules (``live_gmv_drop``, ``live_no_orders``, ``refund_spike``; ``shop_score_drop``
per Asia/Shanghai day, once the day is complete) run every
``evaluation_interval_s`` over every event-time minute that became complete since the
last run: a minute is complete once the rollups hold every order up to its end
(``RollupScheduler.rolled_up_to_ms``) plus ``grace_minutes`` for late events. Each
minute is judged from the rollups alone, so a replay of a past day judges the same
minutes the same way and fires the same ``alert_id``s; alerts already in ``gmv.alerts``
are not fired or sent again. Late events that arrive after their minute was judged do
not re-judge it.

Pipeline rules run every second on the worker's own counters (wall clock). ``gmv run``
(a replay, behind by design) evaluates business rules only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from gmv.alerts import conditions as c
from gmv.alerts.conditions import Incidents, PipelineSample, Subject, minute_start
from gmv.alerts.delivery import Outlet
from gmv.alerts.model import Alert
from gmv.alerts.rules import BUSINESS_RULES, AlertConfig
from gmv.alerts.store import AlertStore
from gmv.sinks.scores import shanghai_day, shanghai_midnight
from gmv.streams.core.processor import OUTCOMES
from gmv.streams.worker import GmvWorker

log = logging.getLogger("gmv.alerts")

CHUNK_MINUTES = 24 * 60  # minutes judged per read of the rollups (a replay of days reads them in chunks)
MAX_CATCH_UP_MINUTES = 7 * 24 * 60  # how far back the first evaluation of a process judges
SAMPLE_S = 1.0  # pipeline rules: how often the worker's counters are sampled
ONE_DAY = timedelta(days=1)


class AlertEvaluator:
    def __init__(self, config: AlertConfig, worker: GmvWorker, store: AlertStore, outlets: list[Outlet],
                 pipeline_rules: bool = True) -> None:
        self.config = config
        self.worker = worker
        self.store = store
        self.outlets = outlets
        self.pipeline_rules = pipeline_rules
        self.database = store.database
        self.business = Incidents()
        self.pipeline = Incidents()
        self.known: dict[str, Alert] = {}  # business alerts already stored (loaded at the first run)
        self.next_minute: int | None = None  # the first event-time minute not judged yet
        self.next_day: date | None = None  # the first Asia/Shanghai day whose shop scores are not judged yet
        self.fired: list[Alert] = []  # every change this process emitted (the tools' summaries read it)
        self._samples: deque[tuple[float, dict[tuple[str, str], int]]] = deque()
        self._lag_since: float | None = None
        self._last_business = 0.0
        self._to_resume: list[Alert] = []
        self._read_error: Exception | None = None  # a chunk that could not be read in the last run

    # -- business rules ----------------------------------------------------------------------
    def _variants(self, name: str) -> list:
        """A business rule as configured, and as each override of it makes it for its subject."""
        cfg = self.config
        return [getattr(cfg.rules, name), *(cfg.rule_for(name, o.shop_id or "", o.account_id or "")
                                            for o in cfg.overrides if o.rule == name)]

    def _lookback_minutes(self) -> int:
        """How many minutes before a judged minute its windows and baselines reach."""
        return max([r.window_minutes + r.baseline_minutes for r in self._variants("live_gmv_drop")]
                   + [r.minutes + r.warmup_minutes for r in self._variants("live_no_orders")]
                   + [r.window_minutes + r.baseline_minutes for r in self._variants("refund_spike")])

    def _cooldown_minutes(self) -> int:
        return max(r.cooldown_minutes for name in BUSINESS_RULES for r in self._variants(name))

    def complete_through(self, final: bool) -> int | None:
        """The last event-time minute whose rollups are complete (None: nothing stored yet)."""
        watermark = self.worker.scheduler.rolled_up_to_ms
        if watermark <= 0:
            return None
        return watermark // 60_000 - 1 - (0 if final else self.config.grace_minutes)

    def evaluate_business_sync(self, final: bool = False, now: datetime | None = None) -> list[Alert]:
        """Judge every minute that became complete; returns the alert changes to deliver."""
        last = self.complete_through(final)
        if last is None:
            return []
        now = now or datetime.now(UTC)
        earliest = self.worker.scheduler.earliest_minute
        if self.next_minute is None and earliest is not None:
            # From before the earliest minute this process stored (minutes before the data judge to
            # nothing, so a replay judges every minute of its input and fires the same alerts), but
            # at most MAX_CATCH_UP_MINUTES back (a refund of a months-old order is a minute too).
            first = max(int(earliest.timestamp()) // 60 - self._lookback_minutes(), last - MAX_CATCH_UP_MINUTES)
            since = minute_start(first) - timedelta(minutes=self._cooldown_minutes())
            stored = self.store.known(since)  # may raise (ClickHouse away): then nothing has changed yet
            self.known = {a.alert_id: a for a in stored}
            self.business.seed(stored, minute_start(first))
            self._to_resume = [a for a in stored if a.resolved_at is None]  # handed on in the event loop
            self.next_minute = first
            self.next_day = shanghai_day(minute_start(first))
        changes: list[Alert] = []
        try:
            while self.next_minute is not None and self.next_minute <= last:
                first, end = self.next_minute, min(last, self.next_minute + CHUNK_MINUTES - 1)
                lives, shops = self.store.series(first - self._lookback_minutes(), end)
                changes.extend(self._judge(first, end, lives, shops, now))
                self.next_minute = end + 1
            scored = self.worker.scheduler.scored_up_to_ms // 60_000 - 1 - (0 if final else self.config.grace_minutes)
            changes.extend(self._judge_days(min(last, scored), now))
        except Exception as e:  # a later chunk could not be read: deliver what was judged, retry the rest
            self._read_error = e
        return self._new(changes)

    def _judge(self, first: int, end: int, lives: dict[str, c.LiveSeries], shops: dict[str, c.ShopSeries],
               now: datetime) -> list[Alert]:
        """Every business rule for every subject over minutes ``first``..``end``; the changes in time order.

        Subjects are independent, so each walks the minutes on its own. While it has no alert open,
        only the minutes its data can reach are judged (from its first minute with data to its last
        plus the longest window and baseline): elsewhere no rule can hold, so a catch-up over days
        of hundreds of rooms judges only the hours each was on air."""
        cfg, db, reach, out = self.config, self.database, self._lookback_minutes(), []
        subjects: list[tuple[Subject, c.LiveSeries | c.ShopSeries, Callable, str, str]] = []
        for name, judge in (("live_no_orders", c.live_no_orders), ("live_gmv_drop", c.live_gmv_drop)):
            for live_id in sorted(set(lives) | {s.id for s in self.business.open if s.rule == name}):
                live = lives.get(live_id) or c.LiveSeries(live_id)
                subjects.append((Subject(name, "live", live_id), live, judge, live.shop_id, live.account_id))
        for shop_id in sorted(set(shops) | {s.id for s in self.business.open if s.rule == "refund_spike"}):
            subjects.append((Subject("refund_spike", "shop", shop_id), shops.get(shop_id) or c.ShopSeries(shop_id),
                             c.refund_spike, shop_id, ""))
        for subject, series, judge, shop_id, account_id in subjects:
            rule = cfg.rule_for(subject.rule, shop_id, account_id)
            if not getattr(cfg.rules, subject.rule).enabled:
                continue
            labels = (("shop_id", shop_id), ("account_id", account_id)) if subject.kind == "live" else \
                (("shop_id", shop_id),)
            cooldown = timedelta(minutes=rule.cooldown_minutes)
            lo, hi = series.span()
            m = first
            while m <= end:
                if subject not in self.business.open:
                    if m > hi + reach:
                        break
                    m = max(m, lo)
                    if m > end:
                        break
                finding = judge(rule, series, m, db) if rule.enabled else None
                change = self.business.observe(subject, finding, minute_start(m + 1), cooldown, now, rule.severity,
                                               "event", labels)
                if change is not None:
                    out.append(change)
                m += 1
        out.sort(key=lambda a: a.resolved_window_end or a.window_end)  # stable: a subject's changes stay in order
        return out

    def _judge_days(self, last: int, now: datetime) -> list[Alert]:
        """``shop_score_drop`` for every Asia/Shanghai day complete through minute ``last``."""
        if self.next_day is None:
            return []
        last_day = shanghai_day(minute_start(last + 1)) - ONE_DAY  # the latest day ended by then
        if self.next_day > last_day:
            return []
        cfg, out = self.config, []
        scores = self.store.shop_scores(self.next_day - ONE_DAY, last_day)
        day = self.next_day
        while day <= last_day:
            start, end = shanghai_midnight(day), shanghai_midnight(day + ONE_DAY)
            today, before = scores.get(day, {}), scores.get(day - ONE_DAY, {})
            for shop_id in sorted(set(today) | {s.id for s in self.business.open if s.rule == "shop_score_drop"}):
                rule = cfg.rule_for("shop_score_drop", shop_id)
                if not cfg.rules.shop_score_drop.enabled:
                    break
                score = today.get(shop_id)
                finding = None if score is None or not rule.enabled else \
                    c.shop_score_drop(rule, shop_id, start, end, score, before.get(shop_id), self.database)
                change = self.business.observe(Subject("shop_score_drop", "shop", shop_id), finding, end,
                                               timedelta(minutes=rule.cooldown_minutes), now, rule.severity, "event",
                                               (("shop_id", shop_id),))
                if change is not None:
                    out.append(change)
            day += ONE_DAY
        self.next_day = last_day + ONE_DAY
        return out

    def _new(self, changes: list[Alert]) -> list[Alert]:
        """Drop what ``gmv.alerts`` already holds (a replay, a restart): a firing alert already stored,
        a resolution already stored."""
        out = []
        for a in changes:
            stored = self.known.get(a.alert_id)
            if stored is not None and (a.resolved_at is None or stored.resolved_at is not None):
                continue
            self.known[a.alert_id] = a
            out.append(a)
        return out

    # -- pipeline rules ----------------------------------------------------------------------
    def sample(self, now: datetime | None = None) -> PipelineSample:
        w = self.worker
        now = now or datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as gmv.alerts stores it
        mono = time.monotonic()
        counts = dict(w.stats.counters.by_topic)
        self._samples.append((mono, counts))
        window = self.config.rules.dead_letter_rate.window_s
        while len(self._samples) > 1 and self._samples[1][0] <= mono - window:
            self._samples.popleft()
        base = self._samples[0][1]
        dead: dict[str, tuple[int, int]] = {}
        for topic in w.settings.source_topics:
            d = counts.get((topic, "dead_letter"), 0) - base.get((topic, "dead_letter"), 0)
            r = sum(counts.get((topic, o), 0) - base.get((topic, o), 0) for o in OUTCOMES)
            dead[topic] = (d, r)
        oldest = w.stats.take_oldest_read_ms()
        read_age = max(0.0, now.timestamp() - oldest / 1000) if oldest else 0.0
        last_stored = w.stats.last_batch_at
        return PipelineSample(now, w.lag(), read_age, now.timestamp() - last_stored if last_stored else None,
                              w.sink_failing_for(), dead, w.settings.worker_instance_id)

    def evaluate_pipeline(self, s: PipelineSample) -> list[Alert]:
        rules, db, out = self.config.rules, self.database, []

        def observe(name: str, subject: str, finding: c.Finding | None, cooldown_s: float, severity: str) -> None:
            change = self.pipeline.observe(Subject(name, "pipeline", subject), finding, s.now,
                                           timedelta(seconds=cooldown_s), s.now, severity, "wall")
            if change is not None:
                out.append(change)

        if rules.dead_letter_rate.enabled:
            for topic in s.dead_letters:
                observe("dead_letter_rate", topic, c.dead_letter_rate(rules.dead_letter_rate, s, topic, db),
                        rules.dead_letter_rate.cooldown_s, rules.dead_letter_rate.severity)
        if rules.consumer_lag.enabled:
            finding = c.consumer_lag(rules.consumer_lag, s, db)
            if finding is None:
                self._lag_since = None
            else:
                self._lag_since = self._lag_since if self._lag_since is not None else s.now.timestamp()
                if s.now.timestamp() - self._lag_since < rules.consumer_lag.for_s:
                    finding = None  # not held long enough yet
            observe("consumer_lag", s.worker, finding, rules.consumer_lag.cooldown_s, rules.consumer_lag.severity)
        if rules.flush_age.enabled:
            observe("flush_age", s.worker, c.flush_age(rules.flush_age, s, db), rules.flush_age.cooldown_s,
                    rules.flush_age.severity)
        if rules.sink_failing.enabled:
            observe("sink_failing", s.worker, c.sink_failing(rules.sink_failing, s, db),
                    rules.sink_failing.cooldown_s, rules.sink_failing.severity)
        return out

    def status(self) -> dict[str, object]:
        """For ``/gmv/stats/``: what is open, how far business rules have judged, each receiver's queue."""
        judged = None if self.next_minute is None else minute_start(self.next_minute).isoformat()
        return {"open": sorted(f"{s.rule}:{s.id}" for s in (*self.business.open, *self.pipeline.open)),
                "judged_until": judged, "emitted": len(self.fired),
                "receivers": {o.receiver.name: {"queued": len(o.queued), "delivered": o.delivered,
                                                "failures": o.failures, "last_error": o.last_error}
                              for o in self.outlets}}

    # -- running -------------------------------------------------------------------------------
    def emit(self, changes: list[Alert]) -> None:
        for a in changes:
            if a.resolved_at is None:
                log.warning("ALERT %s %s %s/%s: %s (alert_id %s)", a.severity.upper(), a.rule, a.subject_kind,
                            a.subject_id, a.message, a.alert_id)
            else:
                log.warning("RESOLVED %s %s/%s (alert_id %s)", a.rule, a.subject_kind, a.subject_id, a.alert_id)
        self.fired.extend(changes)
        for outlet in self.outlets:
            outlet.put(changes)

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

    async def adopt_open_pipeline_alerts(self) -> None:
        """Pipeline alerts an earlier run of this worker left firing (it stopped or crashed): they
        continue here, and resolve at the first sample that finds them clear."""
        w = self.worker
        subjects = [w.settings.worker_instance_id, *w.settings.source_topics]
        try:
            stored = await asyncio.to_thread(self.store.open_pipeline, subjects)
        except Exception as e:  # ClickHouse away: they stay open until a later start adopts them
            log.warning("could not read the open pipeline alerts (%s); they resolve at a later start", e)
            return
        self.pipeline.seed(stored, datetime.now(UTC))
        self._resume(stored)

    def _resume(self, still_firing: list[Alert]) -> None:
        """Alerts an earlier run left firing go to the receivers that keep state (Alertmanager)
        again, so they stay firing there until they resolve here; the others had them already."""
        for outlet in self.outlets:
            if outlet.receiver.latest_only and still_firing:
                outlet.put(still_firing)

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
        """End of input: judge every minute up to the end of the data, then deliver what is queued
        (for at most ``flush_timeout_s``). True when every receiver took everything."""
        await self.evaluate_business(final=True)
        results = await asyncio.gather(*(o.flush(flush_timeout_s) for o in self.outlets))
        return all(results)

    async def close(self) -> None:
        for o in self.outlets:
            await o.receiver.close()
        await asyncio.to_thread(self.store.close)
