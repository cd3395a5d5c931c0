"""Ground truth: expected net GMV per model and stage, from the paths the simulator generated.

Kept from the simulator's own knowledge of each buyer's path — the touches it
generated for that user — not from anything the pipeline computed: for every paid
order it applies the SPEC §3 rules (via the pure functions of
``gmv.streams.core.attribution``) and sums net GMV per model and stage. Duplicates
and malformed messages never enter it; whichever copy of an event is sent first is
the one that counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gmv.schemas.outputs import MODELS, STAGES
from gmv.streams.core.attribution import OrderFacts, Touch, attribute, build_path, refund_credits
from gmv.tools.simulator.delivery import Emitted
from gmv.tools.simulator.scenarios import DAY_MS, MINUTE_MS

# An event-time incident is expected to have been alerted once the stream is this far past its start
# (the longest default rule window, 10 min, plus the grace minute and two evaluation minutes).
ALERT_SETTLE_MS = 15 * MINUTE_MS


@dataclass
class GroundTruth:
    """Expected net GMV per model and stage, from the paths the simulator generated."""

    engaged_ms: int = 3000
    lookback_ms: int = 7 * DAY_MS
    half_life_ms: int = DAY_MS
    touches: dict[str, list[Touch]] = field(default_factory=lambda: defaultdict(list))
    orders: dict[str, tuple[str, OrderFacts, int]] = field(default_factory=dict)  # order_id -> (user, facts, fen)
    refunds: list[tuple[str, int]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seen: set[str] = field(default_factory=set)
    last_event_ms: int = 0  # the latest event time sent so far
    expected_alerts: list[dict[str, Any]] = field(default_factory=list)  # the world's incidents (all planned)

    def observe(self, msg: Emitted) -> None:
        self.counts[msg.kind] += 1
        ev = msg.event
        # Whichever copy of an event is sent first is the one that counts (a late original can
        # follow its re-sent copy); later copies are duplicates.
        if ev is None or ev["event_id"] in self.seen:
            return
        self.seen.add(ev["event_id"])
        t = event_ms(ev["event_time"])
        self.last_event_ms = max(self.last_event_ms, t)
        et = ev["event_type"]
        if et == "view" and ev["watch_ms"] >= self.engaged_ms:
            self.touches[ev["user_id"]].append(Touch(t, ev["event_id"], ev["kind"], ev["author_id"], ev["video_id"],
                                                     ev.get("shop_id") or "", ev.get("traffic", "public")))
        elif et == "live_room" and ev["action"] == "enter":
            self.touches[ev["user_id"]].append(Touch(t, ev["event_id"], "live", ev["anchor_id"], ev["live_id"],
                                                     ev.get("shop_id") or "", ev.get("traffic", "public")))
        elif et == "order" and ev["status"] == "paid":
            stage = ev["channel"]
            self.orders[ev["order_id"]] = (ev["user_id"], OrderFacts(
                t, ev["event_id"], ev["seller_id"], ev["shop_id"], stage, ev.get("channel_id") or ""), ev["amount_fen"])
        elif et == "order":
            self.refunds.append((ev["order_id"], ev["refund_fen"]))

    def net_by_model_stage(self) -> dict[str, dict[str, int]]:
        out = {m: dict.fromkeys(STAGES, 0) for m in MODELS}
        paths: dict[str, list[Touch]] = {}
        for order_id, (user, facts, amount) in self.orders.items():
            path = paths[order_id] = build_path(self.touches.get(user, ()), facts, self.lookback_ms)
            for model, credits in attribute(amount, path, self.half_life_ms).items():
                for touch, fen in zip(path, credits, strict=True):
                    out[model][touch.stage] += fen
        for order_id, fen in self.refunds:
            path = paths[order_id]  # the simulator only refunds orders it sent, after sending them
            for model, credits in refund_credits(fen, path, self.half_life_ms).items():
                for touch, c in zip(path, credits, strict=True):
                    out[model][touch.stage] += c
        return out

    def alerts_due(self) -> list[dict[str, Any]]:
        """The expected alerts whose incident the stream sent in full, with time to be noticed
        (``ALERT_SETTLE_MS`` of event time after it started; wall-clock ones once they started)."""
        return [a for a in self.expected_alerts
                if a["starts_at_ms"] + (ALERT_SETTLE_MS if a["clock"] == "event" else 0) <= self.last_event_ms]

    def summary(self) -> dict[str, Any]:
        gross = sum(a for _, _, a in self.orders.values())
        refunded = sum(f for _, f in self.refunds)
        return {"orders": len(self.orders), "refunds": len(self.refunds), "gross_fen": gross,
                "refund_fen": refunded, "net_fen": gross - refunded, "messages": dict(self.counts),
                "expected_alerts": self.alerts_due(),
                "net_by_model_stage": self.net_by_model_stage()}


def event_ms(t: str | int) -> int:
    if isinstance(t, int):
        return t
    return int(datetime.fromisoformat(t).timestamp() * 1000)

