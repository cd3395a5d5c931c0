"""``gmv reconcile TRUTH.json``: the simulator's ground truth against what ClickHouse holds.

Three comparisons, each a line that says MATCH or MISMATCH (and, on a mismatch, which cells):

- credits: net GMV in fen per attribution model and stage, of the story's events (their
  ``event_id`` starts with the story's prefix, ``<scenario[:3]><seed>-``), to the fen;
- trust scores: every ``gmv.trust_scores`` row against the expected scores, to 1e-9;
- the markov model: every removal effect and P of ``gmv.markov_model`` against the simulator's, to
  1e-9, and the journeys and conversions behind them, exactly;
- alerts: every alert the truth expects (its incidents sent in full) fired once for its rule and
  subject; another alert of an event-time rule the story plans incidents for is a mismatch too,
  since the same facts always judge the same way. Alerts of the other rules are listed, not
  compared: pipeline rules run on the wall clock (a slow machine can lag), and a rule the story
  plans no incident for may still hold by design (``shop_score_drop`` for a shop whose buyers the
  simulator makes unhappy). A story whose first days build the seasonal baselines' history (its
  truth's ``alerts_judged_from_ms``, the routines preset) is compared from then on; event-time
  alerts that ended before are counted apart.

``gmv demo`` prints these lines at its end; ``gmv reconcile`` prints them for a truth file written
by ``gmv simulate --truth`` once ``gmv run`` or a worker has stored the same events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gmv.schemas.errors import ConfigurationError, NotFound
from gmv.schemas.events import TOPIC_NAMES
from gmv.schemas.outputs import MODELS, STAGES

Sql = Callable[[str, dict[str, Any]], bytes]  # (query, parameters) -> TSV

CREDITS_SQL = ("SELECT model, stage, toInt64(sum(credit_fen)) AS net_fen FROM {db:Identifier}.attributed_gmv "
               "WHERE startsWith(event_id, {prefix:String}) GROUP BY model, stage")
SCORES_SQL = ("SELECT toString(day), subject_kind, subject_id, score FROM {db:Identifier}.trust_scores "
              "ORDER BY day, subject_kind, subject_id")
ALERTS_SQL = ("SELECT rule, subject_kind, subject_id, clock, toUnixTimestamp64Milli(window_end) FROM {db:Identifier}.alerts "
              "ORDER BY fired_at, alert_id")
MARKOV_SQL = ("SELECT toString(day), shop_id, stage, removal_effect, p_conv, journeys, conversions "
              "FROM {db:Identifier}.markov_model ORDER BY day, shop_id, stage")
SCORE_TOLERANCE = 1e-9


def story_prefix(truth: dict[str, Any]) -> str:
    """The prefix of every event_id of a simulated story (``World.prefix``)."""
    return f"{truth['scenario'][:3]}{truth['seed']}-"


def _fen(n: int) -> str:
    return f"{n:,}"


@dataclass
class Reconciliation:
    """Net GMV per model and stage: the truth against ``gmv.attributed_gmv``."""

    truth: dict[str, dict[str, int]]
    clickhouse: dict[str, dict[str, int]]

    def mismatches(self) -> list[str]:
        out = []
        for m in MODELS:
            for s in STAGES:
                t, c = self.truth.get(m, {}).get(s, 0), self.clickhouse.get(m, {}).get(s, 0)
                if t != c:
                    out.append(f"{m}/{s}: truth {_fen(t)} fen, ClickHouse {_fen(c)} fen (diff {c - t:+,d})")
        return out

    def line(self) -> str:
        t = sum(self.truth.get("last_touch", {}).values())
        c = sum(self.clickhouse.get("last_touch", {}).values())
        bad = self.mismatches()
        verdict = "MATCH" if not bad else f"MISMATCH in {len(bad)} cells"
        return (f"reconciliation: {verdict}: net GMV truth={t} fen clickhouse={c} fen diff={c - t} fen "
                f"({len(MODELS)} models x {len(STAGES)} stages compared to the fen)")


@dataclass
class ScoreReconciliation:
    """Every trust score of ``gmv.trust_scores`` against the simulator's ground truth."""

    truth: dict[tuple[str, str, str], float]
    clickhouse: dict[tuple[str, str, str], float]

    def mismatches(self) -> list[str]:
        out = []
        for key in sorted(self.truth.keys() | self.clickhouse.keys()):
            t, c = self.truth.get(key), self.clickhouse.get(key)
            if t is None or c is None or abs(t - c) > SCORE_TOLERANCE:
                day, kind, subject = key
                out.append(f"{kind} {subject} on {day}: truth {'-' if t is None else f'{t:.12g}'}, "
                           f"ClickHouse {'-' if c is None else f'{c:.12g}'}")
        return out

    def line(self) -> str:
        bad = self.mismatches()
        verdict = "MATCH" if not bad else f"MISMATCH in {len(bad)} scores"
        kinds = {k[1] for k in self.truth}
        return (f"reconciliation: scores {verdict}: {len(self.truth)} expected trust scores "
                f"({'/'.join(sorted(kinds)) or 'none'} × day), {len(self.clickhouse)} in gmv.trust_scores, "
                f"compared to {SCORE_TOLERANCE:g}")


