"""The rules' conditions, and incidents: fire once, stay quiet while true, resolve when clear. Pure.

Business rules look at one event-time minute ``m`` at a time (epoch minutes; the window ends
at the end of ``m``), over per-minute series read from the rollups, so the same facts give
the same findings whenever they are evaluated. Pipeline rules look at a ``PipelineSample``
of the worker's own counters on the wall clock.

``Incidents`` turns findings into alerts. For one rule and subject: a finding while no alert
is open fires one, unless the previous one fired less than the rule's cooldown before; while
findings continue the open alert stays open (it is not fired again); the first evaluation
without a finding resolves it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gmv.alerts.baselines import Cumulative, Past, SeasonalParams, Verdict, compare, shifts
from gmv.alerts.model import SHANGHAI, Alert, Evidence, shanghai_minute
from gmv.alerts.rules import (
    ConsumerLag,
    DeadLetterRate,
    FlushAge,
    LiveGmvDrop,
    LiveNoOrders,
    RefundSpike,
    ShopScoreDrop,
    SinkFailing,
)

MINUTE = timedelta(minutes=1)


def minute_start(m: int) -> datetime:
    return datetime.fromtimestamp(m * 60, tz=UTC)


class _Series:
    """Per-minute series (dicts of epoch minute -> value) with window sums. Build the series
    first: the sums are computed on first use."""

    def total(self, name: str, first: int, last: int) -> int:
        cache: dict[str, Cumulative] = self.__dict__.setdefault("_cumulative", {})
        if name not in cache:
            cache[name] = Cumulative(getattr(self, name))
        return cache[name].sum(first, last)

    def span(self) -> tuple[int, int]:
        """The first and last minute holding data in any series (an empty span when none does)."""
        minutes = [m for v in vars(self).values() if isinstance(v, dict) and v and isinstance(next(iter(v)), int)
                   for m in (min(v), max(v))]
        return (min(minutes), max(minutes)) if minutes else (1, 0)


@dataclass
class LiveSeries(_Series):
    """One live room, per event-time minute: enters (funnel_minute) and what was paid in it (content_minute)."""

    live_id: str
    shop_id: str = ""
    account_id: str = ""
    enters: dict[int, int] = field(default_factory=dict)
    gmv_fen: dict[int, int] = field(default_factory=dict)
    orders: dict[int, int] = field(default_factory=dict)


@dataclass
class ShopSeries(_Series):
    """One shop, per event-time minute: paid GMV and refunds (gmv_minute, last_touch)."""

    shop_id: str
    gmv_fen: dict[int, int] = field(default_factory=dict)
    refund_fen: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """A rule's condition holds: what it measured, over which window, and the words for it."""

    value: float
    threshold: float
    window_start: datetime
    window_end: datetime
    message: str
    evidence: Evidence


def _yuan(fen: float) -> str:
    return f"¥{fen / 100:,.0f}"


def _span(first: int, last: int) -> str:
    return f"{shanghai_minute(minute_start(first))}–{shanghai_minute(minute_start(last + 1))[-5:]} CST"


def _live_evidence(db: str, live: LiveSeries, first: int, last: int) -> Evidence:
    """The room's minutes in Asia/Shanghai time, as the alert's message names them."""
    return Evidence(
        "SELECT toTimeZone(f.minute, 'Asia/Shanghai') AS minute_cst, f.enters, g.orders, g.gmv_fen FROM "
        "(SELECT minute, sum(live_enters) AS enters FROM {db:Identifier}.funnel_minute WHERE stage = 'live' "
        "AND content_id = {live_id:String} AND minute >= {from:DateTime('Asia/Shanghai')} "
        "AND minute < {to:DateTime('Asia/Shanghai')} GROUP BY minute) AS f LEFT JOIN "
        "(SELECT minute, sum(orders) AS orders, sum(gmv_fen) AS gmv_fen FROM {db:Identifier}.content_minute "
        "WHERE channel = 'live' AND content_id = {live_id:String} GROUP BY minute) AS g USING minute "
        "ORDER BY minute_cst",
        {"db": db, "live_id": live.live_id, "from": _param_cst(minute_start(first)),
         "to": _param_cst(minute_start(last + 1))})


def _param_cst(t: datetime) -> str:
    """A query parameter for a DateTime('Asia/Shanghai') placeholder: the time as the message says it."""
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


