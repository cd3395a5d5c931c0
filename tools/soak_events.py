"""The soak benchmark's events (``python -m bench.soak``; pure: no I/O): millions of valid events, dense in time.

Every event's time lies in one span (default: the hour before ``now``), rising with its place in the
stream, so nothing reaches any horizon while the soak runs (dedup 24 h, touches 7 days, orders 90
days): every event stays retained state, and the worker's memory and disk grow with the history.
Users come from a large pool (an eighth of the events by default: each user has a handful of
touches), so state is spread over many keys as in production, not piled on a few.

The mix (per event): views 74.9% (60% of them engaged), live enters 14%, leaves 2%, paid orders 3%,
refunds 0.6% (of earlier orders, never more than paid), reviews 1.5% (of earlier orders), customer-
service messages 4%. Every event is valid (SPEC §2, ``gmv.schemas.events``) with a unique event id.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from gmv.streams.core.routing import partition_for_key

PARTITIONS = 4
REFERRERS = ("short_video", "clip", "feed", "follow", "search", "shelf", "other")
SHELF_SOURCES = ("mall", "search", "store", "recommend")
REASONS = ("quality", "not_as_described", "damaged", "wrong_item", "changed_mind", "logistics", "other")
SENDERS = ("buyer", "buyer", "agent", "bot")
# Cumulative shares of the mix, in the order ``SoakFeed.events`` tests them.
MIX = (("view", 0.749), ("enter", 0.889), ("leave", 0.909), ("order", 0.939), ("refund", 0.945),
       ("review", 0.960), ("cs_message", 1.0))


class SoakEvent(NamedTuple):
    event_type: str  # gmv.schemas.events.TOPIC_NAMES key
    partition: int  # the partition of its key (user_id), as Kafka's default partitioner picks it
    value: bytes  # one JSON event


class _Order(NamedTuple):
    order_id: str
    user: int
    amount_fen: int
    shop: int


class SoakFeed:
    """``total`` events, deterministic for a seed, with event times in ``[now_ms - span_ms, now_ms)``."""

    def __init__(self, total: int, now_ms: int, seed: int = 31, span_ms: int = 3_300_000,
                 users: int | None = None, id_prefix: str = "soak") -> None:
        if total < 1:
            raise ValueError("a soak needs at least one event (--events)")
        self.total = total
        self.start_ms = now_ms - span_ms
        self.span_ms = span_ms
        self.users = users or max(1_000, total // 8)
        self.rng = random.Random(seed)
        self.prefix = f"{id_prefix}{seed}"
        self.lives = 300
        self.videos = 20_000
        self.shops = 2_000
        # Orders that may still get a refund (each at most one: never more than paid) or a review.
        self._refundable: deque[_Order] = deque(maxlen=50_000)
        self._reviewable: deque[_Order] = deque(maxlen=50_000)
        self._partition = bytearray(b"\xff") * self.users  # murmur2 is pure Python: once per user
        self.counts: dict[str, int] = dict.fromkeys((m for m, _ in MIX), 0)

    def partition_of(self, user: int) -> int:
        p = self._partition[user]
        if p == 0xFF:
            p = self._partition[user] = partition_for_key(f"u{user}", PARTITIONS)
        return p

    def events(self) -> Iterator[SoakEvent]:
        rnd, randint = self.rng.random, self.rng.randint
        pre, users, lives, videos, shops = self.prefix, self.users, self.lives, self.videos, self.shops
        for i in range(self.total):
            t = self.start_ms + self.span_ms * i // self.total
            eid = f"{pre}-{i}"
            user = randint(0, users - 1)
            r = rnd()
            kind = next(name for name, upto in MIX if r < upto)
            if kind == "refund" and not self._refundable or kind == "review" and not self._reviewable:
                kind = "view"  # nothing to refund or review yet
            self.counts[kind] += 1
            if kind == "view":
                video = randint(0, videos - 1)
                watch = randint(3_000, 60_000) if rnd() < 0.6 else randint(200, 2_999)
                clip = f',"kind":"clip","source_live_id":"l{video % lives}"' if video % 5 == 0 \
                    else ',"kind":"short_video"'
                shop = f',"shop_id":"s{video % shops}"' if video % 2 else ""
                body = (f'{{"event_type":"view","event_id":"{eid}","event_time":{t},"user_id":"u{user}",'
                        f'"video_id":"v{video}","author_id":"a{video % 5_000}"{clip},"watch_ms":{watch}{shop}}}')
            elif kind in ("enter", "leave"):
                live = randint(0, lives - 1)
                ref = f',"referrer_kind":"{REFERRERS[live % 7]}","referrer_id":"v{live}"' if kind == "enter" else ""
                body = (f'{{"event_type":"live_room","event_id":"{eid}","event_time":{t},"live_id":"l{live}",'
                        f'"anchor_id":"h{live % 100}","action":"{kind}","user_id":"u{user}"{ref},'
                        f'"shop_id":"s{live % shops}"}}')
            elif kind == "order":
                body, order = self._order(eid, t, user)
                self._refundable.append(order)
                self._reviewable.append(order)
            elif kind == "refund":
                o = self._refundable.popleft()
                user = o.user
                body = (f'{{"event_type":"order","event_id":"{eid}","event_time":{t},"order_id":"{o.order_id}",'
                        f'"user_id":"u{user}","status":"refunded","refund_fen":{randint(1, o.amount_fen)},'
                        f'"refund_reason":"{REASONS[randint(0, 6)]}"}}')
            elif kind == "review":
                o = self._reviewable.popleft()
                user = o.user
                body = (f'{{"event_type":"review","event_id":"{eid}","event_time":{t},"order_id":"{o.order_id}",'
                        f'"user_id":"u{user}","product_rating":{randint(1, 5)},"service_rating":{randint(1, 5)},'
                        f'"logistics_rating":{randint(1, 5)}}}')
            else:
                shop = user % shops
                body = (f'{{"event_type":"cs_message","event_id":"{eid}","event_time":{t},'
                        f'"conversation_id":"c{user}-{shop}","shop_id":"s{shop}","user_id":"u{user}",'
                        f'"sender":"{SENDERS[randint(0, 3)]}"}}')
            et = "cs_message" if kind == "cs_message" else "live_room" if kind in ("enter", "leave") else \
                "order" if kind in ("order", "refund") else kind
            yield SoakEvent(et, self.partition_of(user), body.encode())

    def _order(self, eid: str, t: int, user: int) -> tuple[str, _Order]:
        rng = self.rng
        amount, shop, oid = rng.randint(100, 200_000), rng.randint(0, self.shops - 1), f"o{eid}"
        c = rng.random()
        if c < 0.5:
            live = rng.randint(0, self.lives - 1)
            channel = f'"channel":"live","channel_id":"l{live}","seller_id":"h{live % 100}"'
        elif c < 0.8:
            video = rng.randint(0, self.videos - 1)
            channel = f'"channel":"short_video","channel_id":"v{video}","seller_id":"a{video % 5_000}"'
        else:
            channel = f'"channel":"shelf","shelf_source":"{SHELF_SOURCES[rng.randint(0, 3)]}","seller_id":""'
        body = (f'{{"event_type":"order","event_id":"{eid}","event_time":{t},"order_id":"{oid}","user_id":"u{user}",'
                f'"status":"paid","shop_id":"s{shop}","sku_id":"k{shop}-{rng.randint(0, 49)}","amount_fen":{amount},'
                f'"currency":"CNY",{channel}}}')
        return body, _Order(oid, user, amount, shop)


def batched(events: Iterable[SoakEvent], per_message: int = 1000) -> Iterator[tuple[str, int, bytes, int]]:
    """Producer batches (SPEC §2): ``(event_type, partition, JSON array, events in it)``, each array at most
    ``per_message`` events of one topic and one partition, so it lands where its users' state lives."""
    groups: dict[tuple[str, int], list[bytes]] = {}
    for ev in events:
        g = groups.setdefault((ev.event_type, ev.partition), [])
        g.append(ev.value)
        if len(g) == per_message:
            yield ev.event_type, ev.partition, b"[" + b",".join(g) + b"]", len(g)
            g.clear()
    for (et, p), g in groups.items():
        if g:
            yield et, p, b"[" + b",".join(g) + b"]", len(g)


def one_view(event_id: str, time_ms: int, user: str = "u-restart") -> SoakEvent:
    """One engaged view with its own id (what a restart is timed by: when it is stored, the worker consumes)."""
    body = (f'{{"event_type":"view","event_id":"{event_id}","event_time":{time_ms},"user_id":"{user}",'
            f'"video_id":"v0","author_id":"a0","kind":"short_video","watch_ms":5000}}')
    return SoakEvent("view", partition_for_key(user, PARTITIONS), body.encode())
