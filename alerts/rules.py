"""Alert rules as configuration: built-in defaults, a TOML file over them, overrides per shop or account.

File format (TOML; every key optional; ``gmv alerts rules`` prints the effective rules)::

    evaluation_interval_s = 10        # how often the worker evaluates (wall clock)
    grace_minutes = 1                 # event-time minutes a window waits for late events

    [rules.live_no_orders]            # one table per rule: its parameters (see the models below)
    minutes = 10
    min_viewers = 30
    seasonal_days = 14                # and against the same minutes of the 14 days before (baselines.py)

    [[overrides]]                     # thresholds for one shop or account (business rules only)
    rule = "refund_spike"
    shop_id = "shop7"                 # or account_id = "..."
    min_refund_fen = 500000

Unknown keys are errors (a typo must not silently keep a default). Business rules
(``clock = event``) read the minute rollups on event time; pipeline rules read the
worker's own counters on the wall clock.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gmv.alerts.baselines import SeasonalParams
from gmv.alerts.exceptions import RulesError

Severity = Literal["critical", "warning", "info"]
Positive = Annotated[float, Field(gt=0)]
Minutes = Annotated[int, Field(ge=1, le=24 * 60)]
Share = Annotated[float, Field(ge=0, le=1)]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    severity: Severity = "warning"


class BusinessRule(Rule):
    """Evaluated per event-time minute over the rollups: replaying a day fires the same alerts."""

    cooldown_minutes: Minutes = Field(30, description="event-time minutes after a firing in which the same "
                                                      "rule and subject do not fire again")


class LiveGmvDrop(BusinessRule, SeasonalParams):
    """A live room's GMV per minute falls more than ``drop_pct`` below its own trailing baseline
    while its viewers hold, and (seasonal) unusually low for these minutes of the day."""

    severity: Severity = "critical"
    window_minutes: Minutes = 5
    baseline_minutes: Minutes = 30
    drop_pct: Annotated[float, Field(gt=0, le=100)] = 80.0
    min_baseline_fen_per_minute: Annotated[int, Field(ge=0)] = Field(
        50_000, description="rooms selling less than this per baseline minute are too small to judge "
                            "(a few orders a minute swing by more than drop_pct by chance)")
    viewers_hold_pct: Annotated[float, Field(ge=0, le=100)] = Field(
        70.0, description="viewers per minute in the window at least this share of the baseline's")


class LiveNoOrders(BusinessRule, SeasonalParams):
    """A live room with viewers and no paid orders for ``minutes``, where (seasonal) its anchor's room
    usually sells in these minutes of the day."""

    severity: Severity = "critical"
    minutes: Minutes = 10
    min_viewers: Annotated[int, Field(ge=1)] = Field(100, description="live enters in those minutes")
    warmup_minutes: Annotated[int, Field(ge=0, le=24 * 60)] = Field(
        10, description="the room had viewers this long before the window (a room just opening has no orders yet)")


class RefundSpike(BusinessRule, SeasonalParams):
    """A shop's refunds over a window above ``factor`` times its trailing baseline and an absolute floor,
    or above ``max_refund_rate`` of its paid GMV in the window; and (seasonal) unusually high for these
    minutes of the day."""

    window_minutes: Minutes = 10
    baseline_minutes: Minutes = 60
    factor: Positive = 4.0
    min_refund_fen: Annotated[int, Field(ge=1)] = Field(300_000, description="absolute floor (fen) in the window")
    max_refund_rate: Share = Field(1.0, description="refunds / paid GMV in the window (1 = off)")


class ShopScoreDrop(BusinessRule):
    """A shop's 商号体验分 (SPEC §7) for a day falls below ``min_score``, or more than ``max_drop`` below
    the day before's. Judged once the Asia/Shanghai day is complete in event time (a replay fires the
    same alerts); it resolves on the first complete day the score is back."""

    min_score: Annotated[float, Field(ge=0, le=5)] = Field(3.5, description="the score this shop must keep")
    max_drop: Annotated[float, Field(gt=0, le=5)] = Field(0.2, description="the largest fall in one day")
    cooldown_minutes: Minutes = Field(24 * 60, description="event-time minutes after a firing in which the "
                                                           "same shop does not fire again")


class DeadLetterRate(Rule):
    """Dead letters per source topic over the last ``window_s`` (wall clock) above a count and a share."""

    window_s: Positive = 60.0
    min_count: Annotated[int, Field(ge=1)] = 100
    max_share: Share = Field(0.02, description="dead-lettered / received in the window")
    cooldown_s: Positive = 300.0


class ConsumerLag(Rule):
    """The pipeline falls behind: data read is older than ``max_age_s`` (its Kafka timestamp against
    the wall clock) or more than ``max_messages`` wait, for ``for_s``."""

    severity: Severity = "critical"
    max_age_s: Positive = Field(30.0, description="seconds: the dashboard promises freshness within seconds")
    max_messages: Annotated[int, Field(ge=1)] = 200_000
    for_s: Annotated[float, Field(ge=0)] = Field(0.0, description="the condition holds this long before it fires")
    cooldown_s: Positive = 300.0


class FlushAge(Rule):
    """The pipeline stops writing: no batch stored for ``max_s`` while input waits."""

    severity: Severity = "critical"
    max_s: Positive = 60.0
    cooldown_s: Positive = 300.0


class SinkFailing(Rule):
    """ClickHouse writes failing for longer than ``max_s``."""

    severity: Severity = "critical"
    max_s: Positive = 30.0
    cooldown_s: Positive = 300.0


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    live_gmv_drop: LiveGmvDrop = LiveGmvDrop()
    live_no_orders: LiveNoOrders = LiveNoOrders()
    refund_spike: RefundSpike = RefundSpike()
    shop_score_drop: ShopScoreDrop = ShopScoreDrop()
    dead_letter_rate: DeadLetterRate = DeadLetterRate()
    consumer_lag: ConsumerLag = ConsumerLag()
    flush_age: FlushAge = FlushAge()
    sink_failing: SinkFailing = SinkFailing()


BUSINESS_RULES = ("live_gmv_drop", "live_no_orders", "refund_spike", "shop_score_drop")
PIPELINE_RULES = ("dead_letter_rate", "consumer_lag", "flush_age", "sink_failing")


class Override(BaseModel):
    """Parameters of one business rule for one shop or account (the rest stay as configured)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["live_gmv_drop", "live_no_orders", "refund_spike", "shop_score_drop"]
    shop_id: str | None = None
    account_id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_params(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = {"rule", "shop_id", "account_id", "params"}
            data = {**{k: v for k, v in data.items() if k in known},
                    "params": {**data.get("params", {}), **{k: v for k, v in data.items() if k not in known}}}
        return data

    @model_validator(mode="after")
    def _one_subject(self) -> Override:
        if (self.shop_id is None) == (self.account_id is None):
            raise ValueError("an override names exactly one of shop_id or account_id")
        return self


class AlertConfig(BaseModel):
    """The effective alerting configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    evaluation_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    grace_minutes: Annotated[int, Field(ge=0, le=60)] = 1
    rules: Rules = Rules()
    overrides: tuple[Override, ...] = ()

    @model_validator(mode="after")
    def _overrides_are_valid_rule_params(self) -> AlertConfig:
        for i, o in enumerate(self.overrides):
            base = getattr(self.rules, o.rule)
            try:
                type(base).model_validate({**base.model_dump(), **o.params})
            except ValidationError as e:
                err = e.errors()[0]
                raise ValueError(f"overrides[{i}] ({o.rule}): {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        return self

    def rule_for(self, rule: str, shop_id: str = "", account_id: str = "") -> Any:
        """A business rule's parameters for a subject: the account's override wins over the shop's."""
        base = getattr(self.rules, rule)
        params: dict[str, Any] = {}
        for o in self.overrides:
            if o.rule == rule and o.shop_id is not None and o.shop_id == shop_id:
                params.update(o.params)
        for o in self.overrides:
            if o.rule == rule and o.account_id is not None and o.account_id == account_id:
                params.update(o.params)
        return type(base).model_validate({**base.model_dump(), **params}) if params else base

    def to_toml(self) -> str:
        """The effective configuration in the file format above."""
        lines = [f"evaluation_interval_s = {_toml(self.evaluation_interval_s)}",
                 f"grace_minutes = {self.grace_minutes}"]
        for name in (*BUSINESS_RULES, *PIPELINE_RULES):
            rule = getattr(self.rules, name)
            lines += ["", f"[rules.{name}]  # {' '.join((type(rule).__doc__ or '').split())}"]
            # the seasonal knobs last, after the rule's own
            params = sorted(rule.model_dump().items(), key=lambda kv: kv[0].startswith("seasonal"))
            lines += [f"{k} = {_toml(v)}" for k, v in params]
        for o in self.overrides:
            subject = f"shop_id = {_toml(o.shop_id)}" if o.shop_id is not None else f"account_id = {_toml(o.account_id)}"
            lines += ["", "[[overrides]]", f"rule = {_toml(o.rule)}", subject]
            lines += [f"{k} = {_toml(v)}" for k, v in o.params.items()]
        return "\n".join(lines) + "\n"


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


def load_config(path: Path | None) -> AlertConfig:
    """The built-in defaults, or the file over them. A bad file raises ``RulesError`` naming the
    file and the field."""
    if path is None:
        return AlertConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"alert rules file {path} does not exist (GMV_ALERT_RULES)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RulesError(f"alert rules file {path} is not valid TOML: {e}") from None
    try:
        return AlertConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(file)'}: {err['msg']}" for err in e.errors())
        raise RulesError(f"alert rules file {path}: {problems}") from None
