"""What becomes of a refund (SPEC §3 "Refunds", §5 over-refunds), in one partition's state.

A refund of ``r`` fen is credited as ``−r`` split with its order's path and rounding
(``applied``), once its order is attributed. One that would take the order's refunds
past its paid amount is ``over_refund``; one whose order never arrives within
``orphan_refund_hold`` of event time (or by the end of a ``gmv run``) is ``orphan``.
The last two become dead letters. The outcome is journalled once and never changes.
"""

from __future__ import annotations

from typing import NamedTuple

from gmv.schemas.events import QUALITY_REASONS, OrderEvent
from gmv.schemas.times import row_time
from gmv.streams.core.attribution import refund_credits
from gmv.streams.core.batch import CARRIED, NOT_CARRIED, BatchContext, Handled
from gmv.streams.core.codec import TEXT, decode_json, encode_json, record_codec
from gmv.streams.core.decode import Accepted, DeadLetter, SourceMessage
from gmv.streams.core.dedup import DedupState
from gmv.streams.core.journal import Journal
from gmv.streams.core.kinds import Kind
from gmv.streams.core.rows import RefundRow
from gmv.streams.core.touches import TouchState, credit_rows
from gmv.streams.state.store import Codec, ResidentMap, StoredMap

REFUND, SETTLED = "refund", "settled"
APPLIED = "applied"


class RefundRec(NamedTuple):
    """A refund event and where it came from (so it can be dead-lettered later, if it must be)."""

    event_id: str
    src: str
    topic: str
    partition: int
    offset: int
    index: int
    user_id: str
    order_id: str
    refund_fen: int
    t_ms: int
    raw: str  # the validated event as JSON
    reason: str = "other"  # refund_reason (journals from before SPEC §7 carried none)


class RefundOutcome(NamedTuple):
    refund_event_id: str
    outcome: str  # applied | orphan | over_refund


REFUND_CODEC: Codec[RefundRec] = record_codec(RefundRec)
ID_SET: Codec[set[str]] = Codec(lambda ids: encode_json(sorted(ids)), lambda raw: set(decode_json(raw)))


class RefundKind(Kind["RefundState"]):
    name = REFUND

    def decode(self, raw: list) -> RefundRec:
        return RefundRec(*raw)

    def apply(self, rec: RefundRec) -> None:
        st = self.st
        st.refunds[rec.event_id] = rec
        siblings = st.refunds_of.get(rec.order_id) or set()
        siblings.add(rec.event_id)
        st.refunds_of[rec.order_id] = siblings
        st.dedup.remember(rec.event_id, rec.src)
        if rec.event_id not in st.outcomes:
            st.unsettled[rec.event_id] = rec

    def unapply(self, rec: RefundRec) -> None:
        st = self.st
        known = st.refunds.pop(rec.event_id, None)
        st.unsettled.pop(rec.event_id, None)
        if known is not None:
            siblings = st.refunds_of.get(known.order_id)
            if siblings is not None:
                siblings.discard(known.event_id)
                if siblings:
                    st.refunds_of[known.order_id] = siblings
                else:
                    del st.refunds_of[known.order_id]
        st.dedup.forget(rec.event_id, rec.src)

    def may_expire(self, rec: RefundRec) -> bool:
        """Past retention, once settled."""
        return rec.event_id in self.st.outcomes


class OutcomeKind(Kind["RefundState"]):
    name = SETTLED
    derived = True

    def decode(self, raw: list) -> RefundOutcome:
        return RefundOutcome(*raw)

    def apply(self, rec: RefundOutcome) -> None:
        self.st.outcomes[rec.refund_event_id] = rec.outcome
        self.st.unsettled.pop(rec.refund_event_id, None)

    def unapply(self, rec: RefundOutcome) -> None:
        st = self.st
        st.outcomes.pop(rec.refund_event_id, None)
        refund = st.refunds.get(rec.refund_event_id)
        if refund is not None:
            st.unsettled[rec.refund_event_id] = refund

    def reemit(self, rec: RefundOutcome, ctx: BatchContext) -> None:
        refund = self.st.refunds.get(rec.refund_event_id)
        if refund is None:
            return
        self.st.rows(ctx, refund, rec.outcome)
        if rec.outcome != APPLIED:  # this process never counted it: no recount
            ctx.dead_letter(self.st.dead_letter(refund, rec.outcome, ctx), count=False)