# -- seasonal baselines (gmv.alerts.baselines) ----------------------------------------------------
# What one subject's window looked like on each day of its baseline, one row per day and today's
# last: ``periods_ago`` 0 is the window judged. ``{inner}`` selects ``minute`` and the columns summed.
_SEASONAL_EVIDENCE = (
    "SELECT intDiv({{end_s:Int64}} - 1 - toInt64(toUInt32(minute)), {{period_s:Int64}}) AS periods_ago, "
    "toTimeZone(min(minute), 'Asia/Shanghai') AS window_start_cst, {sums} FROM ({inner}) "
    "WHERE positiveModulo(toInt64(toUInt32(minute)) - {{from_s:Int64}}, {{period_s:Int64}}) < {{window_s:Int64}} "
    "GROUP BY periods_ago ORDER BY periods_ago DESC")
_RANGE = "minute >= {since:DateTime('Asia/Shanghai')} AND minute < {to:DateTime('Asia/Shanghai')}"
_LIVE_DAYS = _SEASONAL_EVIDENCE.format(
    sums="sum(enters) AS enters, sum(orders) AS orders, sum(gmv_fen) AS gmv_fen",
    inner="SELECT minute, live_enters AS enters, toUInt64(0) AS orders, toInt64(0) AS gmv_fen "
          "FROM {db:Identifier}.funnel_minute WHERE stage = 'live' AND account_id = {account:String} AND " + _RANGE
          + " UNION ALL SELECT minute, toUInt64(0), orders, gmv_fen FROM {db:Identifier}.content_minute "
          "WHERE channel = 'live' AND seller_id = {account:String} AND " + _RANGE)
_SHOP_DAYS = _SEASONAL_EVIDENCE.format(
    sums="sum(gmv_fen) AS gmv_fen, sum(refund_fen) AS refund_fen, sum(refunds) AS refunds",
    inner="SELECT minute, gmv_fen, refund_fen, refunds FROM {db:Identifier}.gmv_minute "
          "WHERE model = 'last_touch' AND shop_id = {shop_id:String} AND " + _RANGE)


def _seasonal(rule: SeasonalParams, past: Past | None, value: float, day: Callable[[Past, int], float | None],
              direction: str) -> Verdict | None:
    """The window against the same minutes of the days before (None: the rule has no seasonal baseline)."""
    if not rule.seasonal:
        return None
    days = [None if past is None else day(past, s) for s in shifts(rule)]
    return compare(rule, value, days, "low" if direction == "low" else "high")


def _days_evidence(sql: str, db: str, rule: SeasonalParams, first: int, m: int, **subject: str) -> Evidence:
    back = shifts(rule)
    return Evidence(sql, {"db": db, **subject, "since": _param_cst(minute_start(first - back[-1])),
                          "to": _param_cst(minute_start(m + 1)), "end_s": str((m + 1) * 60),
                          "from_s": str(first * 60), "period_s": str(back[0] * 60),
                          "window_s": str((m - first + 1) * 60)})


def _judged(verdict: Verdict | None) -> bool:
    """The evidence shows the days when they judged the window (else the minutes, as without baselines)."""
    return verdict is not None and verdict.judged


def _with(verdict: Verdict | None, rule: SeasonalParams, fmt: Callable[[float], str]) -> str:
    return "" if verdict is None else f"; {verdict.describe(fmt, rule.seasonal_weekly)}"


def live_no_orders(rule: LiveNoOrders, live: LiveSeries, m: int, db: str, past: Past | None = None) -> Finding | None:
    first = m - rule.minutes + 1
    if not live.enters or live.total("enters", -(1 << 40), first - rule.warmup_minutes) == 0:
        return None  # no viewer yet by then: the room was not on air long enough
    enters = live.total("enters", first, m)
    orders = live.total("orders", first, m)
    if enters < rule.min_viewers or orders > 0:
        return None
    # a day counts when the room had as many viewers in these minutes: a warm-up without orders is its routine
    verdict = _seasonal(rule, past, 0, lambda p, s: p.total(s, "orders", first, m)
                        if p.total(s, "enters", first, m) >= rule.min_viewers else None, "low")
    if verdict is not None and verdict.quiet:
        return None
    return Finding(0, 1, minute_start(first), minute_start(m + 1),
                   f"live {live.live_id} (shop {live.shop_id}, anchor {live.account_id}): no paid order in "
                   f"{rule.minutes} min ({_span(first, m)}) while {enters} viewers entered"
                   + _with(verdict, rule, lambda v: f"{v:g} orders")
                   + "; check the room's product links, stock and checkout",
                   _days_evidence(_LIVE_DAYS, db, rule, first, m, account=live.account_id) if _judged(verdict)
                   else _live_evidence(db, live, first - rule.warmup_minutes, m))


