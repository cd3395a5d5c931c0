"""The batch processor: decoded messages + partition state -> rows, dead letters, journal writes.

No Kafka client, no ClickHouse, no clock of its own: the worker
(``gmv.streams.worker``) feeds it each consumed batch with the time to use and
writes what it returns. Processing is deterministic given the same input and
whatever state it finds: a replayed message gives the same rows (it is
recognised by its ``src``), and an attribution, once journalled, is re-emitted
from the journal rather than recomputed, so a crash between the state write, the
ClickHouse write and the offset commit never changes a total.

Its parts: ``MessageDecoder`` (validation at the edge), ``RekeyRouter``
(co-partitioning), ``PartitionState`` (dedup, touches, orders, journal),
``RefundSettlement`` (what becomes of a refund) and the attribution functions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

from gmv.schemas.events import (
    QUALITY_REASONS,
    AnyEvent,
    CsMessageEvent,
    LiveRoomEvent,
    OrderEvent,
    ReviewEvent,
    ViewEvent,
)
from gmv.streams.core.attribution import OrderFacts, Touch, attribute, build_path
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import Accepted, DeadLetter, MessageDecoder, SourceMessage
from gmv.streams.core.refunds import RefundSettlement
from gmv.streams.core.reviews import APPLIED, ReviewJudge, turn_rows
from gmv.streams.core.routing import Rekeyed, RekeyRouter
from gmv.streams.core.rows import (
    ROW_TYPES,
    CreditRow,
    CsTurnRow,
    DeadLetterRow,
    EventRow,
    FunnelRow,
    IngestLogRow,
    RefundRow,
    ReviewRow,
    build,
    credit_rows,
    log_row,
)
from gmv.streams.core.state import (
    ATTR,
    CS,
    OUTCOME,
    REVIEWED,
    CsMessageRec,
    Horizons,
    OrderRec,
    PartitionState,
    RefundRec,
    ReviewRec,
    row_time,
    to_ms,
)

OUTCOMES = ("accepted", "duplicate", "dead_letter")
# How far every topic of a partition has been read, in Kafka time (ms), for ``attribute_due``;
# None = caught up to the high watermarks (nothing unread can be late for a pending order).
ReadTo = Callable[[int], int | None]


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
class BatchResult:
    """Everything one batch (or one attribution pass) produced, for the worker to write."""

    rows: dict[str, list[tuple]] = field(default_factory=lambda: {t.TABLE: [] for t in ROW_TYPES})
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rekeyed: list[Rekeyed] = field(default_factory=list)
    journal_puts: list[tuple[str, bytes]] = field(default_factory=list)
    journal_dels: list[str] = field(default_factory=list)
    counters: IngestCounters = field(default_factory=IngestCounters)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    touched_partitions: set[int] = field(default_factory=set)
    # Event time (epoch ms) up to which every order seen is attributed once this batch is stored
    # (``BatchProcessor.attribution_watermark_ms``); 0 = none yet.
    watermark_ms: int = 0

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
        self.watermark_ms = max(self.watermark_ms, other.watermark_ms)

    @property
    def credit_rows(self) -> list[CreditRow]:
        return self.rows[CreditRow.TABLE]  # type: ignore[return-value]

    @property
    def funnel_rows(self) -> list[FunnelRow]:
        return self.rows[FunnelRow.TABLE]  # type: ignore[return-value]

    def has_output(self) -> bool:
        return bool(self.touched_partitions or self.journal_puts or self.journal_dels or self.dead_letters)


class BatchProcessor:
    """Validates, de-duplicates, attributes and turns batches into rows. Owns the partition states."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.decoder = MessageDecoder(
            {t: et for t, et in config.source_topics.items()}, config.max_message_bytes,
            config.max_batch_events, config.max_future_skew_ms,
        )
        self.horizons = Horizons(config.dedup_horizon_ms, config.lookback_ms, config.weights_retention_ms)
        self.router = RekeyRouter(config.partitions)
        self.refunds = RefundSettlement(config)
        self.reviews = ReviewJudge(config)
        self.partitions: dict[int, PartitionState] = {}
        # Conversations that got a message since their turns were last derived: (partition, id).
        self._changed_conversations: set[tuple[int, str]] = set()

    def partition_state(self, partition: int) -> PartitionState:
        ps = self.partitions.get(partition)
        if ps is None:
            ps = self.partitions[partition] = PartitionState(partition, self.horizons)
        return ps

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)

    def load(self, partition: int, items: list[tuple[str, bytes | None]], now: datetime) -> BatchResult:
        """Rebuild a partition's state from its changelog; re-emit rows not known to be in ClickHouse."""
        self.forget({partition})
        ps = self.partition_state(partition)
        ps.load(items)
        out = BatchResult()
        now_s = row_time(to_ms(now))
        for u in ps.unconfirmed:
            if u.kind == ATTR.name and u.record.order_event_id in ps.orders:
                order = ps.orders[u.record.order_event_id]
                self._paid_rows(out, order, ps.attrs.get(order.event_id) or [], now_s)
            elif u.kind == OUTCOME.name and u.record.refund_event_id in ps.refunds:
                refund, outcome = ps.refunds[u.record.refund_event_id], u.record.outcome
                self._refund_rows(out, ps, refund, outcome, now_s)
                if outcome != "applied":  # this process never counted it: no recount
                    self._dead_letter(out, self.refunds.dead_letter(ps, refund, outcome), now_s, count=False)
            elif u.kind == REVIEWED.name and u.record.review_event_id in ps.reviews:
                self._review_outcome(out, ps, ps.reviews[u.record.review_event_id], u.record.outcome, now_s,
                                     count=False)
            elif u.kind == CS.name:
                self._changed_conversations.add((partition, u.record.conversation_id))
        ps.unconfirmed.clear()
        self._turn_rows(out, now_s)
        if any(out.rows.values()):
            out.touched_partitions.add(partition)
        return out

    # -- consuming -------------------------------------------------------------------------
    def process(self, messages: list[SourceMessage], now: datetime) -> BatchResult:
        # The hot loop: locals and counts kept out of attribute lookups and calls on purpose;
        # row times inline ``row_time`` (``t_ms / 1000``).
        now_ms = to_ms(now)
        now_s = row_time(now_ms)
        out = BatchResult()
        ev_rows, log_rows = out.rows[EventRow.TABLE], out.rows[IngestLogRow.TABLE]
        next_offsets, touched = out.next_offsets, out.touched_partitions
        decode, owner_of, funnel_rows = self.decoder.decode, self.router.owner, out.funnel_rows
        counts: dict[tuple[str, str], int] = {}
        for msg in messages:
            topic, partition = msg.topic, msg.partition
            key = (topic, partition)
            if next_offsets.get(key, 0) <= msg.offset:
                next_offsets[key] = msg.offset + 1
            ps: PartitionState | None = None
            for item in decode(msg, now):
                if type(item) is DeadLetter:
                    self._dead_letter(out, item, now_s)
                    continue
                event = item.event
                user = event.user_id  # every event type has one (optional on live start/end)
                owner = owner_of(user, partition)
                if owner != partition:
                    out.rekeyed.append(self.router.forward(owner, user, event.model_dump_json().encode(), item.src))
                    out.counters.add(topic, "rekeyed")
                    log_rows.append(log_row(item.src, topic, partition, msg.offset, item.index, event.event_id,
                                            event.event_type, "rekeyed", "", now_s))
                    continue
                if ps is None:
                    ps = self.partition_state(partition)
                    touched.add(partition)
                t_ms = to_ms(event.event_time)
                verdict = ps.classify(event.event_id, item.src)
                if verdict == "duplicate":
                    counts[(topic, "duplicate")] = counts.get((topic, "duplicate"), 0) + 1
                    log_rows.append(log_row(item.src, topic, partition, msg.offset, item.index, event.event_id,
                                            event.event_type, "duplicate", "", now_s))
                    continue
                if t_ms > ps.watermark_ms:
                    ps.watermark_ms = t_ms
                rejection = self._apply_event(ps, item, t_ms, now_ms, out, funnel_rows)
                if verdict == "new":
                    ps.journal_seen(event.event_id, item.src, t_ms)
                if rejection is not None:
                    self._dead_letter(out, rejection, now_s)
                    continue
                counts[(topic, "accepted")] = counts.get((topic, "accepted"), 0) + 1
                # Its ingest_log row ("accepted") is derived in ClickHouse from the events row.
                ev_rows.append(_event_row(event, item, t_ms, now_s))
        out.counters.by_topic.update(counts)
        self._turn_rows(out, now_s)
        return out

    def _apply_event(self, ps: PartitionState, item: Accepted, t_ms: int, now_ms: int, out: BatchResult,
                     funnel_rows: list) -> DeadLetter | None:
        """Add an accepted event to the state; a DeadLetter if it breaks an order-level rule."""
        event = item.event
        if isinstance(event, ViewEvent):
            engaged = event.watch_ms >= self.config.engaged_ms
            funnel_rows.append(build(FunnelRow, (
                event.event_id, t_ms / 1000, event.kind, "view", event.user_id, event.author_id,
                event.video_id, event.shop_id or "", event.traffic, event.watch_ms, int(engaged), "",
                event.source_live_id or "")))
            if engaged:
                ps.add_touch(event.user_id, Touch(t_ms, event.event_id, event.kind, event.author_id, event.video_id,
                                                  event.shop_id or "", event.traffic), item.src)
        elif isinstance(event, LiveRoomEvent):
            funnel_rows.append(build(FunnelRow, (
                event.event_id, t_ms / 1000, "live", event.action, event.user_id or "", event.anchor_id,
                event.live_id, event.shop_id or "", event.traffic, 0, int(event.action == "enter"),
                event.referrer_kind or "", "")))
            if event.action == "enter" and event.user_id:
                ps.add_touch(event.user_id, Touch(t_ms, event.event_id, "live", event.anchor_id, event.live_id,
                                                  event.shop_id or "", event.traffic), item.src)
        elif isinstance(event, OrderEvent):
            if event.status == "paid":
                return self._paid(ps, item, event, t_ms, now_ms)
            return self._refund(ps, item, event, t_ms, out, row_time(now_ms))
        elif isinstance(event, ReviewEvent):
            return self._review(ps, item, event, t_ms, out, row_time(now_ms))
        elif isinstance(event, CsMessageEvent):
            ps.add_cs_message(build(CsMessageRec, (event.event_id, item.src, event.conversation_id, event.shop_id,
                                                   event.user_id, event.sender, t_ms)))
            self._changed_conversations.add((ps.partition, event.conversation_id))
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
                now_s: float) -> DeadLetter | None:
        rec = RefundRec(event.event_id, item.src, item.msg.topic, item.msg.partition, item.msg.offset, item.index,
                        event.user_id, event.order_id, event.refund_fen or 0, t_ms, event.model_dump_json(),
                        event.reason)
        outcome = ps.outcomes.get(rec.event_id)
        if outcome is None:
            ps.add_refund(rec)
            if not self.refunds.order_attributed(ps, rec):
                return None  # held: its order is unknown or not attributed yet
            outcome = self.refunds.decide(ps, ps.refunds[rec.event_id])
            self._refund_rows(out, ps, ps.refunds[rec.event_id], outcome, now_s)
        if outcome != "applied":
            return self.refunds.dead_letter(ps, ps.refunds.get(rec.event_id, rec), outcome)
        return None

    # -- attribution (timer / end of input) ---------------------------------------------------
    def attribute_due(self, now: datetime, final: bool = False, read_to: ReadTo | None = None) -> BatchResult:
        """Attribute orders whose ``attribution_delay`` has passed (all of them when ``final``);
        then decide held refunds: apply, or dead-letter as orphans / over-refunds.

        The delay covers the stream's own lateness, not the pipeline's: with ``read_to`` (how far,
        in Kafka time, every topic of a partition has been read; None once it is caught up) an
        order is due only once its partition has been read past the order's own Kafka timestamp
        plus the delay. So a stalled or lagging worker (ClickHouse down, a restart, a rebalance,
        a backlog where orders run ahead of views) never attributes before reading the late
        touches sent right after the order. ``read_to=None`` (tests, replays) looks at the clock
        alone.
        """
        now_ms = to_ms(now)
        now_s = row_time(now_ms)
        delay = self.config.attribution_delay_ms
        out = BatchResult()
        for p, ps in self.partitions.items():
            limit = None if read_to is None else read_to(p)
            due = sorted((o for o in ps.unattributed.values()
                          if final or (o.arrival_ms + delay <= now_ms
                                       and (limit is None or o.produced_ms + delay <= limit))),
                         key=lambda o: (o.t_ms, o.event_id))
            for order in due:
                path = build_path(ps.touches.get(order.user_id, {}).values(), OrderFacts(
                    order.t_ms, order.event_id, order.seller_id, order.shop_id, order.channel, order.channel_id),
                    self.config.lookback_ms)
                ps.add_attr(order, path)
                self._paid_rows(out, order, path, now_s)
                out.touched_partitions.add(p)
            for refund in sorted(ps.unsettled.values(), key=lambda r: (r.t_ms, r.event_id)):
                if self.refunds.order_attributed(ps, refund):
                    outcome = self.refunds.decide(ps, refund)
                elif self.refunds.orphaned(ps, refund, final):
                    outcome = self.refunds.declare_orphan(ps, refund)
                else:
                    continue
                out.touched_partitions.add(p)
                self._refund_rows(out, ps, refund, outcome, now_s)
                if outcome != "applied":
                    # Counted as accepted when it arrived and was held: its outcome changes.
                    out.counters.add(refund.topic, "accepted", -1)
                    self._dead_letter(out, self.refunds.dead_letter(ps, refund, outcome), now_s)
            for review in sorted(ps.unjudged.values(), key=lambda r: (r.t_ms, r.event_id)):
                outcome = self.reviews.judge(ps, review, self._find_order, final,
                                             None if read_to is None else read_to(p))
                if outcome is None:
                    continue
                out.touched_partitions.add(p)
                if outcome != APPLIED:  # counted as accepted when it arrived and was held
                    out.counters.add(review.topic, "accepted", -1)
                self._review_outcome(out, ps, review, outcome, now_s)
        return out

    # -- reviews and customer service (SPEC §7) -------------------------------------------------
    def _review(self, ps: PartitionState, item: Accepted, event: ReviewEvent, t_ms: int, out: BatchResult,
                now_s: float) -> DeadLetter | None:
        rec = build(ReviewRec, (event.event_id, item.src, item.msg.topic, item.msg.partition, item.msg.offset,
                                item.index, event.user_id, event.order_id, event.product_rating, event.service_rating,
                                event.logistics_rating, t_ms, event.model_dump_json(), item.msg.timestamp_ms))
        outcome = ps.review_outcomes.get(rec.event_id)
        if outcome is None:
            ps.add_review(rec)
            outcome = self.reviews.judge(ps, ps.reviews[rec.event_id], self._find_order, final=False)
            if outcome is None:
                return None  # held: its order is not known yet
            if outcome == APPLIED:
                self._review_outcome(out, ps, ps.reviews[rec.event_id], outcome, now_s)
        if outcome != APPLIED:
            return self.reviews.dead_letter(ps, ps.reviews.get(rec.event_id, rec), outcome, self._find_order)
        return None

    def _review_outcome(self, out: BatchResult, ps: PartitionState, review: ReviewRec, outcome: str, now_s: float,
                        count: bool = True) -> None:
        """The review's fact row, or its dead letter."""
        if outcome == APPLIED:
            row = self.reviews.row(ps, review, now_s)
            if row is not None:
                out.rows[ReviewRow.TABLE].append(row)
        else:
            self._dead_letter(out, self.reviews.dead_letter(ps, review, outcome, self._find_order), now_s, count)

    def _find_order(self, order_id: str) -> OrderRec | None:
        for ps in self.partitions.values():
            order = ps.paid_order(order_id)
            if order is not None:
                return order
        return None

    def _turn_rows(self, out: BatchResult, now_s: float) -> None:
        """Re-derive the turns of every conversation that changed (from all its messages)."""
        unanswered_after = self.config.cs_unanswered_after_ms
        for p, conversation_id in sorted(self._changed_conversations):
            ps = self.partitions.get(p)
            messages = ps.conversations.get(conversation_id) if ps is not None else None
            if messages:
                out.rows[CsTurnRow.TABLE].extend(turn_rows(messages, unanswered_after, now_s))
                out.touched_partitions.add(p)
        self._changed_conversations.clear()

    def _refund_rows(self, out: BatchResult, ps: PartitionState, refund: RefundRec, outcome: str,
                     now_s: float) -> None:
        """An applied refund's credit rows and its fact row (with its reason)."""
        credits = self.refunds.rows(ps, refund, outcome, now_s)
        if not credits:
            return
        out.credit_rows.extend(credits)
        order = ps.paid_order(refund.order_id)
        assert order is not None
        out.rows[RefundRow.TABLE].append(build(RefundRow, (
            refund.event_id, refund.order_id, refund.user_id, order.shop_id, order.sku_id, order.seller_id,
            refund.refund_fen, refund.reason, int(refund.reason in QUALITY_REASONS), row_time(refund.t_ms),
            row_time(order.t_ms), now_s)))

    def attribution_watermark_ms(self, reading: Collection[int] = ()) -> int:
        """The event time up to which every order is attributed: the furthest event time read, held
        back by each partition still ``reading`` its backlog (its unread messages may be older than
        another partition's) and by the earliest order still waiting for its attribution delay.
        Per-minute business views (alerts, panels) are complete up to here, late events aside."""
        seen = max((ps.watermark_ms for ps in self.partitions.values()), default=0)
        behind = (self.partitions[p].watermark_ms if p in self.partitions else 0 for p in reading)
        waiting = (o.t_ms for ps in self.partitions.values() for o in ps.unattributed.values())
        return min([seen, *behind, *waiting]) if seen else 0

    def pending(self) -> tuple[int, int]:
        """(orders awaiting attribution, refunds and reviews held)."""
        orders = sum(len(ps.unattributed) for ps in self.partitions.values())
        held = sum(len(ps.unsettled) + len(ps.unjudged) for ps in self.partitions.values())
        return orders, held

    def commit_journal(self, out: BatchResult) -> None:
        for p in sorted(out.touched_partitions):
            ps = self.partitions.get(p)
            if ps is not None:
                puts, dels = ps.commit_batch()
                out.journal_puts.extend(puts)
                out.journal_dels.extend(dels)

    def _paid_rows(self, out: BatchResult, order: OrderRec, path: list[Touch], now_s: float) -> None:
        credits = attribute(order.amount_fen, path, self.config.half_life_ms)
        out.credit_rows.extend(credit_rows(order.event_id, "paid", order.t_ms, order, path, credits, now_s))

    @staticmethod
    def _dead_letter(out: BatchResult, dl: DeadLetter, now_s: float, count: bool = True) -> None:
        msg = dl.msg
        if count:
            out.counters.add(msg.topic, "dead_letter")
        out.dead_letters.append(dl)
        out.rows[IngestLogRow.TABLE].append(log_row(dl.src, msg.topic, msg.partition, msg.offset, dl.index,
                                                    dl.event_id, dl.event_type, "dead_letter", dl.reason_code, now_s))
        out.rows[DeadLetterRow.TABLE].append(dead_letter_row(dl, now_s))


def dead_letter_row(dl: DeadLetter, now_s: float) -> DeadLetterRow:
    msg = dl.msg
    return DeadLetterRow(dl.src, msg.topic, msg.partition, msg.offset, dl.index, dl.event_id, dl.event_type,
                         dl.reason_code, dl.reason, dl.raw, _datetime(now_s))


def _datetime(row_s: float) -> datetime:
    from gmv.streams.core.state import from_ms

    return from_ms(round(row_s * 1000))


def _event_row(event: AnyEvent, item: Accepted, t_ms: int, now_s: float) -> EventRow:
    msg = item.msg
    # The payload as received: re-serialising every event would cost more than validating it.
    # A producer batch's element goes as the parsed object: ClickHouse stores its JSON text in
    # the String column (input_format_json_read_objects_as_strings), compact as to_json writes it.
    raw = item.raw
    payload = raw.decode("utf-8", "replace") if type(raw) is bytes else raw
    return build(EventRow, (event.event_id, event.event_type, t_ms / 1000, getattr(event, "user_id", None) or "",
                           event.partition_key, item.src, msg.topic, msg.partition, msg.offset, item.index,
                           payload or event.model_dump_json(), now_s))