class RefundState:
    """One partition's refunds and their outcomes, and the refund handler."""

    def __init__(self, journal: Journal, dedup: DedupState, orders: TouchState) -> None:
        self.journal = journal
        self.dedup = dedup
        self.orders = orders
        store = journal.store
        self.refunds: StoredMap[RefundRec] = StoredMap(store, "f|", REFUND_CODEC)  # refund event_id -> refund
        self.outcomes: StoredMap[str] = StoredMap(store, "g|", TEXT)  # refund event_id -> applied | orphan | ...
        # Held in memory too, so that per-batch work follows what is pending, not what is retained
        # (refunds stay for weights_retention, 90 days by default).
        self.unsettled: ResidentMap[RefundRec] = ResidentMap(store, "h|", REFUND_CODEC)  # without outcome
        self.refunds_of: StoredMap[set[str]] = StoredMap(store, "j|", ID_SET)  # order_id -> its refunds' event_ids
        self._refund = journal.register(self, RefundKind)
        self._outcome = journal.register(self, OutcomeKind)

    def on_refund(self, item: Accepted, t_ms: int, ctx: BatchContext) -> Handled:
        event: OrderEvent = item.event  # type: ignore[assignment]
        msg = item.msg
        rec = RefundRec(event_id=event.event_id, src=item.src, topic=msg.topic, partition=msg.partition,
                        offset=msg.offset, index=item.index, user_id=event.user_id, order_id=event.order_id,
                        refund_fen=event.refund_fen or 0, t_ms=t_ms, raw=event.model_dump_json(), reason=event.reason)
        carried = False
        outcome = self.outcomes.get(rec.event_id)
        if outcome is None:
            carried = self.add(rec)
            if not self.order_attributed(rec):
                return CARRIED if carried else NOT_CARRIED  # held: its order is unknown or not attributed yet
            outcome = self.decide(self.refunds[rec.event_id])
            self.rows(ctx, self.refunds[rec.event_id], outcome)
        if outcome != APPLIED:
            return Handled(carried, self.dead_letter(self.refunds.get(rec.event_id, rec), outcome, ctx))
        return CARRIED if carried else NOT_CARRIED

    def add(self, refund: RefundRec) -> bool:
        """True if journalled now (its record carries the event's de-duplication)."""
        if refund.event_id in self.refunds:
            return False
        self._refund.apply(refund)
        self.journal.record(REFUND, refund, refund.t_ms)
        return True

    def settle_held(self, ctx: BatchContext, final: bool) -> None:
        """Decide held refunds, in event-time order: apply, or dead-letter as orphans / over-refunds."""
        for refund in sorted(self.unsettled.values(), key=lambda r: (r.t_ms, r.event_id)):
            if self.order_attributed(refund):
                outcome = self.decide(refund)
            elif self.orphaned(refund, final, ctx.config.orphan_refund_hold_ms):
                outcome = self.record_outcome(refund, "orphan")
            else:
                continue
            ctx.out.touched_partitions.add(self.journal.partition)
            self.rows(ctx, refund, outcome)
            if outcome != APPLIED:
                # Counted as accepted when it arrived and was held: its outcome changes.
                ctx.out.counters.add(refund.topic, "accepted", -1)
                ctx.dead_letter(self.dead_letter(refund, outcome, ctx))

    def order_attributed(self, refund: RefundRec) -> bool:
        order_eid = self.orders.order_ids.get(refund.order_id)
        return order_eid is not None and order_eid in self.orders.attrs

    def orphaned(self, refund: RefundRec, final: bool, hold_ms: int) -> bool:
        """Its order is unknown and the hold has run out (event time), or the input has ended."""
        return refund.order_id not in self.orders.order_ids and (
            final or self.journal.watermark_ms >= refund.t_ms + hold_ms)

    def decide(self, refund: RefundRec) -> str:
        """Applied or over_refund, for a refund whose order is attributed; journals the outcome."""
        order = self.orders.paid_order(refund.order_id)
        assert order is not None, "decide() is for refunds whose order is attributed"
        outcome = APPLIED if self.refunded_fen(refund.order_id) + refund.refund_fen <= order.amount_fen \
            else "over_refund"
        return self.record_outcome(refund, outcome)

    def record_outcome(self, refund: RefundRec, outcome: str) -> str:
        rec = RefundOutcome(refund.event_id, outcome)
        self._outcome.apply(rec)
        self.journal.record(SETTLED, rec, refund.t_ms)
        return outcome

    def refunded_fen(self, order_id: str) -> int:
        """Refunds applied so far to an order."""
        return sum(self.refunds[eid].refund_fen for eid in self.refunds_of.get(order_id, ())
                   if self.outcomes.get(eid) == APPLIED)

    def rows(self, ctx: BatchContext, refund: RefundRec, outcome: str) -> None:
        """An applied refund's credit rows and its fact row (with its reason); none for the others."""
        if outcome != APPLIED:
            return
        order = self.orders.paid_order(refund.order_id)
        assert order is not None
        path = self.orders.attrs[order.event_id]
        credits = refund_credits(refund.refund_fen, path, ctx.config.half_life_ms)
        rows = credit_rows(refund.event_id, "refund", refund.t_ms, order, path, credits, ctx.now_s)
        if not rows:
            return
        ctx.out.credit_rows.extend(rows)
        ctx.out.rows[RefundRow.TABLE].append(RefundRow(
            event_id=refund.event_id, order_id=refund.order_id, user_id=refund.user_id, shop_id=order.shop_id,
            sku_id=order.sku_id, seller_id=order.seller_id, refund_fen=refund.refund_fen, reason=refund.reason,
            is_quality=int(refund.reason in QUALITY_REASONS), event_time=row_time(refund.t_ms),
            order_time=row_time(order.t_ms), settled_at=ctx.now_s))

    def dead_letter(self, refund: RefundRec, outcome: str, ctx: BatchContext) -> DeadLetter:
        """The dead letter of a refund that was not applied."""
        msg = SourceMessage(refund.topic, refund.partition, refund.offset, refund.user_id.encode(),
                            refund.raw.encode(), refund.src.split("#")[0])
        raw = refund.raw.encode()
        if outcome == "over_refund":
            order = self.orders.paid_order(refund.order_id)
            assert order is not None
            already = self.refunded_fen(refund.order_id)
            return DeadLetter(
                msg, refund.index, refund.src, "over_refund",
                f"refund of {refund.refund_fen} fen on order {refund.order_id} would bring its refunds to "
                f"{already + refund.refund_fen} fen, over the {order.amount_fen} fen paid ({already} fen "
                "refunded before); check the refund amount at the source", raw, refund.event_id, "order")
        return DeadLetter(
            msg, refund.index, refund.src, "orphan_refund",
            f"refund for order {refund.order_id}, which the pipeline never saw paid (held "
            f"{_duration(ctx.config.orphan_refund_hold_ms)} of event time, or to the end of the input); send the "
            "paid order event, then re-send this refund with a new event_id", raw, refund.event_id, "order")


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms / size:g} {unit}"
    return f"{ms} ms"