def live_gmv_drop(rule: LiveGmvDrop, live: LiveSeries, m: int, db: str, past: Past | None = None) -> Finding | None:
    first = m - rule.window_minutes + 1
    base_first = first - rule.baseline_minutes
    base_gmv = live.total("gmv_fen", base_first, first - 1) / rule.baseline_minutes
    if base_gmv <= 0 or base_gmv < rule.min_baseline_fen_per_minute:
        return None
    gmv = live.total("gmv_fen", first, m) / rule.window_minutes
    enters = live.total("enters", first, m) / rule.window_minutes
    base_enters = live.total("enters", base_first, first - 1) / rule.baseline_minutes
    drop = 100.0 * (1 - gmv / base_gmv)
    if drop < rule.drop_pct or enters <= 0 or enters < rule.viewers_hold_pct / 100 * base_enters:
        return None
    # a day counts when the room was on air in these minutes: GMV falling back after a daily flash sale is routine
    verdict = _seasonal(rule, past, gmv, lambda p, s: p.total(s, "gmv_fen", first, m) / rule.window_minutes
                        if p.total(s, "enters", first, m) > 0 else None, "low")
    if verdict is not None and verdict.quiet:
        return None
    return Finding(round(drop, 2), rule.drop_pct, minute_start(first), minute_start(m + 1),
                   f"live {live.live_id} (shop {live.shop_id}, anchor {live.account_id}): GMV {_yuan(gmv)}/min in "
                   f"{_span(first, m)}, {drop:.0f}% below its {_yuan(base_gmv)}/min of the {rule.baseline_minutes} "
                   f"min before, while viewers held ({enters:.0f}/min against {base_enters:.0f}/min)"
                   + _with(verdict, rule, lambda v: f"{_yuan(v)}/min")
                   + "; check the product on sale, its price and stock",
                   _days_evidence(_LIVE_DAYS, db, rule, first, m, account=live.account_id) if _judged(verdict)
                   else _live_evidence(db, live, base_first, m))


def refund_spike(rule: RefundSpike, shop: ShopSeries, m: int, db: str, past: Past | None = None) -> Finding | None:
    first = m - rule.window_minutes + 1
    base_first = first - rule.baseline_minutes
    refunds = shop.total("refund_fen", first, m)
    if refunds < rule.min_refund_fen:
        return None
    base = shop.total("refund_fen", base_first, first - 1) / rule.baseline_minutes * rule.window_minutes
    gmv = shop.total("gmv_fen", first, m)
    over_baseline = refunds >= rule.factor * base
    over_rate = rule.max_refund_rate < 1 and gmv > 0 and refunds / gmv >= rule.max_refund_rate
    if not (over_baseline or over_rate):
        return None
    # a day counts when the shop sold or refunded around these minutes: a morning refund batch is routine
    verdict = _seasonal(rule, past, refunds, lambda p, s: p.total(s, "refund_fen", first, m)
                        if p.total(s, "gmv_fen", base_first, m) or p.total(s, "refund_fen", base_first, m)
                        else None, "high")
    if verdict is not None and verdict.quiet:
        return None
    return Finding(refunds, max(float(rule.min_refund_fen), rule.factor * base), minute_start(first),
                   minute_start(m + 1),
                   f"shop {shop.shop_id}: {_yuan(refunds)} refunded in {rule.window_minutes} min ({_span(first, m)}), "
                   + (f"{refunds / base:.1f}x its usual {_yuan(base)}" if base else
                      f"with none in the {rule.baseline_minutes} min before")
                   + (f", {refunds / gmv:.0%} of the GMV paid meanwhile" if gmv else ", with no GMV paid meanwhile")
                   + _with(verdict, rule, _yuan)
                   + "; check the refund reasons of its latest orders",
                   _days_evidence(_SHOP_DAYS, db, rule, first, m, shop_id=shop.shop_id) if _judged(verdict) else
                   Evidence(
                       "SELECT toTimeZone(minute, 'Asia/Shanghai') AS minute_cst, sum(gmv_fen) AS gmv_fen, "
                       "sum(refund_fen) AS refund_fen, sum(refunds) AS refunds FROM {db:Identifier}.gmv_minute "
                       "WHERE model = 'last_touch' AND shop_id = {shop_id:String} "
                       "AND minute >= {from:DateTime('Asia/Shanghai')} AND minute < {to:DateTime('Asia/Shanghai')} "
                       "GROUP BY minute_cst ORDER BY minute_cst",
                       {"db": db, "shop_id": shop.shop_id, "from": _param_cst(minute_start(base_first)),
                        "to": _param_cst(minute_start(m + 1))}))


