"""The event builders: what one view, live-room enter, order, refund, review or customer-service
message looks like, and what it sets in motion (a viewer entering a live, paying later, refunding,
reviewing, talking to the shop) — every consequence scheduled on the world's ``Schedule``.

Draws from the world's main stream happen in the order they always did: that order *is* the story
(byte-identical output for a scenario and seed). Whatever a preset adds draws from a stream of its
own (``recall``: ``stage_worth``'s clips bringing a live's audience back).
"""

from __future__ import annotations

import bisect
import random
from typing import Any

from gmv.tools.simulator.content import Content, Shop, WorldState, count_draw
from gmv.tools.simulator.delivery import INCIDENT
from gmv.tools.simulator.incidents import Incidents
from gmv.tools.simulator.routines import Routines
from gmv.tools.simulator.scenarios import DAY_MS, HOUR_MS, MINUTE_MS, SHELF_SOURCES
from gmv.tools.simulator.trust import TrustBehaviour

# A room with viewers has an order scheduled within this long of each viewer's entering, before or
# after: any ten minutes with viewers throughout hold one (live_no_orders' default window is 10 min).
STEADY_SALES_MS = 4 * MINUTE_MS

Event = dict[str, Any]
LIVE_REFERRERS = ("feed", "search", "shelf", "other")  # a live's own audience (public traffic)