@dataclass
class MarkovReconciliation:
    """Every removal effect and P of ``gmv.markov_model`` against the simulator's (to 1e-9), and the journeys
    and conversions behind them (exactly)."""

    truth: dict[tuple[str, str, str], tuple[float, float, int, int]]  # (day, shop, stage) -> (re, p, journeys, conv)
    clickhouse: dict[tuple[str, str, str], tuple[float, float, int, int]]

    def mismatches(self) -> list[str]:
        out = []
        for key in sorted(self.truth.keys() | self.clickhouse.keys()):
            t, c = self.truth.get(key), self.clickhouse.get(key)
            if t is None or c is None or abs(t[0] - c[0]) > SCORE_TOLERANCE or abs(t[1] - c[1]) > SCORE_TOLERANCE \
                    or t[2:] != c[2:]:
                day, shop, stage = key
                out.append(f"{shop or '(platform)'} {stage} on {day}: truth {t}, ClickHouse {c}")
        return out

    def line(self) -> str:
        bad = self.mismatches()
        verdict = "MATCH" if not bad else f"MISMATCH in {len(bad)} rows"
        shops = {k[1] for k in self.truth} - {""}
        return (f"reconciliation: markov model {verdict}: {len(self.truth)} expected removal effects "
                f"({len(shops)} shops and the platform × day × stage), {len(self.clickhouse)} in gmv.markov_model, "
                f"compared to {SCORE_TOLERANCE:g}")


@dataclass
class AlertReconciliation:
    """The alerts the truth expects against ``gmv.alerts`` (rule and subject, each once)."""

    expected: Counter[tuple[str, str]]  # (rule, subject_id) as gmv.alerts names the subject
    fired: list[tuple[str, str, str]]  # (rule, subject_id, clock)
    waived: list[str] = field(default_factory=list)  # planned incidents the rules in force cannot see
    before_judged: int = 0  # event-time alerts that ended while the story built the baselines' history

    @classmethod
    def of(cls, expected_alerts: list[dict[str, Any]], fired: list[tuple[str, str, str]], topic_prefix: str,
           worker: str, lag_max_age_s: float | None = None) -> AlertReconciliation:
        """The truth names a pipeline alert's subject by kind (the views topic, the worker); ``gmv.alerts``
        by name: the topic with its prefix, the worker's instance id. A sender pause no longer than the
        lag rule's ``max_age_s`` (``lag_max_age_s``, the rules in force) is not expected to fire it."""
        def subject(a: dict[str, Any]) -> str:
            if a["rule"] == "dead_letter_rate":  # the truth names the event type; the alert its topic
                return f"{topic_prefix}{TOPIC_NAMES[a['subject_id']]}"
            if a["subject_kind"] == "pipeline":  # lag, flush age, sink: the worker
                return worker
            return a["subject_id"]

        def too_short(a: dict[str, Any]) -> bool:
            return (a["rule"] == "consumer_lag" and lag_max_age_s is not None
                    and a.get("pause_s", float("inf")) <= lag_max_age_s)

        waived = [f"consumer_lag {subject(a)}: not expected: the sender paused {a['pause_s']:g} s, the rule fires on "
                  f"data older than {lag_max_age_s:g} s (max_age_s; a longer --incident-pause shows it)"
                  for a in expected_alerts if too_short(a)]
        return cls(Counter((a["rule"], subject(a)) for a in expected_alerts if not too_short(a)), fired, waived)

    def missing(self) -> list[str]:
        got = Counter((rule, subject) for rule, subject, _ in self.fired)
        return [f"{rule} {subject}: expected, not fired" for (rule, subject), n in sorted(self.expected.items())
                if got[(rule, subject)] < n]

    def unexpected(self, compared: bool) -> list[str]:
        """Alerts the truth does not list: of a rule it plans on event time (a mismatch: the same facts
        always judge the same way), or (``compared`` False) the others: pipeline rules on the wall clock,
        and business rules the scenario plans no incident for (a shop whose score is low by design)."""
        planned = {rule for rule, _ in self.expected}
        return [f"{rule} {subject}: fired, not expected" for rule, subject, clock in self.fired
                if (rule, subject) not in self.expected and (clock == "event" and rule in planned) == compared]

    def repeated(self) -> list[str]:
        """An expected alert of an event-time rule fired more often than its incidents: another page (a
        routine the rule took for an incident) on the same subject."""
        got = Counter((rule, subject) for rule, subject, clock in self.fired if clock == "event")
        return [f"{rule} {subject}: fired {got[(rule, subject)]} times, expected {n}"
                for (rule, subject), n in sorted(self.expected.items()) if got[(rule, subject)] > n]

    def mismatches(self) -> list[str]:
        return self.missing() + self.unexpected(compared=True) + self.repeated()

    def line(self) -> str:
        bad = self.mismatches()
        verdict = "MATCH" if not bad else f"MISMATCH in {len(bad)} alerts"
        extra = self.unexpected(compared=False)
        rules = ", ".join(sorted({rule for rule, _ in self.expected})) or "none"
        return (f"reconciliation: alerts {verdict}: {sum(self.expected.values())} expected ({rules}), "
                f"{len(self.fired)} in gmv.alerts"
                + (f" from the story's judged days ({self.before_judged} before, while the seasonal baselines' "
                   "history was built, not compared)" if self.before_judged else "")
                + (f", {len(extra)} of them not compared (wall-clock alerts, or of rules the story plans "
                   "no incident for; noted above)"
                   if extra else ""))