def shop_score_drop(rule: ShopScoreDrop, shop_id: str, day_start: datetime, day_end: datetime, score: float,
                    before: float | None, db: str) -> Finding | None:
    """One shop's 商号体验分 of one complete day (``before``: the day before's, None if it had none)."""
    low = score < rule.min_score
    drop = None if before is None else before - score
    fell = drop is not None and drop > rule.max_drop
    if not (low or fell):
        return None
    day = day_start.astimezone(SHANGHAI).date().isoformat()
    why = []
    if low:
        why.append(f"{score:.2f} is below {rule.min_score:.2f}")
    if fell:
        why.append(f"it fell {drop:.2f} in a day (from {before:.2f})")
    return Finding(round(score, 6), rule.min_score if low else round(before - rule.max_drop, 6), day_start, day_end,
                   f"shop {shop_id}: 商号体验分 {score:.2f} on {day} ({'; '.join(why)}); see why with "
                   f"gmv scores --shop {shop_id} --day {day}: reviews, quality refunds and service response times",
                   Evidence("SELECT day, score, reviews, qrr, turns, fast, within_3min, product_part, service_part, "
                            "logistics_part FROM {db:Identifier}.trust_scores WHERE subject_kind = 'shop' "
                            "AND subject_id = {shop_id:String} AND day <= {day:Date} ORDER BY day DESC LIMIT 7",
                            {"db": db, "shop_id": shop_id, "day": day}))


# -- pipeline rules (wall clock) ----------------------------------------------------------------
@dataclass(frozen=True)
class PipelineSample:
    """What the worker reports at one wall-clock instant."""

    now: datetime
    lag_messages: int
    max_read_age_s: float  # oldest data read since the previous sample: now - its Kafka timestamp
    stored_age_s: float | None  # since the last batch was stored (None: none yet)
    sink_failing_s: float | None
    dead_letters: dict[str, tuple[int, int]]  # source topic -> (dead-lettered, received) over the rule's window
    worker: str


def _pipeline_evidence(db: str, since: datetime, until: datetime) -> Evidence:
    """What the worker stored over the alert's wall-clock window (bounded: the same rows whenever it runs)."""
    return Evidence("SELECT source_topic, outcome, count() AS n, "
                    "toTimeZone(min(logged_at), 'Asia/Shanghai') AS first_cst, "
                    "toTimeZone(max(logged_at), 'Asia/Shanghai') AS last_cst FROM {db:Identifier}.ingest_log "
                    "WHERE logged_at >= {since:DateTime64(3, 'Asia/Shanghai')} "
                    "AND logged_at <= {until:DateTime64(3, 'Asia/Shanghai')} "
                    "GROUP BY source_topic, outcome ORDER BY source_topic, outcome",
                    {"db": db, "since": _param_cst_ms(since), "until": _param_cst_ms(until)})


def _param_cst_ms(t: datetime) -> str:
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _lag_evidence(db: str, s: PipelineSample, since: datetime) -> Evidence:
    """The lag as measured (ClickHouse holds no Kafka timestamps, so the measurement comes as
    parameters) beside what the worker stored every 5 s from the start of the lag until a minute
    after: how it fell behind and how it caught up. Times Asia/Shanghai."""
    return Evidence("SELECT toTimeZone(toStartOfInterval(logged_at, INTERVAL 5 SECOND), 'Asia/Shanghai') AS at_cst, "
                    "count() AS messages_stored, {read_age_s:Float64} AS data_age_s_at_alert, "
                    "{waiting:UInt64} AS messages_waiting_at_alert FROM {db:Identifier}.ingest_log "
                    "WHERE logged_at >= {since:DateTime64(3, 'Asia/Shanghai')} "
                    "AND logged_at < {until:DateTime64(3, 'Asia/Shanghai')} GROUP BY at_cst ORDER BY at_cst",
                    {"db": db, "read_age_s": f"{s.max_read_age_s:.1f}", "waiting": str(max(s.lag_messages, 0)),
                     "since": _param_cst_ms(since), "until": _param_cst_ms(s.now + timedelta(minutes=1))})


