"""The batch processor: decoded messages + partition state -> rows, dead letters, journal writes.

No Kafka client and no I/O here: the worker (``streams.app``) feeds it each
consumed batch and writes what it returns. Processing is deterministic given
the same input and whatever state it finds: a replayed message gives the same
rows (it is recognised by its ``src``), and an attribution, once journalled, is
re-emitted from the journal rather than recomputed, so a crash between the
state write, the ClickHouse write and the offset commit never changes a total.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.events import AnyEvent, LiveRoomEvent, OrderEvent, ViewEvent
from sinks.schema import ATTRIBUTED_GMV, DEAD_LETTERS, EVENTS, FUNNEL_EVENTS, INGEST_LOG
from streams.attribution import (
    MODELS,
    OrderFacts,
    Touch,
    attribute,
    build_path,
    path_label,
    refund_credits,
)
from streams.ingest import Accepted, DeadLetter, MessageDecoder, SourceMessage
from streams.settings import Settings
from streams.state import Horizons, OrderRec, PartitionState, RefundRec, row_time, to_ms

OUTCOMES = ("accepted", "duplicate", "dead_letter")


_PARTITION_CACHE: dict[tuple[str, int], int] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``Utils.murmur2``), bit for bit as kafka-python's, ~2x faster: the
    4-byte words come out of one ``struct.unpack_from`` instead of byte arithmetic."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * m) & 0xFFFFFFFF) ^ ((k * m) & 0xFFFFFFFF)
    tail = length & 3
    if tail:
        i = words << 2
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def partition_for_key(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, as the Java and Python clients use it).

    Memoised: murmur2 is pure Python (a few µs) and the same users come back all day."""
    hit = _PARTITION_CACHE.get((key, partitions))
    if hit is None:
        if len(_PARTITION_CACHE) > 500_000:
            _PARTITION_CACHE.clear()
        hit = _PARTITION_CACHE[(key, partitions)] = (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
    return hit


@dataclass
class IngestCounters:
    """received = accepted + duplicates + dead-lettered, per topic."""

    by_topic: Counter = field(default_factory=Counter)  # (topic, outcome) -> n

    def add(self, topic: str, outcome: str, n: int = 1) -> None:
        self.by_topic[(topic, outcome)] += n

    def total(self, outcome: str | None = None) -> int:
        return sum(n for (_, o), n in self.by_topic.items() if (o in OUTCOMES if outcome is None else o == outcome))

    def summary(self) -> dict[str, int]:
        return {
            "received": self.total(),
            "accepted": self.total("accepted"),
            "duplicates": self.total("duplicate"),
            "dead_lettered": self.total("dead_letter"),
            "rekeyed": self.total("rekeyed"),
        }

    def per_topic(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (topic, outcome), n in sorted(self.by_topic.items()):
            if outcome in OUTCOMES:
                out.setdefault(topic, {o: 0 for o in OUTCOMES})[outcome] += n
        return out


@dataclass
class Rekeyed:
    """A valid event that arrived on a partition other than its user's: forwarded to be processed there."""

    partition: int
    key: bytes
    value: bytes
    src: str


@dataclass
class BatchResult:
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {
        t.name: [] for t in (EVENTS, INGEST_LOG, DEAD_LETTERS, ATTRIBUTED_GMV, FUNNEL_EVENTS)})
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rekeyed: list[Rekeyed] = field(default_factory=list)
    journal_puts: list[tuple[str, bytes]] = field(default_factory=list)
    journal_dels: list[str] = field(default_factory=list)
    counters: IngestCounters = field(default_factory=IngestCounters)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    touched_partitions: set[int] = field(default_factory=set)

    def merge(self, other: BatchResult) -> None:
        for name, rows in other.rows.items():
            self.rows[name].extend(rows)
        self.dead_letters.extend(other.dead_letters)
        self.rekeyed.extend(other.rekeyed)
        self.journal_puts.extend(other.journal_puts)
        self.journal_dels.extend(other.journal_dels)
        self.counters.by_topic.update(other.counters.by_topic)
        for k, v in other.next_offsets.items():
            self.next_offsets[k] = max(self.next_offsets.get(k, 0), v)
        self.touched_partitions |= other.touched_partitions


class BatchProcessor:
    """Validates, de-duplicates, attributes and turns batches into rows. Owns the partition states."""

    def __init__(self, settings: Settings, extra_topics: dict[str, str | None] | None = None) -> None:
        topics: dict[str, str | None] = dict(settings.source_topics)
        topics.update(extra_topics or {})
        self.settings = settings
        self.decoder = MessageDecoder(
            {t: et for t, et in topics.items() if et}, settings.max_message_bytes,
            settings.max_batch_events, int(settings.max_future_skew.total_seconds() * 1000),
        )
        self.horizons = Horizons(_ms(settings.dedup_horizon), _ms(settings.lookback), _ms(settings.weights_retention))
        self.lookback_ms = _ms(settings.lookback)
        self.half_life_ms = _ms(settings.half_life)
        self.delay_ms = _ms(settings.attribution_delay)
        self.orphan_hold_ms = _ms(settings.orphan_refund_hold)
        self.rekeyed_topic = settings.rekeyed_topic
        self.state_topics = (*settings.source_topics, settings.rekeyed_topic)  # what feeds partition state
        self.n_partitions = settings.partitions
        self.partitions: dict[int, PartitionState] = {}

    def partition_state(self, partition: int) -> PartitionState:
        ps = self.partitions.get(partition)
        if ps is None:
            ps = self.partitions[partition] = PartitionState(partition, self.horizons)
        return ps

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)

    def load(self, partition: int, items: list[tuple[str, bytes | None]], now: datetime | None = None) -> BatchResult:
        """Rebuild a partition's state from its changelog; re-emit rows not known to be in ClickHouse."""
        self.forget({partition})
        ps = self.partition_state(partition)
        ps.load(items)
        out = BatchResult()
        now = now or datetime.now(UTC)
        for kind, rec, _nonce, _seq in ps.unconfirmed:
            if kind == "attr" and rec[0] in ps.orders:
                order = ps.orders[rec[0]]
                self._paid_rows(out, order, ps.attrs.get(rec[0]) or [], now)
            elif kind == "settled" and rec[0] in ps.refunds:
                refund = ps.refunds[rec[0]]
                self._settled_rows(out, ps, refund, rec[1], now)
                if rec[1] != "applied":
                    self._late_dead_letter(out, ps, refund, rec[1], recount=False)
        ps.unconfirmed.clear()
        if any(out.rows.values()):
            out.touched_partitions.add(partition)
        return out

    # -- consuming -------------------------------------------------------------------------
    def process(self, messages: list[SourceMessage], now: datetime | None = None) -> BatchResult:
        # The hot loop (tens of µs per event in all): locals and counts kept out of attribute
        # lookups and calls on purpose.
        now = now or datetime.now(UTC)
        now_ms = to_ms(now)
        now_s = row_time(now_ms)
        out = BatchResult()
        ev_rows, log_rows = out.rows[EVENTS.name], out.rows[INGEST_LOG.name]
        next_offsets, touched = out.next_offsets, out.touched_partitions
        decode, n_parts = self.decoder.decode, self.n_partitions
        counts: dict[tuple[str, str], int] = {}
        for msg in messages:
            topic, partition = msg.topic, msg.partition
            key = (topic, partition)
            if next_offsets.get(key, 0) <= msg.offset:
                next_offsets[key] = msg.offset + 1
            ps: PartitionState | None = None
            for item in decode(msg, now):
                if type(item) is DeadLetter:
                    self._dead_letter(out, item, now)
                    continue
                event = item.event
                user = event.user_id  # every event type has one (optional on live start/end)
                owner = partition_for_key(user, n_parts) if user else partition
                if owner != partition:
                    # Views, enters and orders of one user must meet in one partition's state:
                    # forward, never attribute on the wrong partition.
                    out.rekeyed.append(Rekeyed(owner, user.encode(), event.model_dump_json().encode(), item.src))
                    out.counters.add(topic, "rekeyed")
                    log_rows.append(_log_row(item.src, msg, item.index, event.event_id, event.event_type,
                                             "rekeyed", "", now_s))
                    continue
                if ps is None:
                    ps = self.partition_state(partition)
                    touched.add(partition)
                t_ms = to_ms(event.event_time)
                verdict = ps.classify(event.event_id, item.src, t_ms)
                if verdict == "duplicate":
                    counts[(topic, "duplicate")] = counts.get((topic, "duplicate"), 0) + 1
                    log_rows.append(_log_row(item.src, msg, item.index, event.event_id, event.event_type,
                                             "duplicate", "", now_s))
                    continue
                if t_ms > ps.watermark_ms:
                    ps.watermark_ms = t_ms
                rejection = self._apply_event(ps, item, t_ms, now_ms, out, now)
                if verdict == "new":
                    ps.journal_seen(event.event_id, item.src, t_ms)
                if rejection is not None:
                    self._dead_letter(out, rejection, now)
                    continue
                counts[(topic, "accepted")] = counts.get((topic, "accepted"), 0) + 1
                # Its ingest_log row ("accepted") is derived in ClickHouse from the events row.
                ev_rows.append(_event_row(event, item, t_ms, now_s))
        out.counters.by_topic.update(counts)
        newest: dict[tuple[str, int], int] = {}
        for m in messages:
            if m.timestamp_ms > newest.get((m.topic, m.partition), -1):
                newest[(m.topic, m.partition)] = m.timestamp_ms
        for (topic, partition), ts in newest.items():
            read = self.partition_state(partition).read_ts
            if ts > read.get(topic, -1):
                read[topic] = ts
        return out

    def _apply_event(self, ps: PartitionState, item: Accepted, t_ms: int, now_ms: int, out: BatchResult,
                     now: datetime) -> DeadLetter | None:
        """Add an accepted event to the state; a DeadLetter if it breaks an order-level rule."""
        event = item.event
        if isinstance(event, ViewEvent):
            engaged = event.watch_ms >= self.settings.engaged_ms
            out.rows[FUNNEL_EVENTS.name].append((
                event.event_id, t_ms / 1000, event.kind, "view", event.user_id, event.author_id,
                event.video_id, event.shop_id or "", event.traffic, event.watch_ms, int(engaged), "",
                event.source_live_id or ""))
            if engaged:
                ps.add_touch(event.user_id, Touch(t_ms, event.event_id, event.kind, event.author_id, event.video_id,
                                                  event.shop_id or "", event.traffic), item.src)
        elif isinstance(event, LiveRoomEvent):
            out.rows[FUNNEL_EVENTS.name].append((
                event.event_id, t_ms / 1000, "live", event.action, event.user_id or "", event.anchor_id,
                event.live_id, event.shop_id or "", event.traffic, 0, int(event.action == "enter"),
                event.referrer_kind or "", ""))
            if event.action == "enter" and event.user_id:
                ps.add_touch(event.user_id, Touch(t_ms, event.event_id, "live", event.anchor_id, event.live_id,
                                                  event.shop_id or "", event.traffic), item.src)
        elif isinstance(event, OrderEvent):
            if event.status == "paid":
                return self._paid(ps, item, event, t_ms, now_ms)
            return self._refund(ps, item, event, t_ms, out, now)
        return None

    def _paid(self, ps: PartitionState, item: Accepted, event: OrderEvent, t_ms: int, now_ms: int) -> DeadLetter | None:
        first = ps.order_ids.get(event.order_id)
        if first is not None and first != event.event_id:
            return DeadLetter(
                item.msg, item.index, item.src, "order_already_paid",
                f"order {event.order_id} was already paid by event {first}; a second paid event with another "
                "event_id would count it twice. Re-send the same event_id, or use a new order_id",
                event.model_dump_json().encode(), event.event_id, event.event_type)
        ps.add_order(OrderRec(
            event.event_id, item.src, event.user_id, event.order_id, event.shop_id or "", event.sku_id or "",
            event.seller_id, event.conversion_stage, event.channel_id or "", event.amount_fen or 0, t_ms, now_ms,
            event.quantity, item.msg.timestamp_ms))
        return None

    def _refund(self, ps: PartitionState, item: Accepted, event: OrderEvent, t_ms: int, out: BatchResult,
                now: datetime) -> DeadLetter | None:
        rec = RefundRec(event.event_id, item.src, item.msg.topic, item.msg.partition, item.msg.offset, item.index,
                        event.user_id, event.order_id, event.refund_fen or 0, t_ms, event.model_dump_json())
        outcome = ps.settled.get(rec.event_id)
        if outcome is None:
            ps.add_refund(rec)
            order_eid = ps.order_ids.get(rec.order_id)
            if order_eid is None or order_eid not in ps.attrs:
                return None  # held: its order is unknown or not attributed yet
            outcome = self._settle(ps, ps.refunds[rec.event_id], out, now)
        if outcome != "applied":
            return self._refund_letter(ps, ps.refunds.get(rec.event_id, rec), outcome)
        return None

    # -- attribution (timer / end of input) ---------------------------------------------------
    def attribute_due(self, now: datetime | None = None, final: bool = False,
                      caught_up: set[int] | None = None) -> BatchResult:
        """Attribute orders whose ``attribution_delay`` has passed (all of them when ``final``);
        then settle held refunds: apply, or dead-letter as orphans / over-refunds.

        The delay covers the stream's own lateness, not the pipeline's: with ``caught_up`` (the
        (topic, partition) pairs read to their high watermark) an order is due only once every
        topic of its partition is caught up or has been read past the order's own Kafka
        timestamp plus the delay. So a stalled or lagging worker (ClickHouse down, a restart,
        a rebalance, a backlog where orders run ahead of views) never attributes before reading
        the late touches sent right after the order. ``caught_up=None`` (tests, replays) looks
        at the clock alone.
        """
        now = now or datetime.now(UTC)
        now_ms = to_ms(now)
        delay = self.delay_ms
        out = BatchResult()
        for p, ps in self.partitions.items():
            read_to = None  # how far (Kafka time) every topic of the partition has been read
            if caught_up is not None:
                lagging = [ps.read_ts.get(t, 0) for t in self.state_topics if (t, p) not in caught_up]
                read_to = min(lagging) if lagging else None
            due = sorted((o for o in ps.unattributed.values()
                          if (final or (
                              o.arrival_ms + delay <= now_ms
                              and (read_to is None or o.produced_ms + delay <= read_to)))),
                         key=lambda o: (o.t_ms, o.event_id))
            for order in due:
                path = build_path(ps.touches.get(order.user_id, {}).values(), OrderFacts(
                    order.t_ms, order.event_id, order.seller_id, order.shop_id, order.channel, order.channel_id),
                    self.lookback_ms)
                ps.add_attr(order, path)
                self._paid_rows(out, order, path, now)
                out.touched_partitions.add(p)
            held = sorted(ps.unsettled.values(),
                          key=lambda r: (r.t_ms, r.event_id))
            for refund in held:
                order_eid = ps.order_ids.get(refund.order_id)
                if order_eid is not None and order_eid in ps.attrs:
                    outcome = self._settle(ps, refund, out, now)
                elif order_eid is None and (final or ps.watermark_ms >= refund.t_ms + self.orphan_hold_ms):
                    ps.settle(refund, "orphan")
                    outcome = "orphan"
                    self._settled_rows(out, ps, refund, outcome, now)
                else:
                    continue
                out.touched_partitions.add(p)
                if outcome != "applied":
                    self._late_dead_letter(out, ps, refund, outcome)
        return out

    def pending(self) -> tuple[int, int]:
        """(orders awaiting attribution, refunds held)."""
        orders = sum(len(ps.unattributed) for ps in self.partitions.values())
        refunds = sum(len(ps.unsettled) for ps in self.partitions.values())
        return orders, refunds

    def commit_journal(self, out: BatchResult) -> None:
        for p in sorted(out.touched_partitions):
            ps = self.partitions.get(p)
            if ps is not None:
                puts, dels = ps.commit_batch()
                out.journal_puts.extend(puts)
                out.journal_dels.extend(dels)

    def _settle(self, ps: PartitionState, refund: RefundRec, out: BatchResult, now: datetime) -> str:
        order = ps.orders[ps.order_ids[refund.order_id]]
        outcome = "applied" if ps.refunded_fen(refund.order_id) + refund.refund_fen <= order.amount_fen \
            else "over_refund"
        ps.settle(refund, outcome)
        self._settled_rows(out, ps, refund, outcome, now)
        return outcome

    def _settled_rows(self, out: BatchResult, ps: PartitionState, refund: RefundRec, outcome: str,
                      now: datetime) -> None:
        if outcome != "applied":
            return
        order = ps.orders[ps.order_ids[refund.order_id]]
        path = ps.attrs[order.event_id]
        credits = refund_credits(refund.refund_fen, path, self.half_life_ms)
        self._credit_rows(out, refund.event_id, "refund", refund.t_ms, order, path, credits, now)

    def _paid_rows(self, out: BatchResult, order: OrderRec, path: list[Touch], now: datetime) -> None:
        credits = attribute(order.amount_fen, path, self.half_life_ms)
        self._credit_rows(out, order.event_id, "paid", order.t_ms, order, path, credits, now)

    def _credit_rows(self, out: BatchResult, event_id: str, kind: str, t_ms: int, order: OrderRec,
                     path: list[Touch], credits: dict[str, list[int]], now: datetime) -> None:
        rows = out.rows[ATTRIBUTED_GMV.name]
        label, n = path_label(path), len(path)
        order_time, event_time, now_s = row_time(order.t_ms), row_time(t_ms), row_time(to_ms(now))
        for model in MODELS:
            for i, (touch, credit) in enumerate(zip(path, credits[model], strict=True)):
                rows.append((
                    event_id, order.order_id, kind, model, i, int(i == n - 1), touch.stage, touch.account_id,
                    touch.content_id, touch.event_id, int(bool(order.seller_id) and touch.account_id == order.seller_id),
                    touch.traffic, touch.t_ms / 1000, order_time, event_time, order.user_id, order.shop_id,
                    order.seller_id, order.sku_id, order.channel, credit, label, n, now_s))

    def _refund_letter(self, ps: PartitionState, refund: RefundRec, outcome: str) -> DeadLetter:
        msg = SourceMessage(refund.topic, refund.partition, refund.offset, refund.user_id.encode(),
                            refund.raw.encode(), refund.src.split("#")[0])
        if outcome == "over_refund":
            order = ps.orders[ps.order_ids[refund.order_id]]
            already = ps.refunded_fen(refund.order_id)
            return DeadLetter(
                msg, refund.index, refund.src, "over_refund",
                f"refund of {refund.refund_fen} fen on order {refund.order_id} would bring its refunds to "
                f"{already + refund.refund_fen} fen, over the {order.amount_fen} fen paid ({already} fen "
                "refunded before); check the refund amount at the source", refund.raw.encode(), refund.event_id,
                "order")
        return DeadLetter(
            msg, refund.index, refund.src, "orphan_refund",
            f"refund for order {refund.order_id}, which the pipeline never saw paid (held "
            f"{self.settings.orphan_refund_hold} of event time, or to the end of the input); "
            "send the paid order event, then re-send this refund with a new event_id",
            refund.raw.encode(), refund.event_id, "order")

    def _late_dead_letter(self, out: BatchResult, ps: PartitionState, refund: RefundRec, outcome: str,
                          recount: bool = True) -> None:
        """A held refund turned out bad: its outcome changes from accepted to dead_letter."""
        dl = self._refund_letter(ps, refund, outcome)
        if recount:
            out.counters.add(refund.topic, "accepted", -1)
            self._dead_letter(out, dl, datetime.now(UTC))
        else:  # re-emitting rows after a restart: this process never counted it
            now = datetime.now(UTC)
            out.dead_letters.append(dl)
            out.rows[INGEST_LOG.name].append(
                _log_row(dl.src, dl.msg, dl.index, dl.event_id, dl.event_type, "dead_letter", dl.reason_code,
                         row_time(to_ms(now))))
            out.rows[DEAD_LETTERS.name].append(dead_letter_row(dl, now))

    def _dead_letter(self, out: BatchResult, dl: DeadLetter, now: datetime) -> None:
        msg = dl.msg
        out.counters.add(msg.topic, "dead_letter")
        out.dead_letters.append(dl)
        out.rows[INGEST_LOG.name].append(
            _log_row(dl.src, msg, dl.index, dl.event_id, dl.event_type, "dead_letter", dl.reason_code,
                     row_time(to_ms(now))))
        out.rows[DEAD_LETTERS.name].append(dead_letter_row(dl, now))


