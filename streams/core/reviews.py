"""What becomes of a review (SPEC §7), and the turn rows of a conversation.

A review joins its paid order in the partition state (both are keyed by the buyer's
``user_id``): ``applied`` when the order is a paid order of the same user and has no
review yet. A review of an order paid by another user is ``review_user_mismatch``
(found in this partition, or in any other partition this worker owns); a second
review of an order is ``review_already_given``; one whose order never arrives within
``orphan_review_hold`` of event time (or by the end of a ``gmv run``) is
``orphan_review``. Held reviews are judged in event-time order (ties by event_id), so
which of two reviews of one order counts does not depend on arrival order within a
pass. The outcome is journalled once and never changes.
"""

from __future__ import annotations

from collections.abc import Callable

from gmv.schemas.trust import CsMessage, buyer_turns
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import DeadLetter, SourceMessage
from gmv.streams.core.rows import CsTurnRow, ReviewRow, build
from gmv.streams.core.state import CsMessageRec, OrderRec, PartitionState, ReviewRec, row_time

APPLIED = "applied"
# order_id -> the paid order, wherever this worker holds it (a review by another user lands on
# that user's partition, not on the order's).
FindOrder = Callable[[str], OrderRec | None]


class ReviewJudge:
    def __init__(self, config: PipelineConfig) -> None:
        self.hold_ms = config.orphan_review_hold_ms

    def judge(self, ps: PartitionState, review: ReviewRec, find_order: FindOrder, final: bool,
              read_to: int | None = -1) -> str | None:
        """The review's outcome, journalled; None while it waits for its order.

        Reviews have a topic of their own, read at its own pace: one read before its order's topic
        has caught up is an orphan only once the hold has passed in event time *and* every topic of
        its partition is read past the review's own Kafka time (``read_to``: how far they are, None
        once caught up; -1 on arrival, when nothing says the orders are read that far)."""
        order = ps.paid_order(review.order_id) or find_order(review.order_id)
        if order is not None:
            if order.user_id != review.user_id:
                outcome = "review_user_mismatch"
            elif ps.reviewed.get(review.order_id, review.event_id) != review.event_id:
                outcome = "review_already_given"
            else:
                outcome = APPLIED
        elif final or (ps.watermark_ms >= review.t_ms + self.hold_ms
                       and (read_to is None or review.produced_ms <= read_to)):
            outcome = "orphan_review"
        else:
            return None
        ps.record_review_outcome(review, outcome)
        return outcome

    @staticmethod
    def row(ps: PartitionState, review: ReviewRec, now_s: float) -> ReviewRow | None:
        """The fact row of an applied review (None if its order has left the state since)."""
        order = ps.paid_order(review.order_id)
        if order is None:
            return None
        return build(ReviewRow, (review.event_id, review.order_id, review.user_id, order.shop_id, order.sku_id,
                                 order.seller_id, review.product_rating, review.service_rating,
                                 review.logistics_rating, row_time(review.t_ms), row_time(order.t_ms), now_s))

    def dead_letter(self, ps: PartitionState, review: ReviewRec, outcome: str, find_order: FindOrder) -> DeadLetter:
        msg = SourceMessage(review.topic, review.partition, review.offset, review.user_id.encode(),
                            review.raw.encode(), review.src.split("#")[0])
        if outcome == "review_user_mismatch":
            order = ps.paid_order(review.order_id) or find_order(review.order_id)
            payer = order.user_id if order is not None else "another user"
            reason = (f"review by user {review.user_id} of order {review.order_id}, which user {payer} paid; only the "
                      "buyer reviews an order: check the review's user_id or order_id at the source")
        elif outcome == "review_already_given":
            reason = (f"order {review.order_id} already has a review (event {ps.reviewed.get(review.order_id)}); "
                      "one review per order counts: drop this one at the source")
        else:
            reason = (f"review of order {review.order_id}, which the pipeline never saw paid (held "
                      f"{self.hold_ms / 60_000:g} min of event time, or to the end of the input); send the paid order "
                      "event, then re-send this review with a new event_id")
        return DeadLetter(msg, review.index, review.src, outcome, reason, review.raw.encode(), review.event_id, "review")


def turn_rows(conversation: dict[str, CsMessageRec], unanswered_after_ms: int, now_s: float) -> list[CsTurnRow]:
    """One row per buyer message of the conversation: the turn it starts, or ``is_turn`` 0 (a row
    written earlier, when fewer messages were known, may have said it started one)."""
    messages = list(conversation.values())
    turns = {t.start_event_id: t for t in buyer_turns(
        (CsMessage(m.t_ms, m.event_id, m.sender, m.shop_id) for m in messages), unanswered_after_ms)}
    version = len(messages)
    rows = []
    for m in messages:
        if m.sender != "buyer":
            continue
        t = turns.get(m.event_id)
        if t is None:
            rows.append(build(CsTurnRow, (m.conversation_id, m.event_id, m.shop_id, m.user_id, 0, row_time(m.t_ms),
                                          "", None, None, 0, 0, 0, version, now_s)))
            continue
        rows.append(build(CsTurnRow, (
            m.conversation_id, m.event_id, t.shop_id, m.user_id, 1, row_time(t.start_ms), t.answer_event_id,
            None if t.answer_ms is None else row_time(t.answer_ms), t.response_ms, int(t.answered), int(t.fast),
            int(t.within_3min), version, now_s)))
    return rows