class EventBuilder:
    """Builds the events of the world and schedules their consequences."""

    def __init__(self, state: WorldState, trust: TrustBehaviour, incidents: Incidents, engaged_ms: int,
                 seed_label: str, routines: Routines | None = None) -> None:
        self.state = state
        self.trust = trust
        self.incidents = incidents
        self.routines = routines
        self.engaged_ms = engaged_ms
        # Only shops with ``Rates.clip_recall`` draw from it, so no other world's story changes.
        self.recall = random.Random(f"{seed_label}:stage_worth")

    def _event_id(self) -> str:
        return self.state.ids.new("e")

    # -- content -------------------------------------------------------------------------------
    def view(self, c: Content, t_ms: int) -> list[Event]:
        state, rng = self.state, self.state.rng
        r = state.shop(c.shop).rates
        private = rng.random() < r.private
        user = state.user(c.account, private)
        if c.kind == "clip" and r.clip_recall and c.audience and self.recall.random() < r.clip_recall:
            user = self.recall.choice(c.audience)  # a viewer of its live, brought back by the clip
        engaged = rng.random() < r.engaged
        watch = rng.randrange(self.engaged_ms, 90_000) if engaged else rng.randrange(0, self.engaged_ms)
        ev: Event = {"event_type": "view", "event_id": self._event_id(), "event_time": t_ms,
                     "user_id": user, "video_id": c.content_id, "author_id": c.account, "kind": c.kind,
                     "watch_ms": watch, "traffic": "private" if private else "public", "shop_id": c.shop}
        if c.kind == "clip":
            ev["source_live_id"] = c.source_live_id
        if not engaged:
            return [ev]
        roll = rng.random()
        live = state.live_now.get(c.account) or next(
            (lv for a, lv in state.live_now.items() if lv.shop == c.shop and a != c.account), None)
        if c.kind == "short_video" and roll < r.video_buy:
            self._schedule_order(t_ms + rng.randrange(20_000, 300_000), user, c, c.kind, c.content_id)
        elif c.kind == "clip" and roll < r.clip_buy:
            self._schedule_order(t_ms + rng.randrange(20_000, 300_000), user, c, "clip", c.content_id)
        elif live is not None and roll < r.video_buy + r.video_to_live:
            state.schedule.push(t_ms + rng.randrange(1_000, 30_000), "enter",
                                {"live": live, "user": user, "referrer_kind": c.kind,
                                 "referrer_id": c.content_id, "private": private})
        elif rng.random() < r.shelf_later:
            self._schedule_order(t_ms + rng.randrange(HOUR_MS, 30 * HOUR_MS), user, c, "shelf", "")
        return [ev]

    def live_audience(self, live: Content, t0: int, half_life_h: float) -> None:
        """Schedules this minute's enters from the feed, follows, search...: the live's own
        audience, before referrals."""
        state, rng = self.state, self.state.rng
        r = state.shop(live.shop).rates
        for _ in range(count_draw(rng, live.rate_at(t0, half_life_h) * r.live_reach)):  # x * 1.0 is x
            private = rng.random() < r.private
            state.schedule.push(t0 + rng.randrange(MINUTE_MS), "enter", {
                "live": live, "user": state.user(live.account, private),
                "referrer_kind": "follow" if private else rng.choice(LIVE_REFERRERS),
                "referrer_id": None, "private": private})

    def enter(self, live: Content, t_ms: int, user: str, referrer_kind: str, referrer_id: str | None,
              private: bool) -> list[Event]:
        state, rng = self.state, self.state.rng
        r = state.shop(live.shop).rates
        ev: Event = {"event_type": "live_room", "event_id": self._event_id(), "event_time": t_ms,
                     "live_id": live.content_id, "anchor_id": live.account, "action": "enter",
                     "user_id": user, "referrer_kind": referrer_kind,
                     "traffic": "private" if private else "public", "shop_id": live.shop}
        if referrer_id:
            ev["referrer_id"] = referrer_id
        if r.clip_recall:
            live.audience.append(user)  # whom its clips may bring back
        buy = r.live_buy * live.buy_boost * (r.referred_live_buy if referrer_kind in ("short_video", "clip") else 1.0)
        if rng.random() < buy:
            self._schedule_live_order(live, max(t_ms + 1_000, min(t_ms + rng.randrange(30_000, 600_000),
                                                                   live.end_ms - 1)), user)
        elif state.sc.steady_live_sales and not live.sells_near(t_ms, STEADY_SALES_MS) \
                and t_ms + MINUTE_MS < live.end_ms:
            # Viewers keep coming and nobody has paid for minutes, nor will soon: this one buys, a
            # minute on. Decided without a draw, so a story whose rooms sell anyway stays as it was.
            self._schedule_live_order(live, t_ms + MINUTE_MS, user)
        if rng.random() < 0.5:
            state.schedule.push(t_ms + rng.randrange(60_000, 1_800_000), "leave", {"live": live, "user": user})
        return [ev]

    def cut_clips(self, live: Content) -> None:
        """The clips cut from a live that just ended, posted within 3 hours."""
        state, rng = self.state, self.state.rng
        reach = state.shop(live.shop).rates.clip_reach
        for _ in range(state.sc.clips_per_live):
            t = live.end_ms + rng.randrange(10 * MINUTE_MS, 3 * HOUR_MS)
            # x * 1.0 is x exactly: a shop without its own clip reach keeps its story.
            pop = live.popularity * (live.boost if live.boost_until_ms else 1.0) * rng.uniform(0.05, 0.15) * reach
            state.contents.append(Content("clip", state.ids.new("v"), live.account, live.shop, t, t + 7 * DAY_MS,
                                          pop, source_live_id=live.content_id, audience=live.audience))

    # -- money ---------------------------------------------------------------------------------
    def _schedule_live_order(self, live: Content, t_ms: int, user: str) -> None:
        bisect.insort(live.order_times, t_ms)
        self._schedule_order(t_ms, user, live, "live", live.content_id)

    def _schedule_order(self, t_ms: int, user: str, c: Content, channel: str, channel_id: str) -> None:
        self.state.schedule.push(t_ms, "order", {"user": user, "content": c, "channel": channel,
                                                 "channel_id": channel_id})

    def cold_shelf(self, shop: Shop, t0: int, lam: float) -> list[Event]:
        """This minute's shelf orders of the shop from users with no content touch."""
        state, rng = self.state, self.state.rng
        out: list[Event] = []
        for _ in range(count_draw(rng, lam)):
            user = f"u{rng.randrange(state.sc.users)}"
            out.extend(self.order(t0 + rng.randrange(MINUTE_MS), user, shop, "", "shelf", ""))
        return out

    def order(self, t_ms: int, user: str, shop: Shop, seller: str, channel: str, channel_id: str,
              sku_price: tuple[str, int] | None = None) -> list[Event]:
        state, rng, r = self.state, self.state.rng, shop.rates
        sku, price = sku_price or rng.choice(shop.skus)  # given: a flash sale's (routines)
        qty = 1 if rng.random() < 0.8 else rng.randrange(2, 4)
        order_id = state.ids.new("o")
        ev: Event = {"event_type": "order", "event_id": self._event_id(), "event_time": t_ms,
                     "order_id": order_id, "user_id": user, "shop_id": shop.shop_id, "sku_id": sku,
                     "seller_id": seller, "status": "paid", "amount_fen": price * qty, "quantity": qty,
                     "currency": "CNY", "channel": channel}
        if channel == "shelf":
            ev["shelf_source"] = rng.choice(SHELF_SOURCES)
        else:
            ev["channel_id"] = channel_id
        amount = price * qty
        self._after_payment(t_ms, ev, shop)
        if rng.random() >= r.refund:
            self.incidents.unrefunded[shop.shop_id].append(ev)
        else:
            when = t_ms + rng.randrange(HOUR_MS, 36 * HOUR_MS)
            if rng.random() < r.full_refund_share or amount < 2:
                parts = [amount]
            else:
                first = rng.randrange(1, amount)
                parts = [first] if rng.random() < 0.7 or amount - first < 1 else [first, rng.randrange(1, amount - first + 1)]
            for i, part in enumerate(parts):
                state.schedule.push(when + i * HOUR_MS, "refund", {"order": ev, "refund_fen": part})
        return [ev]

    def refund(self, t_ms: int, order: Event, refund_fen: int) -> list[Event]:
        ev = {k: order[k] for k in ("event_type", "order_id", "user_id", "shop_id", "sku_id", "seller_id",
                                    "currency", "channel")}
        for optional in ("channel_id", "shelf_source"):
            if optional in order:
                ev[optional] = order[optional]
        ev.update({"event_id": self._event_id(), "event_time": t_ms, "status": "refunded", "refund_fen": refund_fen})
        reason = self.trust.refund_reason(self.trust.profile(order["shop_id"]))
        if reason is not None:
            ev["refund_reason"] = reason
        return [ev]

    def refund_spike(self, t_ms: int, shop_id: str) -> list[Event]:
        """Refunds, in full, of the shop's latest orders that had none coming, 1.5 s apart."""
        out: list[Event] = []
        for i, order in enumerate(self.incidents.spike_orders(shop_id)):
            out.extend(self.refund(t_ms + i * 1_500, order, order["amount_fen"]))
        return out

    # -- after the payment: reviews and customer service (SPEC §7) -----------------------------
    def _after_payment(self, t_ms: int, order: Event, shop: Shop) -> None:
        """Schedules the order's review and its buyer's conversation with the shop, if they come."""
        trust, rng, schedule = self.trust, self.trust.rng, self.state.schedule
        profile = trust.profile(shop.shop_id)
        if rng.random() < trust.review_rate:
            schedule.push(t_ms + rng.randrange(HOUR_MS, 48 * HOUR_MS), "review", {"order": order, "profile": profile})
        if rng.random() < trust.conversation_rate:
            conversation = self.state.ids.new("c")
            for when, sender in trust.conversation(t_ms + rng.randrange(5 * MINUTE_MS, 12 * HOUR_MS), profile):
                schedule.push(when, "cs", {"conversation_id": conversation, "shop_id": shop.shop_id,
                                           "user_id": order["user_id"], "sender": sender})

    # -- scheduled actions ---------------------------------------------------------------------
    def fire(self, t_ms: int, action: str, d: dict[str, Any]) -> list[Event]:
        """The events of a scheduled action that fell due at ``t_ms``."""
        if action in ("live_start", "live_end"):
            return self._live_start_or_end(t_ms, action, d["live"])
        if action == "enter":
            if t_ms >= d["live"].end_ms:
                return []  # the live ended before they got there
            return self.enter(d["live"], t_ms, d["user"], d["referrer_kind"], d["referrer_id"], d["private"])
        if action == "leave":
            live = d["live"]
            return [{"event_type": "live_room", "event_id": self._event_id(), "event_time": t_ms,
                     "live_id": live.content_id, "anchor_id": live.account, "action": "leave", "user_id": d["user"],
                     "shop_id": live.shop}]
        if action == "order":
            c: Content = d["content"]
            if d["channel"] == "live" and self.incidents.orders_stopped(c.content_id, t_ms):
                return []  # the incident: viewers stay, nobody can pay
            if d["channel"] == "live" and self.routines is not None and self.routines.no_order(c.content_id, t_ms):
                return []  # a warm-up, or an incident of the routines preset
            shop = self.state.shop(c.shop)
            seller = c.account
            if d["channel"] == "shelf" and self.state.rng.random() < 0.5:
                seller = ""  # a pure shelf sale: no account made it
            return self.order(t_ms, d["user"], shop, seller, d["channel"], d["channel_id"], d.get("sku"))
        if action == "refund":
            return self.refund(t_ms, d["order"], d["refund_fen"])
        if action == "review":
            order = d["order"]
            return [{"event_type": "review", "event_id": self.state.ids.new("rv"), "event_time": t_ms,
                     "order_id": order["order_id"], "user_id": order["user_id"], **self.trust.ratings(d["profile"])}]
        if action == "cs":
            return [{"event_type": "cs_message", "event_id": self.state.ids.new("m"), "event_time": t_ms, **d}]
        if action == "refund_spike":
            return self.refund_spike(t_ms, d["shop"])
        if action == "refund_batch" and self.routines is not None:  # customer service's morning batch
            return [ev for i, order in enumerate(self.routines.batch(d["shop"], d["count"]))
                    for ev in self.refund(t_ms + i * 3_000, order, order["amount_fen"])]
        if action == "incident":
            return [{"event_type": INCIDENT, "event_id": "", "event_time": t_ms, **d}]
        raise AssertionError(action)

    def _live_start_or_end(self, t_ms: int, action: str, live: Content) -> list[Event]:
        live_now = self.state.live_now
        if action == "live_start":
            live_now[live.account] = live
        else:
            if live_now.get(live.account) is live:
                del live_now[live.account]
            self.cut_clips(live)
        return [{"event_type": "live_room", "event_id": self._event_id(), "event_time": t_ms,
                 "live_id": live.content_id, "anchor_id": live.account,
                 "action": "start" if action == "live_start" else "end", "shop_id": live.shop}]