def _ms(td: Any) -> int:
    return int(td.total_seconds() * 1000)


def _log_row(src: str, msg: SourceMessage, index: int, event_id: str, event_type: str,
             outcome: str, reason_code: str, logged_at: float) -> tuple:
    """An ingest_log row; ``logged_at`` as a row time (``streams.state.row_time``)."""
    return (src, msg.topic, msg.partition, msg.offset, index, event_id, event_type, outcome, reason_code, logged_at)


def dead_letter_row(dl: DeadLetter, now: datetime) -> tuple:
    msg = dl.msg
    return (dl.src, msg.topic, msg.partition, msg.offset, dl.index, dl.event_id, dl.event_type,
            dl.reason_code, dl.reason, dl.raw, now)


def _event_row(event: AnyEvent, item: Accepted, t_ms: int, now_s: float) -> tuple[Any, ...]:
    msg = item.msg
    # The payload as received: re-serialising every event would cost more than validating it.
    # A producer batch's element goes as the parsed object: ClickHouse stores its JSON text in
    # the String column (input_format_json_read_objects_as_strings), compact as to_json writes it.
    raw = item.raw
    payload = raw.decode("utf-8", "replace") if type(raw) is bytes else raw
    return (event.event_id, event.event_type, t_ms / 1000, getattr(event, "user_id", None) or "",
            event.partition_key, item.src, msg.topic, msg.partition, msg.offset, item.index,
            payload or event.model_dump_json(), now_s)