@dataclass
class Report:
    credits: Reconciliation
    scores: ScoreReconciliation
    markov: MarkovReconciliation
    alerts: AlertReconciliation | None  # None: the run evaluated no alerts

    @property
    def ok(self) -> bool:
        return not (self.credits.mismatches() or self.scores.mismatches() or self.markov.mismatches()
                    or (self.alerts is not None and self.alerts.mismatches()))

    def lines(self, show: int = 20) -> list[str]:
        out = [f"  mismatch {bad}" for bad in self.credits.mismatches()[:show]]
        out.append(self.credits.line())
        out += [f"  mismatch {bad}" for bad in self.scores.mismatches()[:show]]
        out.append(self.scores.line())
        out += [f"  mismatch {bad}" for bad in self.markov.mismatches()[:show]]
        out.append(self.markov.line())
        if self.alerts is not None:
            out += [f"  mismatch {bad}" for bad in self.alerts.mismatches()[:show]]
            out += [f"  note {extra}" for extra in self.alerts.unexpected(compared=False)[:show]]
            out += [f"  note {waived}" for waived in self.alerts.waived]
            out.append(self.alerts.line())
        return out


def _tsv(raw: bytes) -> list[list[str]]:
    return [line.split("\t") for line in raw.decode().splitlines() if line]


def reconcile(sql: Sql, database: str, truth: dict[str, Any], topic_prefix: str = "gmv.", worker: str = "worker-0",
              alerts: bool = True, lag_max_age_s: float | None = None) -> Report:
    """``lag_max_age_s``: the consumer_lag rule's ``max_age_s`` in force (None: expect every planned lag)."""
    params: dict[str, Any] = {"db": database}
    ch: dict[str, dict[str, int]] = {}
    for model, stage, fen in _tsv(sql(CREDITS_SQL, {**params, "prefix": story_prefix(truth)})):
        ch.setdefault(model, {})[stage] = int(fen)
    credits = Reconciliation(truth["net_by_model_stage"], ch)
    stored = {(day, kind, subject): float(value) for day, kind, subject, value in _tsv(sql(SCORES_SQL, params))}
    scores = ScoreReconciliation({(d, k, s): v for d, k, s, v in truth.get("expected_scores", [])}, stored)
    markov = MarkovReconciliation(
        {(d, s, st): (float(re), float(p), int(j), int(c)) for d, s, st, re, p, j, c in truth.get("expected_markov", [])},
        {(d, s, st): (float(re), float(p), int(j), int(c)) for d, s, st, re, p, j, c in _tsv(sql(MARKOV_SQL, params))})
    fired = None
    if alerts:
        judged_from = truth.get("alerts_judged_from_ms") or 0
        stored = _tsv(sql(ALERTS_SQL, params))
        rows = [(rule, subject, clock) for rule, _, subject, clock, end in stored
                if clock != "event" or int(end) >= judged_from]
        fired = AlertReconciliation.of(truth.get("expected_alerts", []), rows, topic_prefix, worker, lag_max_age_s)
        fired.before_judged = len(stored) - len(rows)
    return Report(credits, scores, markov, fired)


def load_truth(path: Path) -> dict[str, Any]:
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"no such truth file: {path} (gmv simulate --truth writes one)") from None
    except ValueError as e:
        raise ConfigurationError(f"{path} is not a truth file from gmv simulate --truth: {e}") from None
    if not isinstance(truth, dict) or "net_by_model_stage" not in truth or "scenario" not in truth:
        raise ConfigurationError(f"{path} is not a truth file from gmv simulate --truth (no scenario or net_by_model_stage)")
    return truth