def dead_letter_rate(rule: DeadLetterRate, s: PipelineSample, topic: str, db: str) -> Finding | None:
    dead, received = s.dead_letters.get(topic, (0, 0))
    if dead < rule.min_count or received == 0 or dead / received < rule.max_share:
        return None
    since = s.now - timedelta(seconds=rule.window_s)
    return Finding(dead, rule.min_count, since, s.now,
                   f"{topic}: {dead:,} dead letters in the last {rule.window_s:.0f}s ({dead / received:.1%} of "
                   f"{received:,} received); see gmv.dead_letters for the reasons and fix the producer",
                   Evidence("SELECT reason_code, count() AS n, any(reason) AS example FROM {db:Identifier}.dead_letters "
                            "WHERE source_topic = {topic:String} "
                            "AND received_at >= {since:DateTime64(3, 'Asia/Shanghai')} "
                            "AND received_at <= {until:DateTime64(3, 'Asia/Shanghai')} "
                            "GROUP BY reason_code ORDER BY n DESC",
                            {"db": db, "topic": topic, "since": _param_cst_ms(since), "until": _param_cst_ms(s.now)}))


def consumer_lag(rule: ConsumerLag, s: PipelineSample, db: str) -> Finding | None:
    """Behind by time (the oldest data read since the last sample, by its Kafka timestamp: however
    briefly, the dashboard was that stale) or by messages waiting."""
    if not (s.max_read_age_s > rule.max_age_s or s.lag_messages > rule.max_messages):
        return None
    since = s.now - timedelta(seconds=max(s.max_read_age_s, 1.0))
    return Finding(round(s.max_read_age_s, 1), rule.max_age_s, since, s.now,
                   f"worker {s.worker} is behind: it read data {s.max_read_age_s:.0f}s old (Kafka timestamps) with "
                   f"{s.lag_messages:,} messages waiting, so the dashboard lags that much. If the lag grows, add "
                   "workers (up to the partition count) or look for a slow ClickHouse; if it does not, the "
                   "producers sent late",
                   _lag_evidence(db, s, since))


def flush_age(rule: FlushAge, s: PipelineSample, db: str) -> Finding | None:
    if s.stored_age_s is None or s.stored_age_s <= rule.max_s or s.lag_messages == 0:
        return None
    since = s.now - timedelta(seconds=s.stored_age_s)
    return Finding(round(s.stored_age_s, 1), rule.max_s, since, s.now,
                   f"worker {s.worker} stored nothing for {s.stored_age_s:.0f}s while {s.lag_messages:,} messages "
                   "wait; check its log and ClickHouse", _pipeline_evidence(db, since, s.now))


def sink_failing(rule: SinkFailing, s: PipelineSample, db: str) -> Finding | None:
    if s.sink_failing_s is None or s.sink_failing_s <= rule.max_s:
        return None
    since = s.now - timedelta(seconds=s.sink_failing_s)
    return Finding(round(s.sink_failing_s, 1), rule.max_s, since, s.now,
                   f"worker {s.worker}: ClickHouse writes failing for {s.sink_failing_s:.0f}s; offsets wait "
                   "(nothing is lost); check the ClickHouse server and GMV_CLICKHOUSE_DSN",
                   _pipeline_evidence(db, since, s.now))


# -- incidents ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Subject:
    rule: str
    kind: str  # live | shop | account | pipeline
    id: str


class Incidents:
    """Open alerts and the last firing per rule and subject; ``observe`` returns what changed."""

    def __init__(self) -> None:
        self.open: dict[Subject, Alert] = {}
        self.last_fired: dict[Subject, datetime] = {}  # the fired alert's window_end

    def seed(self, alerts: Iterable[Alert], before: datetime) -> None:
        """Continue from stored alerts: those that fired before ``before`` (open ones stay open)."""
        for a in sorted(alerts, key=lambda a: a.window_end):
            if a.window_end > before:
                continue
            subject = Subject(a.rule, a.subject_kind, a.subject_id)
            self.last_fired[subject] = a.window_end
            if a.resolved_at is None:
                self.open[subject] = a
            else:
                self.open.pop(subject, None)

    def observe(self, subject: Subject, finding: Finding | None, at: datetime, cooldown: timedelta,
                now: datetime, severity: str, clock: str, labels: tuple[tuple[str, str], ...] = ()) -> Alert | None:
        """One evaluation of one rule for one subject, whose window ends ``at``."""
        current = self.open.get(subject)
        if finding is None:
            if current is None:
                return None
            del self.open[subject]
            return current.resolved(now, at)
        if current is not None:
            return None  # still true: the incident is already alerted
        last = self.last_fired.get(subject)
        if last is not None and finding.window_end - last < cooldown:
            return None
        alert = Alert(subject.rule, severity, subject.kind, subject.id, finding.value, finding.threshold,
                      finding.window_start, finding.window_end, clock, now, finding.message, finding.evidence,
                      labels)
        self.open[subject] = alert
        self.last_fired[subject] = finding.window_end
        return alert
