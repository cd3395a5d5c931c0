"""Judging, pure: the business rules over per-minute series of the rollups, the pipeline rules
over samples of the worker's counters; alert changes out.

Everything a judgement depends on is an argument (the series and scores the store read, the
watermarks, the samples, ``now``), and the only state is what was judged already: no store, no
event loop, no clock of their own. So a test judges hand-made series the way the worker judges
the rollups, and a replay of the same facts fires the same ``alert_id``s. ``AlertEvaluator``
(``gmv.alerts.evaluator``) is the task that reads those inputs and delivers the changes.

Business rules (``live_gmv_drop``, ``live_no_orders``, ``refund_spike``; ``shop_score_drop`` per
Asia/Shanghai day, once the day is complete) judge every event-time minute that became complete:
a minute is complete once the rollups hold every order up to its end plus ``grace_minutes`` for
late events. Late events that arrive after their minute was judged do not re-judge it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from gmv.alerts import conditions as c
from gmv.alerts.baselines import History, shifts
from gmv.alerts.conditions import Incidents, PipelineSample, Subject, minute_start
from gmv.alerts.model import Alert
from gmv.alerts.rules import BUSINESS_RULES, AlertConfig, Rules
from gmv.schemas.times import shanghai_day, shanghai_midnight
from gmv.streams.core.processor import OUTCOMES

MAX_CATCH_UP_MINUTES = 7 * 24 * 60  # how far back the first evaluation of a process judges
ONE_DAY = timedelta(days=1)
Counters = Mapping[tuple[str, str], int]  # (source topic, outcome) -> events, as the worker counts them
# One rule for one subject, as the minutes are walked: its subject, its series, its condition, its shop and account.
Walk = tuple[Subject, c.LiveSeries | c.ShopSeries, Callable[..., c.Finding | None], str, str]


def as_stored(now: datetime) -> datetime:
    """``now`` to the millisecond, as ``gmv.alerts`` stores it: an alert read back compares equal."""
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class BusinessJudge:
    """The business rules: which minutes and days are complete, each judged once and in order, and
    which of the resulting changes ``gmv.alerts`` does not hold yet.

    The task calls ``start`` once (with the alerts already stored), then, every run, ``judge_minutes``
    for each chunk ``next_chunk`` gives and ``judge_days`` for what ``days_to_read`` names, and
    delivers what ``new_changes`` keeps."""

    def __init__(self, config: AlertConfig, database: str) -> None:
        self.config = config
        self.database = database  # named in each finding's evidence query
        self.incidents = Incidents()
        self.known: dict[str, Alert] = {}  # alerts stored or emitted: not emitted again
        self.next_minute: int | None = None  # the first event-time minute not judged yet (None: not started)
        self.next_day: date | None = None  # the first Asia/Shanghai day whose shop scores are not judged yet

    # -- what to judge -------------------------------------------------------------------------
    def _variants(self, name: str) -> list[Any]:
        """A business rule as configured, and as each override of it makes it for its subject."""
        cfg = self.config
        return [getattr(cfg.rules, name), *(cfg.rule_for(name, o.shop_id or "", o.account_id or "")
                                            for o in cfg.overrides if o.rule == name)]

    def lookback_minutes(self) -> int:
        """How many minutes before a judged minute its windows and baselines reach."""
        return int(max([r.window_minutes + r.baseline_minutes for r in self._variants("live_gmv_drop")]
                       + [r.minutes + r.warmup_minutes for r in self._variants("live_no_orders")]
                       + [r.window_minutes + r.baseline_minutes for r in self._variants("refund_spike")]))

    def seasonal_shifts(self) -> list[int]:
        """How many minutes back each day (or week) of any rule's seasonal baseline is: the history to read."""
        out: set[int] = set()
        for name in ("live_gmv_drop", "live_no_orders", "refund_spike"):
            if getattr(self.config.rules, name).enabled:
                out.update(s for r in self._variants(name) if r.seasonal for s in shifts(r))
        return sorted(out)

    def history_reach(self) -> tuple[int, int]:
        """How many minutes before a judged minute the seasonal baselines compare, for the live rooms
        (their windows) and for the shops (refund_spike's window and the hour before it, where a day
        counts if the shop sold or refunded)."""
        return (int(max([r.window_minutes for r in self._variants("live_gmv_drop")]
                        + [r.minutes for r in self._variants("live_no_orders")])),
                int(max(r.window_minutes + r.baseline_minutes for r in self._variants("refund_spike"))))

    def cooldown_minutes(self) -> int:
        return int(max(r.cooldown_minutes for name in BUSINESS_RULES for r in self._variants(name)))

    def complete_through(self, watermark_ms: int, final: bool) -> int | None:
        """The last event-time minute complete under a watermark (epoch ms up to which the rollups hold
        every order; None: nothing stored yet). ``final``: the input ended, no late event can come."""
        if watermark_ms <= 0:
            return None
        return watermark_ms // 60_000 - 1 - (0 if final else self.config.grace_minutes)

    @property
    def started(self) -> bool:
        return self.next_minute is not None

    def catch_up_from(self, earliest: datetime, last: int) -> int:
        """The first minute a process judges: from before the earliest minute it stored (minutes
        before the data judge to nothing, so a replay judges every minute of its input and fires the
        same alerts), but at most MAX_CATCH_UP_MINUTES before ``last`` (a refund of a months-old
        order is a minute too)."""
        return max(int(earliest.timestamp()) // 60 - self.lookback_minutes(), last - MAX_CATCH_UP_MINUTES)

    def stored_since(self, first: int) -> datetime:
        """Stored alerts whose window ended since then matter to judging from ``first``: they are not
        emitted again, and their cooldowns reach into it."""
        return minute_start(first) - timedelta(minutes=self.cooldown_minutes())

    def start(self, first: int, stored: list[Alert]) -> list[Alert]:
        """Judge from minute ``first`` on, continuing the stored alerts; returns those still firing
        (the receivers that keep state get them again)."""
        self.known = {a.alert_id: a for a in stored}
        self.incidents.seed(stored, minute_start(first))
        self.next_minute = first
        self.next_day = shanghai_day(minute_start(first))
        return [a for a in stored if a.resolved_at is None]

    def next_chunk(self, last: int, size: int) -> tuple[int, int] | None:
        """The next ``size`` minutes (at most) not judged yet, through ``last``; None when none is left.
        The series for it start ``lookback_minutes`` earlier."""
        if self.next_minute is None or self.next_minute > last:
            return None
        return self.next_minute, min(last, self.next_minute + size - 1)

    # -- minutes -------------------------------------------------------------------------------
    def _walks(self, lives: dict[str, c.LiveSeries], shops: dict[str, c.ShopSeries]) -> list[Walk]:
        """Every rule and subject with data, or with an alert open (which the minutes may resolve)."""
        open_ = self.incidents.open
        out: list[Walk] = []
        for name, judge in (("live_no_orders", c.live_no_orders), ("live_gmv_drop", c.live_gmv_drop)):
            for live_id in sorted(set(lives) | {s.id for s in open_ if s.rule == name}):
                live = lives.get(live_id) or c.LiveSeries(live_id)
                out.append((Subject(name, "live", live_id), live, judge, live.shop_id, live.account_id))
        for shop_id in sorted(set(shops) | {s.id for s in open_ if s.rule == "refund_spike"}):
            out.append((Subject("refund_spike", "shop", shop_id), shops.get(shop_id) or c.ShopSeries(shop_id),
                        c.refund_spike, shop_id, ""))
        return out

    def seasonal_subjects(self, first: int, end: int, lives: dict[str, c.LiveSeries], shops: dict[str, c.ShopSeries]
                          ) -> tuple[set[str], set[str]]:
        """The anchors (of live rooms) and shops whose seasonal history judging minutes ``first``..``end``
        needs: those where a seasonal rule's window is unusual against the recent past in some minute
        (elsewhere no rule fires whatever the days before say), so that an evaluation reads the
        history of a few subjects, not of every room on air. Changes nothing."""
        cfg, accounts, shop_ids = self.config, set(), set()
        for subject, series, judge, shop_id, account_id in self._walks(lives, shops):
            rule = cfg.rule_for(subject.rule, shop_id, account_id)
            if not (getattr(cfg.rules, subject.rule).enabled and rule.enabled and rule.seasonal):
                continue
            lo, hi = series.span()
            for m in range(max(first, lo), min(end, hi + self.lookback_minutes()) + 1):
                if judge(rule, series, m, self.database) is not None:
                    (accounts if subject.kind == "live" else shop_ids).add(account_id if subject.kind == "live"
                                                                           else shop_id)
                    break
        return accounts, shop_ids

    def judge_minutes(self, first: int, end: int, lives: dict[str, c.LiveSeries], shops: dict[str, c.ShopSeries],
                      now: datetime, history: History | None = None) -> list[Alert]:
        """Every business rule for every subject over minutes ``first``..``end`` (the series reaching
        ``lookback_minutes`` before ``first``); the changes in time order. Minutes after ``end`` are next.
        ``history``: the same minutes on the days of the seasonal baselines (``seasonal_shifts``); without
        it, the rules judge as without baselines and their alerts say so.

        Subjects are independent, so each walks the minutes on its own. While it has no alert open,
        only the minutes its data can reach are judged (from its first minute with data to its last
        plus the longest window and baseline): elsewhere no rule can hold, so a catch-up over days
        of hundreds of rooms judges only the hours each was on air."""
        cfg, reach = self.config, self.lookback_minutes()
        out: list[Alert] = []
        for subject, series, judge, shop_id, account_id in self._walks(lives, shops):
            rule = cfg.rule_for(subject.rule, shop_id, account_id)
            if not getattr(cfg.rules, subject.rule).enabled:
                continue
            labels = (("shop_id", shop_id), ("account_id", account_id)) if subject.kind == "live" else \
                (("shop_id", shop_id),)
            cooldown = timedelta(minutes=rule.cooldown_minutes)
            past = None if history is None else \
                history.view(*(("account", account_id) if subject.kind == "live" else ("shop", shop_id)))
            lo, hi = series.span()
            m = first
            while m <= end:
                if subject not in self.incidents.open:
                    if m > hi + reach:
                        break
                    m = max(m, lo)
                    if m > end:
                        break
                finding = judge(rule, series, m, self.database, past) if rule.enabled else None
                change = self.incidents.observe(subject, finding, minute_start(m + 1), cooldown, now, rule.severity,
                                                "event", labels)
                if change is not None:
                    out.append(change)
                m += 1
        self.next_minute = end + 1
        out.sort(key=lambda a: a.resolved_window_end or a.window_end)  # stable: a subject's changes stay in order
        return out

    # -- days ----------------------------------------------------------------------------------
    def _last_day(self, last: int) -> date:
        """The latest Asia/Shanghai day ended by the end of minute ``last``."""
        return shanghai_day(minute_start(last + 1)) - ONE_DAY

    def days_to_read(self, last: int) -> tuple[date, date] | None:
        """The days whose shop scores judging the days complete through minute ``last`` needs (from
        the day before the first, its comparison); None when no day is due."""
        if self.next_day is None or self.next_day > self._last_day(last):
            return None
        return self.next_day - ONE_DAY, self._last_day(last)

    def judge_days(self, last: int, scores: Mapping[date, Mapping[str, float]], now: datetime) -> list[Alert]:
        """``shop_score_drop`` for every day complete through minute ``last`` (``scores``: per day, each
        shop's 商号体验分, as ``days_to_read`` asked for)."""
        due = self.days_to_read(last)
        if due is None:
            return []
        cfg = self.config
        out: list[Alert] = []
        day, last_day = due[0] + ONE_DAY, due[1]
        while day <= last_day:
            start, end = shanghai_midnight(day), shanghai_midnight(day + ONE_DAY)
            today, before = scores.get(day, {}), scores.get(day - ONE_DAY, {})
            for shop_id in sorted(set(today) | {s.id for s in self.incidents.open if s.rule == "shop_score_drop"}):
                rule = cfg.rule_for("shop_score_drop", shop_id)
                if not cfg.rules.shop_score_drop.enabled:
                    break
                score = today.get(shop_id)
                finding = None if score is None or not rule.enabled else \
                    c.shop_score_drop(rule, shop_id, start, end, score, before.get(shop_id), self.database)
                change = self.incidents.observe(Subject("shop_score_drop", "shop", shop_id), finding, end,
                                                timedelta(minutes=rule.cooldown_minutes), now, rule.severity, "event",
                                                (("shop_id", shop_id),))
                if change is not None:
                    out.append(change)
            day += ONE_DAY
        self.next_day = last_day + ONE_DAY
        return out

    def new_changes(self, changes: Iterable[Alert]) -> list[Alert]:
        """Drop what ``gmv.alerts`` already holds (a replay, a restart): a firing alert already stored,
        a resolution already stored. What is kept counts as known from now on."""
        out: list[Alert] = []
        for a in changes:
            stored = self.known.get(a.alert_id)
            if stored is not None and (a.resolved_at is None or stored.resolved_at is not None):
                continue
            self.known[a.alert_id] = a
            out.append(a)
        return out


class PipelineJudge:
    """The pipeline rules, on the wall clock: each sample of the worker's counters judged at once."""

    def __init__(self, rules: Rules, database: str) -> None:
        self.rules = rules
        self.database = database  # named in each finding's evidence query
        self.incidents = Incidents()
        self._counts: deque[tuple[float, dict[tuple[str, str], int]]] = deque()  # (monotonic time, counters)
        self._lag_since: float | None = None  # when consumer_lag's condition began to hold (epoch s)

    def dead_letters(self, mono: float, counters: Counters, topics: Iterable[str]) -> dict[str, tuple[int, int]]:
        """Per source topic, (dead-lettered, received) over the ``dead_letter_rate`` window ending at
        monotonic time ``mono``: these counters less the oldest kept that is still in the window."""
        counts = dict(counters)  # kept as the base of later windows: a copy the caller cannot change
        self._counts.append((mono, counts))
        window = self.rules.dead_letter_rate.window_s
        while len(self._counts) > 1 and self._counts[1][0] <= mono - window:
            self._counts.popleft()
        base = self._counts[0][1]
        dead: dict[str, tuple[int, int]] = {}
        for topic in topics:
            d = counts.get((topic, "dead_letter"), 0) - base.get((topic, "dead_letter"), 0)
            r = sum(counts.get((topic, o), 0) - base.get((topic, o), 0) for o in OUTCOMES)
            dead[topic] = (d, r)
        return dead

    def judge(self, s: PipelineSample) -> list[Alert]:
        """Every enabled pipeline rule on one sample; the alerts it fires and resolves."""
        rules, db = self.rules, self.database
        out: list[Alert] = []

        def observe(name: str, subject: str, finding: c.Finding | None, cooldown_s: float, severity: str) -> None:
            change = self.incidents.observe(Subject(name, "pipeline", subject), finding, s.now,
                                            timedelta(seconds=cooldown_s), s.now, severity, "wall")
            if change is not None:
                out.append(change)

        if rules.dead_letter_rate.enabled:
            for topic in s.dead_letters:
                observe("dead_letter_rate", topic, c.dead_letter_rate(rules.dead_letter_rate, s, topic, db),
                        rules.dead_letter_rate.cooldown_s, rules.dead_letter_rate.severity)
        if rules.consumer_lag.enabled:
            observe("consumer_lag", s.worker, self._held_lag(s), rules.consumer_lag.cooldown_s,
                    rules.consumer_lag.severity)
        if rules.flush_age.enabled:
            observe("flush_age", s.worker, c.flush_age(rules.flush_age, s, db), rules.flush_age.cooldown_s,
                    rules.flush_age.severity)
        if rules.sink_failing.enabled:
            observe("sink_failing", s.worker, c.sink_failing(rules.sink_failing, s, db),
                    rules.sink_failing.cooldown_s, rules.sink_failing.severity)
        return out

    def _held_lag(self, s: PipelineSample) -> c.Finding | None:
        """``consumer_lag``'s finding once its condition has held ``for_s`` (a burst that the worker
        reads away at once is no incident); any sample without it starts the wait again."""
        finding = c.consumer_lag(self.rules.consumer_lag, s, self.database)
        if finding is None:
            self._lag_since = None
            return None
        if self._lag_since is None:
            self._lag_since = s.now.timestamp()
        if s.now.timestamp() - self._lag_since < self.rules.consumer_lag.for_s:
            return None  # not held long enough yet
        return finding

    def adopt(self, stored: list[Alert], now: datetime) -> None:
        """Continue the alerts an earlier run of this worker left firing: they resolve at the first
        sample that finds them clear."""
        self.incidents.seed(stored, now)

    def resolve_all(self, now: datetime) -> list[Alert]:
        """Every open pipeline alert resolved at ``now`` (the worker stops: they say nothing about a
        worker that no longer runs)."""
        out: list[Alert] = []
        for subject, alert in list(self.incidents.open.items()):
            del self.incidents.open[subject]
            out.append(alert.resolved(now, now))
        return out
