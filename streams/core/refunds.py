"""What becomes of a refund (SPEC §3 "Refunds", §5 over-refunds).

A refund of ``r`` fen is credited as ``−r`` split with its order's path and rounding
(``applied``), once its order is attributed. One that would take the order's refunds
past its paid amount is ``over_refund``; one whose order never arrives within
``orphan_refund_hold`` of event time (or by the end of a ``gmv run``) is ``orphan``.
The last two become dead letters. The outcome is journalled once and never changes.
"""

from __future__ import annotations

from gmv.streams.core.attribution import refund_credits
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import DeadLetter, SourceMessage
from gmv.streams.core.rows import CreditRow, credit_rows
from gmv.streams.core.state import PartitionState, RefundRec


class RefundSettlement:
    def __init__(self, config: PipelineConfig) -> None:
        self.half_life_ms = config.half_life_ms
        self.orphan_hold_ms = config.orphan_refund_hold_ms

    @staticmethod
    def order_attributed(ps: PartitionState, refund: RefundRec) -> bool:
        order_eid = ps.order_ids.get(refund.order_id)
        return order_eid is not None and order_eid in ps.attrs

    def orphaned(self, ps: PartitionState, refund: RefundRec, final: bool) -> bool:
        """Its order is unknown and the hold has run out (event time), or the input has ended."""
        return refund.order_id not in ps.order_ids and (final or ps.watermark_ms >= refund.t_ms + self.orphan_hold_ms)

    def decide(self, ps: PartitionState, refund: RefundRec) -> str:
        """Applied or over_refund, for a refund whose order is attributed; journals the outcome."""
        order = ps.paid_order(refund.order_id)
        assert order is not None, "decide() is for refunds whose order is attributed"
        outcome = "applied" if ps.refunded_fen(refund.order_id) + refund.refund_fen <= order.amount_fen \
            else "over_refund"
        ps.record_refund_outcome(refund, outcome)
        return outcome

    def declare_orphan(self, ps: PartitionState, refund: RefundRec) -> str:
        ps.record_refund_outcome(refund, "orphan")
        return "orphan"

    def rows(self, ps: PartitionState, refund: RefundRec, outcome: str, now_s: float) -> list[CreditRow]:
        """The credit rows of an applied refund (none for the others)."""
        if outcome != "applied":
            return []
        order = ps.paid_order(refund.order_id)
        assert order is not None
        path = ps.attrs[order.event_id]
        credits = refund_credits(refund.refund_fen, path, self.half_life_ms)
        return credit_rows(refund.event_id, "refund", refund.t_ms, order, path, credits, now_s)

    def dead_letter(self, ps: PartitionState, refund: RefundRec, outcome: str) -> DeadLetter:
        """The dead letter of a refund that was not applied."""
        msg = SourceMessage(refund.topic, refund.partition, refund.offset, refund.user_id.encode(),
                            refund.raw.encode(), refund.src.split("#")[0])
        raw = refund.raw.encode()
        if outcome == "over_refund":
            order = ps.paid_order(refund.order_id)
            assert order is not None
            already = ps.refunded_fen(refund.order_id)
            return DeadLetter(
                msg, refund.index, refund.src, "over_refund",
                f"refund of {refund.refund_fen} fen on order {refund.order_id} would bring its refunds to "
                f"{already + refund.refund_fen} fen, over the {order.amount_fen} fen paid ({already} fen "
                "refunded before); check the refund amount at the source", raw, refund.event_id, "order")
        return DeadLetter(
            msg, refund.index, refund.src, "orphan_refund",
            f"refund for order {refund.order_id}, which the pipeline never saw paid (held {_duration(self.orphan_hold_ms)} of event "
            "time, or to the end of the input); send the paid order event, then re-send this refund with a new "
            "event_id", raw, refund.event_id, "order")


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms / size:g} {unit}"
    return f"{ms} ms"
