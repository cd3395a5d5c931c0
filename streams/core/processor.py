"""The batch processor: decoded messages + partition state -> rows, dead letters, journal writes.

No Kafka client, no ClickHouse, no clock of its own: the worker
(``gmv.streams.worker``) feeds it each consumed batch with the time to use and
writes what it returns. Processing is deterministic given the same input and
whatever state it finds: a replayed message gives the same rows (it is
recognised by its ``src``), and an attribution, once journalled, is re-emitted
from the journal rather than recomputed, so a crash between the state write, the
ClickHouse write and the offset commit never changes a total.

Its parts: ``MessageDecoder`` (validation at the edge), ``RekeyRouter``
(co-partitioning), ``PartitionState`` (the journal and one state per domain: de-duplication,
touches and attribution, refunds, reviews, conversations). An accepted event goes to its
type's handler in its partition's ``handlers`` table; a restart re-emits what ClickHouse may
lack through each derived journal kind's ``reemit``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from gmv.schemas.events import AnyEvent
from gmv.schemas.times import row_time, to_ms
from gmv.streams.core.batch import (
    OUTCOMES,
    BatchContext,
    BatchResult,
    IngestCounters,
    dead_letter_row,
)
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import Accepted, DeadLetter, MessageDecoder, SourceMessage
from gmv.streams.core.journal import ChangelogRecord, Confirmation, is_current
from gmv.streams.core.legacy import LegacyJournal
from gmv.streams.core.routing import RekeyRouter
from gmv.streams.core.rows import EventRow, IngestLogRow, build
from gmv.streams.core.state import Horizons, PartitionState
from gmv.streams.core.touches import OrderRec, PaidOrderIndex
from gmv.streams.state.stores import StateStores

__all__ = ["OUTCOMES", "BatchProcessor", "BatchResult", "IngestCounters", "ReadTo", "dead_letter_row"]

# How far every topic of a partition has been read, in Kafka time (ms), for ``attribute_due``;
# None = caught up to the high watermarks (nothing unread can be late for a pending order).
ReadTo = Callable[[int], int | None]


class BatchProcessor:
    """Validates, de-duplicates, attributes and turns batches into rows. Owns the partition states."""

    def __init__(self, config: PipelineConfig, stores: StateStores | None = None) -> None:
        self.config = config
        self.stores = StateStores() if stores is None else stores
        self.decoder = MessageDecoder(
            {t: et for t, et in config.source_topics.items()}, config.max_message_bytes,
            config.max_batch_events, config.max_future_skew_ms,
        )
        self.horizons = Horizons(config.dedup_horizon_ms, config.lookback_ms, config.weights_retention_ms)
        self.router = RekeyRouter(config.partitions)
        self.partitions: dict[int, PartitionState] = {}
        # order_id -> the partitions holding its paid order: a review may land on another partition.
        self.paid_orders = PaidOrderIndex(self.partitions)
        # Conversations that got a message since their turns were last derived: (partition, id).
        self._changed_conversations: set[tuple[int, str]] = set()
        # Per (topic, partition), the latest event time read on it: a topic still reading its backlog
        # holds the watermark back to here, whatever the partition's other topics read ahead of it.
        self.topic_read_ms: dict[tuple[str, int], int] = {}

    def partition_state(self, partition: int) -> PartitionState:
        ps = self.partitions.get(partition)
        if ps is None:
            ps = self.partitions[partition] = PartitionState(partition, self.horizons, self.paid_orders,
                                                             self.stores.open(partition))
        return ps

    def forget(self, partitions: set[int]) -> None:
        """Partitions that went elsewhere: their states go, their stores close (they stay on disk)."""
        self.topic_read_ms = {k: v for k, v in self.topic_read_ms.items() if k[1] not in partitions}
        for p in partitions:
            if self.partitions.pop(p, None) is not None:
                self.stores.close(p)

    def find_order(self, order_id: str) -> OrderRec | None:
        """The paid order of an order_id, in whichever partition this processor holds it."""
        return self.paid_orders.find(order_id)

    def load(self, partition: int, items: list[ChangelogRecord], now: datetime) -> BatchResult:
        """Rebuild a partition's state from its changelog (either format: the first one is migrated,
        ``migrate``); re-emit rows not known to be in ClickHouse. The store is written at once."""
        self.forget({partition})
        self.stores.wipe(partition)
        self.apply_changelog(partition, [kv for kv in items if is_current(kv[0])])
        self.partition_state(partition).journal.stage().persist(None)
        return self.restored(partition, [kv for kv in items if not is_current(kv[0])], now)[0]

    def restored(self, partition: int, legacy: list[ChangelogRecord], now: datetime) -> tuple[BatchResult, bool]:
        """A partition whose format-2 records are applied: the rows of its pending records, then the
        first format's records (``legacy``, read beside them) migrated if any is still live; its old
        tombstones alone, left by a migration before, need none. Returns (the result, migrated)."""
        out = self.reemit(partition, now)
        old = LegacyJournal()
        old.read(legacy)
        if not old.entries:
            return out, False
        out.merge(self.migrate(partition, legacy, now, old))
        return out, True

    def apply_changelog(self, partition: int, items: list[ChangelogRecord]) -> int:
        """Format-2 changelog records, in offset order, into the partition's state (its store's writes
        are staged by the caller)."""
        return self.partition_state(partition).load(items)

    def migrate(self, partition: int, items: list[ChangelogRecord], now: datetime,
                legacy: LegacyJournal | None = None) -> BatchResult:
        """A changelog of the first format (``gmv.streams.core.legacy``) into format 2: every live record
        is made again (pending if no mark covered it) and every old key gets its tombstone. The result
        carries those changelog records and the rows of the unconfirmed records, re-emitted.
        (``legacy``: ``items`` read already.)"""
        if legacy is None:
            legacy = LegacyJournal()
            legacy.read(items)
        ps = self.partition_state(partition)
        journal = ps.journal
        for entry in legacy.entries.values():
            kind = journal.kinds[entry.kind]
            for raw in entry.records:
                rec = kind.decode(raw)
                kind.apply(rec)
                journal.record(entry.kind, rec, entry.t_max, confirmed=not (kind.derived and entry.unconfirmed))
            journal.advance(entry.t_max)
        out = self.reemit_staged(partition, now)
        puts, staged = journal.commit()
        out.journal_puts.extend(puts)
        out.journal_puts.extend((k, None) for k in dict.fromkeys(k for k, v in items if v is not None))
        out.staged.append(staged)
        out.touched_partitions.add(partition)
        return out

    def reemit_staged(self, partition: int, now: datetime) -> BatchResult:
        """The rows of the derived records staged unconfirmed (a migration's)."""
        ps = self.partitions[partition]
        ctx = self._context(now)
        kinds = ps.journal.kinds
        for name, rec, _, confirmed in ps.journal._staged:
            if kinds[name].derived and not confirmed:
                kinds[name].reemit(rec, ctx)
        self._turn_rows(ctx)
        return ctx.out

    def reemit(self, partition: int, now: datetime) -> BatchResult:
        """The rows of every pending record of a partition just recovered: ClickHouse may lack them."""
        ps = self.partition_state(partition)
        ctx = self._context(now)
        kinds = ps.journal.kinds
        for u in ps.journal.unconfirmed():
            kinds[u.kind].reemit(u.record, ctx)
        self._turn_rows(ctx)
        if any(ctx.out.rows.values()):
            ctx.out.touched_partitions.add(partition)
        return ctx.out

    # -- consuming -------------------------------------------------------------------------
    def process(self, messages: list[SourceMessage], now: datetime) -> BatchResult:
        # The hot loop: locals and counts kept out of attribute lookups and calls on purpose;
        # row times inline ``row_time`` (``t_ms / 1000``).
        ctx = self._context(now)
        out, now_s = ctx.out, ctx.now_s
        ev_rows, log_rows = out.rows[EventRow.TABLE], out.rows[IngestLogRow.TABLE]
        next_offsets, touched = out.next_offsets, out.touched_partitions
        decode, owner_of = self.decoder.decode, self.router.owner
        counts: dict[tuple[str, str], int] = {}
        for msg in messages:
            topic, partition = msg.topic, msg.partition
            key = (topic, partition)
            if next_offsets.get(key, 0) <= msg.offset:
                next_offsets[key] = msg.offset + 1
            ps: PartitionState | None = None
            for item in decode(msg, now):
                if type(item) is DeadLetter:
                    ctx.dead_letter(item)
                    continue
                event = item.event
                user = event.user_id  # every event type has one (optional on live start/end)
                owner = owner_of(user, partition)
                if owner != partition:
                    out.rekeyed.append(self.router.forward(owner, user, event.model_dump_json().encode(), item.src))
                    out.counters.add(topic, "rekeyed")
                    log_rows.append(_log_row(item, "rekeyed", now_s))
                    continue
                if ps is None:
                    ps = self.partition_state(partition)
                    touched.add(partition)
                    journal, dedup, handlers = ps.journal, ps.dedup, ps.handlers
                t_ms = to_ms(event.event_time)
                if t_ms > self.topic_read_ms.get(key, 0):
                    self.topic_read_ms[key] = t_ms
                verdict = dedup.classify(event.event_id, item.src)
                if verdict == "duplicate":
                    counts[(topic, "duplicate")] = counts.get((topic, "duplicate"), 0) + 1
                    log_rows.append(_log_row(item, "duplicate", now_s))
                    continue
                if t_ms > journal.watermark_ms:
                    journal.watermark_ms = t_ms
                carried, rejection, engaged = handlers[type(event)](item, t_ms, ctx)
                if verdict == "new" and not carried:  # no record of its own journals its de-duplication
                    dedup.journal_seen(event.event_id, item.src, t_ms)
                if rejection is not None:
                    ctx.dead_letter(rejection)
                    continue
                counts[(topic, "accepted")] = counts.get((topic, "accepted"), 0) + 1
                # Its ingest_log row ("accepted") is derived in ClickHouse from the events row.
                # So is its funnel_events row, for a view or live-room event (``engaged`` says the funnel's).
                ev_rows.append(_event_row(event, item, t_ms, now_s, engaged))
        out.counters.by_topic.update(counts)
        self._turn_rows(ctx)
        return out

    # -- attribution (timer / end of input) ---------------------------------------------------
    def attribute_due(self, now: datetime, final: bool = False, read_to: ReadTo | None = None,
                      read_past: Callable[[int], int] | None = None) -> BatchResult:
        """Attribute orders whose ``attribution_delay`` has passed (all of them when ``final``);
        then decide held refunds: apply, or dead-letter as orphans / over-refunds; then judge held
        reviews.

        The delay covers the stream's own lateness, not the pipeline's: with ``read_to`` (how far,
        in Kafka time, every topic of a partition has been read; None once it is caught up) an
        order is due only once its partition has been read past the order's own Kafka timestamp
        plus the delay. So a stalled or lagging worker (ClickHouse down, a restart, a rebalance,
        a backlog where orders run ahead of views) never attributes before reading the late
        touches sent right after the order. ``read_to=None`` (tests, replays) looks at the clock
        alone. A held review is an orphan only once ``read_past`` (how far every topic is surely
        read, a caught-up one included) is past its own Kafka time; without it, as ``read_to``.
        """
        ctx = self._context(now)
        for p, ps in self.partitions.items():
            limit = None if read_to is None else read_to(p)
            ps.attribution.attribute_due(ctx, final, limit)
            ps.settlement.settle_held(ctx, final)
            ps.judgement.judge_held(ctx, final, limit if read_past is None else read_past(p))
        return ctx.out

    def attribution_watermark_ms(self, reading: Collection[tuple[str, int]] = ()) -> int:
        """The event time up to which every order is attributed: the furthest event time read, held
        back by each (topic, partition) still ``reading`` its backlog (its unread messages may be older
        than what another topic, or partition, read: a replay reads the views topic far ahead of the
        orders of the same partition) and by the earliest order still waiting for its attribution
        delay. Per-minute business views (alerts, panels) are complete up to here, late events aside."""
        seen = max((ps.watermark_ms for ps in self.partitions.values()), default=0)
        behind = (self.topic_read_ms.get(key, 0) for key in reading)
        waiting = (o.t_ms for ps in self.partitions.values() for o in ps.attribution.unattributed.values())
        return min([seen, *behind, *waiting]) if seen else 0

    def pending(self) -> tuple[int, int]:
        """(orders awaiting attribution, refunds and reviews held)."""
        orders = sum(len(ps.attribution.unattributed) for ps in self.partitions.values())
        held = sum(len(ps.settlement.unsettled) + len(ps.judgement.unjudged) for ps in self.partitions.values())
        return orders, held

    def unconfirmed_records(self) -> int:
        """Derived records whose rows ClickHouse may lack (pending): a restart re-emits them."""
        return sum(len(ps.journal.pending.mem) for ps in self.partitions.values())

    def marks(self, partitions: Collection[int] = ()) -> dict[int, list[Confirmation]]:
        """For each partition, its pending records made so far: confirmed once ClickHouse holds their
        rows and rollups (the mark follows the refresh that stores them)."""
        out = {}
        for p, ps in sorted(self.partitions.items()):
            ids = ps.journal.take_unmarked()
            if ids:
                out[p] = [Confirmation(ps.journal, ids)]
        return out

    def commit_journal(self, out: BatchResult) -> None:
        """Every partition's changed state: its changelog records, and its store writes staged."""
        for p, ps in sorted(self.partitions.items()):
            if p in out.touched_partitions or ps.store.dirty or ps.journal._staged:
                puts, staged = ps.journal.commit()
                out.journal_puts.extend(puts)
                out.staged.append(staged)

    def _context(self, now: datetime) -> BatchContext:
        now_ms = to_ms(now)
        return BatchContext(self.config, BatchResult(), now_ms, row_time(now_ms), self._changed_conversations)

    def _turn_rows(self, ctx: BatchContext) -> None:
        """Re-derive the turns of every conversation that changed (from all its messages)."""
        for p, conversation_id in sorted(self._changed_conversations):
            ps = self.partitions.get(p)
            if ps is not None and ps.service.turn_rows(conversation_id, ctx):
                ctx.out.touched_partitions.add(p)
        self._changed_conversations.clear()


def _log_row(item: Accepted, outcome: str, now_s: float) -> IngestLogRow:
    """The ingest_log row of an event that is not accepted here (a duplicate, or forwarded)."""
    msg, event = item.msg, item.event
    return IngestLogRow(src=item.src, source_topic=msg.topic, source_partition=msg.partition, source_offset=msg.offset,
                        element_index=item.index, event_id=event.event_id, event_type=event.event_type,
                        outcome=outcome, reason_code="", logged_at=now_s)


def _event_row(event: AnyEvent, item: Accepted, t_ms: int, now_s: float, engaged: bool) -> EventRow:
    msg = item.msg
    # The payload as received: re-serialising every event would cost more than validating it.
    # A producer batch's element goes as the parsed object: ClickHouse stores its JSON text in
    # the String column (input_format_json_read_objects_as_strings), compact as to_json writes it.
    # Built positionally (one per accepted event: keywords cost ~3% of the loop); a unit test
    # checks it field by field.
    raw = item.raw
    payload = raw.decode("utf-8", "replace") if type(raw) is bytes else raw
    return build(EventRow, (event.event_id, event.event_type, t_ms / 1000, getattr(event, "user_id", None) or "",
                           event.partition_key, item.src, msg.topic, msg.partition, msg.offset, item.index,
                           payload or event.model_dump_json(), now_s, int(engaged)))
