"""Ground truth: expected net GMV per model and stage, from the paths the simulator generated.

Kept from the simulator's own knowledge of each buyer's path — the touches it
generated for that user — not from anything the pipeline computed: for every paid
order it applies the SPEC §3 rules (via the pure functions of
``gmv.streams.core.attribution``) and sums net GMV per model and stage. The
data-driven model ``markov`` (SPEC §9) comes from the same facts, every journey
included, converted or not (``markov_truth``). Duplicates and malformed messages
never enter it; whichever copy of an event is sent first is the one that counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from gmv.schemas.events import QUALITY_REASONS
from gmv.schemas.outputs import RULE_MODELS, STAGES
from gmv.schemas.trust import WINDOW_DAYS, CsMessage, ScoreInputs, buyer_turns, score
from gmv.streams.core.attribution import OrderFacts, Touch, attribute, build_path, refund_credits
from gmv.tools.simulator.delivery import Emitted
from gmv.tools.simulator.markov_truth import MarkovTruth
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
    refunds: list[tuple[str, int, int]] = field(default_factory=list)  # (order_id, fen, event time)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seen: set[str] = field(default_factory=set)
    last_event_ms: int = 0  # the latest event time sent so far
    expected_alerts: list[dict[str, Any]] = field(default_factory=list)  # the world's incidents (all planned)
    # Event-time alerts whose window ends before this are not compared (the routines preset's first week
    # builds the seasonal baselines' history); None: all are.
    alerts_judged_from_ms: int | None = None
    cs_unanswered_after_ms: int = 3_600_000
    # SPEC §7 facts as sent: order_id -> (user, shop, sku, seller, t); refunds (order_id, is_quality, t);
    # reviews (order_id, product, service, logistics, t); conversation -> its messages
    trust_orders: dict[str, tuple[str, str, str, str, int]] = field(default_factory=dict)
    trust_refunds: list[tuple[str, bool, int]] = field(default_factory=list)
    reviews: list[tuple[str, int, int, int, int]] = field(default_factory=list)
    conversations: dict[str, list[CsMessage]] = field(default_factory=lambda: defaultdict(list))
    # The world's dimension data (World.dimensions): (account, shop) -> (brand, role); listed (day, shop, sku)
    bindings: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    catalog: set[tuple[str, str, str]] = field(default_factory=set)

    def set_dimensions(self, dims: dict[str, list[dict[str, Any]]]) -> None:
        self.bindings = {(a["account_id"], a["shop_id"]): (a["brand_id"], a["role"]) for a in dims["accounts"]}
        self.catalog = {(s["day"], s["shop_id"], s["sku_id"]) for s in dims["skus"]}

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
            self.trust_orders[ev["order_id"]] = (ev["user_id"], ev["shop_id"], ev["sku_id"], ev["seller_id"], t)
        elif et == "order":
            self.refunds.append((ev["order_id"], ev["refund_fen"], t))
            self.trust_refunds.append((ev["order_id"], ev.get("refund_reason") in QUALITY_REASONS, t))
        elif et == "review":
            self.reviews.append((ev["order_id"], ev["product_rating"], ev["service_rating"], ev["logistics_rating"], t))
        elif et == "cs_message":
            self.conversations[ev["conversation_id"]].append(CsMessage(t, ev["event_id"], ev["sender"], ev["shop_id"]))

    def paths(self) -> dict[str, list[Touch]]:
        """Each paid order's path (SPEC §3), from every touch its buyer made."""
        return {order_id: build_path(self.touches.get(user, ()), facts, self.lookback_ms)
                for order_id, (user, facts, _) in self.orders.items()}

    def markov(self) -> MarkovTruth:
        """The journeys of everything observed so far, and the ``markov`` models and credits (SPEC §9)."""
        return MarkovTruth(self.touches, self.orders)

    def net_by_model_stage(self, markov: MarkovTruth | None = None) -> dict[str, dict[str, int]]:
        """Net fen per model and stage: the rule-based models of SPEC §3 (``RULE_MODELS``), then
        ``markov``. The rule-based ones are asked for by name, so this holds whether
        ``outputs.MODELS`` lists ``markov`` or not (``attribute`` knows only the rule-based ones)."""
        out = {m: dict.fromkeys(STAGES, 0) for m in RULE_MODELS}
        paths = self.paths()
        for order_id, (_, _, amount) in self.orders.items():
            path = paths[order_id]
            for model, credits in attribute(amount, path, self.half_life_ms, models=RULE_MODELS).items():
                for touch, fen in zip(path, credits, strict=True):
                    out[model][touch.stage] += fen
        for order_id, fen, _ in self.refunds:
            path = paths[order_id]  # the simulator only refunds orders it sent, after sending them
            for model, credits in refund_credits(fen, path, self.half_life_ms, models=RULE_MODELS).items():
                for touch, c in zip(path, credits, strict=True):
                    out[model][touch.stage] += c
        out["markov"] = (markov or self.markov()).net_by_stage(self.orders, self.refunds, paths)
        return out

    def expected_markov(self, markov: MarkovTruth | None = None) -> list[list[Any]]:
        """SPEC §9's models on what was sent: ``[day ISO, shop_id, stage, removal_effect, p_conv,
        journeys, conversions]`` for every (shop, day) with a journey in its window, and the platform
        (shop ``""``), each of the four stages (``MarkovTruth.expected``)."""
        return (markov or self.markov()).expected()

    def expected_scores(self) -> list[list[Any]]:
        """Every trust score SPEC §7 defines on what was sent: [day (Asia/Shanghai), kind, subject, score],
        for each day from the first fact's to the newest fact's and each subject with a fact in its window."""
        daily: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)  # subject -> day -> sums

        def add(order_id: str, t: int, **inputs: int) -> None:
            _, shop, sku, seller, _ = self.trust_orders[order_id]
            for kind, subject in (("sku", sku), ("account", seller), ("shop", shop)):
                if subject:
                    _add(daily[(kind, subject)], shanghai_day_number(t), inputs, order_id)

        for order_id, (_, _, _, _, t) in self.trust_orders.items():
            add(order_id, t, paid_orders=1)
        for order_id, quality, t in self.trust_refunds:  # any refund gives its subjects a row; quality ones weigh
            add(order_id, t, refunds=1, **({"quality": 1} if quality else {}))
        for order_id, p, s, lg, t in self.reviews:
            add(order_id, t, reviews=1, product_rating_sum=p, service_rating_sum=s, logistics_rating_sum=lg)
        for messages in self.conversations.values():
            for turn in buyer_turns(messages, self.cs_unanswered_after_ms):
                _add(daily[("shop", turn.shop_id)], shanghai_day_number(turn.start_ms),
                     {"turns": 1, "fast_turns": int(turn.fast), "within_3min_turns": int(turn.within_3min)}, "")
        days = [d for sums in daily.values() for d in sums]
        if not days:
            return []
        out = []
        for day in range(min(days), max(days) + 1):
            for (kind, subject), sums in daily.items():
                window = [sums[d] for d in range(day - WINDOW_DAYS + 1, day + 1) if d in sums]
                if not window:
                    continue
                totals = {f: sum(w.get(f, 0) for w in window) for f in ScoreInputs.__dataclass_fields__}
                totals["quality_refunded_orders"] = len(set().union(*(w.get("quality_orders", set()) for w in window)))
                out.append([day_from_number(day), kind, subject, score(kind, ScoreInputs(**totals)).score])
        return sorted(out)

    def expected_cookbook(self) -> dict[str, list[list[Any]]]:
        """What the cookbook's 一店多号, 川流 and 动销率 answers must be, from what was sent and the
        world's dimension data; paid amounts on their order's Asia/Shanghai day, refunds on theirs.

        - ``store_gmv``: [day, shop, self net, distributor net, unbound net, all net] (fen);
        - ``chuanliu``: [day, brand, self GMV, self net, assisted GMV, assisted net] (fen), where
          self means sold by the brand's own account and assisted that a touch before the
          conversion was by one of the brand's distributor accounts;
        - ``sell_through``: [day, shop, listed SKUs, listed SKUs with a paid order that day]."""
        paths = self.paths()
        distributors: dict[str, set[str]] = defaultdict(set)
        for (account, _), (brand, role) in self.bindings.items():
            if role == "distributor":
                distributors[brand].add(account)
        store: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        chuanliu: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        sold: set[tuple[str, str, str]] = set()

        def book(order_id: str, t: int, paid: int, net: int) -> None:
            _, facts, _ = self.orders[order_id]
            day = day_from_number(shanghai_day_number(t))
            brand, role = self.bindings.get((facts.seller_id, facts.shop_id), ("", ""))
            cell = store[(day, facts.shop_id)]
            cell[{"self": 0, "distributor": 1}.get(role, 2)] += net
            cell[3] += net
            if role == "self":
                assisted = any(t.account_id in distributors[brand] for t in paths[order_id][:-1])
                c = chuanliu[(day, brand)]
                c[0] += paid
                c[1] += net
                c[2] += paid if assisted else 0
                c[3] += net if assisted else 0

        for order_id, (_, facts, amount) in self.orders.items():
            book(order_id, facts.t_ms, amount, amount)
            _, shop, sku, _, t = self.trust_orders[order_id]
            sold.add((day_from_number(shanghai_day_number(t)), shop, sku))
        for order_id, fen, t in self.refunds:
            book(order_id, t, 0, -fen)
        listed: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for day, shop, sku in self.catalog:
            listed[(day, shop)][0] += 1
            listed[(day, shop)][1] += (day, shop, sku) in sold
        return {"store_gmv": sorted([*k, *v] for k, v in store.items()),
                "chuanliu": sorted([*k, *v] for k, v in chuanliu.items()),
                "sell_through": sorted([*k, *v] for k, v in listed.items())}

    def alerts_due(self) -> list[dict[str, Any]]:
        """The expected alerts whose incident the stream sent in full, with time to be noticed
        (``ALERT_SETTLE_MS`` of event time after it started; wall-clock ones once they started)."""
        return [a for a in self.expected_alerts
                if a["starts_at_ms"] + (ALERT_SETTLE_MS if a["clock"] == "event" else 0) <= self.last_event_ms]

    def summary(self) -> dict[str, Any]:
        gross = sum(a for _, _, a in self.orders.values())
        refunded = sum(f for _, f, _ in self.refunds)
        markov = self.markov()  # journeys built once for both the credits and the models
        return {"orders": len(self.orders), "refunds": len(self.refunds), "gross_fen": gross,
                "refund_fen": refunded, "net_fen": gross - refunded, "messages": dict(self.counts),
                "expected_alerts": self.alerts_due(), "alerts_judged_from_ms": self.alerts_judged_from_ms,
                "expected_scores": self.expected_scores(),
                "net_by_model_stage": self.net_by_model_stage(markov), "expected_cookbook": self.expected_cookbook(),
                "expected_markov": self.expected_markov(markov)}


def _add(days: dict[int, dict[str, Any]], day: int, inputs: dict[str, int], order_id: str) -> None:
    sums = days.setdefault(day, {})
    for name, n in inputs.items():
        if name == "quality":
            sums.setdefault("quality_orders", set()).add(order_id)  # distinct orders over the window
        else:
            sums[name] = sums.get(name, 0) + n


def shanghai_day_number(t_ms: int) -> int:
    """The Asia/Shanghai day (UTC+8 all year since 1991) of an epoch-ms time, as days since 1970-01-01."""
    return (t_ms + 8 * 3_600_000) // DAY_MS


def day_from_number(n: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=n)).isoformat()


def event_ms(t: str | int) -> int:
    if isinstance(t, int):
        return t
    return int(datetime.fromisoformat(t).timestamp() * 1000)

