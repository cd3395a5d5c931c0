"""What becomes of a review (SPEC §7), in one partition's state.

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

from typing import NamedTuple

from gmv.schemas.events import ReviewEvent
from gmv.schemas.times import row_time
from gmv.streams.core.batch import CARRIED, NOT_CARRIED, BatchContext, Handled
from gmv.streams.core.codec import TEXT, record_codec
from gmv.streams.core.decode import Accepted, DeadLetter, SourceMessage
from gmv.streams.core.dedup import DedupState
from gmv.streams.core.journal import Journal
from gmv.streams.core.kinds import Kind
from gmv.streams.core.rows import ReviewRow
from gmv.streams.core.touches import FindOrder, TouchState
from gmv.streams.state.store import Codec, ResidentMap, StoredMap

REVIEW, REVIEWED = "review", "reviewed"
APPLIED = "applied"


class ReviewRec(NamedTuple):
    """A review event and where it came from (so it can be dead-lettered later, if it must be)."""

    event_id: str
    src: str
    topic: str
    partition: int
    offset: int
    index: int
    user_id: str
    order_id: str
    product_rating: int
    service_rating: int
    logistics_rating: int
    t_ms: int
    raw: str  # the validated event as JSON
    produced_ms: int = 0  # the review message's Kafka timestamp: how far the orders topic must be read


class ReviewOutcome(NamedTuple):
    review_event_id: str
    order_id: str
    outcome: str  # applied | orphan_review | review_already_given | review_user_mismatch


REVIEW_CODEC: Codec[ReviewRec] = record_codec(ReviewRec)


class ReviewKind(Kind["ReviewState"]):
    name = REVIEW

    def decode(self, raw: list) -> ReviewRec:
        return ReviewRec(*raw)

    def apply(self, rec: ReviewRec) -> None:
        st = self.st
        st.reviews[rec.event_id] = rec
        st.dedup.remember(rec.event_id, rec.src)
        if rec.event_id not in st.review_outcomes:
            st.unjudged[rec.event_id] = rec

    def unapply(self, rec: ReviewRec) -> None:
        st = self.st
        st.reviews.pop(rec.event_id, None)
        st.unjudged.pop(rec.event_id, None)
        st.dedup.forget(rec.event_id, rec.src)

    def may_expire(self, rec: ReviewRec) -> bool:
        """Past retention, once judged."""
        return rec.event_id in self.st.review_outcomes


class ReviewedKind(Kind["ReviewState"]):
    name = REVIEWED
    derived = True

    def decode(self, raw: list) -> ReviewOutcome:
        return ReviewOutcome(*raw)

    def apply(self, rec: ReviewOutcome) -> None:
        st = self.st
        st.review_outcomes[rec.review_event_id] = rec.outcome
        st.unjudged.pop(rec.review_event_id, None)
        if rec.outcome == APPLIED:
            if st.reviewed.get(rec.order_id) is None:
                st.reviewed[rec.order_id] = rec.review_event_id

    def unapply(self, rec: ReviewOutcome) -> None:
        st = self.st
        st.review_outcomes.pop(rec.review_event_id, None)
        if st.reviewed.get(rec.order_id) == rec.review_event_id:
            del st.reviewed[rec.order_id]
        review = st.reviews.get(rec.review_event_id)
        if review is not None:
            st.unjudged[rec.review_event_id] = review

    def reemit(self, rec: ReviewOutcome, ctx: BatchContext) -> None:
        review = self.st.reviews.get(rec.review_event_id)
        if review is not None:  # this process never counted it: no recount
            self.st.outcome_rows(ctx, review, rec.outcome, count=False)


class ReviewState:
    """One partition's reviews and their outcomes, and the review handler."""

    def __init__(self, journal: Journal, dedup: DedupState, orders: TouchState) -> None:
        self.journal = journal
        self.dedup = dedup
        self.orders = orders
        self.find_order: FindOrder = orders.paid_orders.find  # in any partition this worker owns
        store = journal.store
        self.reviews: StoredMap[ReviewRec] = StoredMap(store, "v|", REVIEW_CODEC)  # review event_id -> review
        self.review_outcomes: StoredMap[str] = StoredMap(store, "y|", TEXT)  # review event_id -> its outcome
        self.unjudged: ResidentMap[ReviewRec] = ResidentMap(store, "z|", REVIEW_CODEC)  # without outcome
        self.reviewed: StoredMap[str] = StoredMap(store, "q|", TEXT)  # order_id -> the review applied to it
        self._review = journal.register(self, ReviewKind)
        self._reviewed = journal.register(self, ReviewedKind)

    def on_review(self, item: Accepted, t_ms: int, ctx: BatchContext) -> Handled:
        event: ReviewEvent = item.event  # type: ignore[assignment]
        msg = item.msg
        rec = ReviewRec(event_id=event.event_id, src=item.src, topic=msg.topic, partition=msg.partition,
                        offset=msg.offset, index=item.index, user_id=event.user_id, order_id=event.order_id,
                        product_rating=event.product_rating, service_rating=event.service_rating,
                        logistics_rating=event.logistics_rating, t_ms=t_ms, raw=event.model_dump_json(),
                        produced_ms=msg.timestamp_ms)
        carried = False
        outcome = self.review_outcomes.get(rec.event_id)
        if outcome is None:
            carried = self.add(rec)
            outcome = self.judge(self.reviews[rec.event_id], ctx, final=False)
            if outcome is None:
                return CARRIED if carried else NOT_CARRIED  # held: its order is not known yet
            if outcome == APPLIED:
                self.outcome_rows(ctx, self.reviews[rec.event_id], outcome)
        if outcome != APPLIED:
            return Handled(carried, self.dead_letter(self.reviews.get(rec.event_id, rec), outcome, ctx))
        return CARRIED if carried else NOT_CARRIED

    def add(self, review: ReviewRec) -> bool:
        """True if journalled now (its record carries the event's de-duplication)."""
        if review.event_id in self.reviews:
            return False
        self._review.apply(review)
        self.journal.record(REVIEW, review, review.t_ms)
        return True

    def judge_held(self, ctx: BatchContext, final: bool, read_to: int | None) -> None:
        """Judge held reviews, in event-time order; one that is not applied is dead-lettered."""
        for review in sorted(self.unjudged.values(), key=lambda r: (r.t_ms, r.event_id)):
            outcome = self.judge(review, ctx, final, read_to)
            if outcome is None:
                continue
            ctx.out.touched_partitions.add(self.journal.partition)
            if outcome != APPLIED:  # counted as accepted when it arrived and was held
                ctx.out.counters.add(review.topic, "accepted", -1)
            self.outcome_rows(ctx, review, outcome)

    def judge(self, review: ReviewRec, ctx: BatchContext, final: bool, read_to: int | None = -1) -> str | None:
        """The review's outcome, journalled; None while it waits for its order.

        Reviews have a topic of their own, read at its own pace: one read before its order's topic
        has caught up is an orphan only once the hold has passed in event time *and* every topic of
        its partition is read past the review's own Kafka time (``read_to``: how far they are, None
        once caught up; -1 on arrival, when nothing says the orders are read that far)."""
        order = self.orders.paid_order(review.order_id) or self.find_order(review.order_id)
        if order is not None:
            if order.user_id != review.user_id:
                outcome = "review_user_mismatch"
            elif self.reviewed.get(review.order_id, review.event_id) != review.event_id:
                outcome = "review_already_given"
            else:
                outcome = APPLIED
        elif final or (self.journal.watermark_ms >= review.t_ms + ctx.config.orphan_review_hold_ms
                       and (read_to is None or review.produced_ms <= read_to)):
            outcome = "orphan_review"
        else:
            return None
        rec = ReviewOutcome(review.event_id, review.order_id, outcome)
        self._reviewed.apply(rec)
        self.journal.record(REVIEWED, rec, review.t_ms)
        return outcome

    def outcome_rows(self, ctx: BatchContext, review: ReviewRec, outcome: str, count: bool = True) -> None:
        """The review's fact row (none if its order has left the state since), or its dead letter."""
        if outcome != APPLIED:
            ctx.dead_letter(self.dead_letter(review, outcome, ctx), count)
            return
        order = self.orders.paid_order(review.order_id)
        if order is not None:
            ctx.out.rows[ReviewRow.TABLE].append(ReviewRow(
                event_id=review.event_id, order_id=review.order_id, user_id=review.user_id, shop_id=order.shop_id,
                sku_id=order.sku_id, seller_id=order.seller_id, product_rating=review.product_rating,
                service_rating=review.service_rating, logistics_rating=review.logistics_rating,
                event_time=row_time(review.t_ms), order_time=row_time(order.t_ms), reviewed_at=ctx.now_s))

    def dead_letter(self, review: ReviewRec, outcome: str, ctx: BatchContext) -> DeadLetter:
        msg = SourceMessage(review.topic, review.partition, review.offset, review.user_id.encode(),
                            review.raw.encode(), review.src.split("#")[0])
        if outcome == "review_user_mismatch":
            order = self.orders.paid_order(review.order_id) or self.find_order(review.order_id)
            payer = order.user_id if order is not None else "another user"
            reason = (f"review by user {review.user_id} of order {review.order_id}, which user {payer} paid; only the "
                      "buyer reviews an order: check the review's user_id or order_id at the source")
        elif outcome == "review_already_given":
            reason = (f"order {review.order_id} already has a review (event {self.reviewed.get(review.order_id)}); "
                      "one review per order counts: drop this one at the source")
        else:
            reason = (f"review of order {review.order_id}, which the pipeline never saw paid (held "
                      f"{ctx.config.orphan_review_hold_ms / 60_000:g} min of event time, or to the end of the input); "
                      "send the paid order event, then re-send this review with a new event_id")
        return DeadLetter(msg, review.index, review.src, outcome, reason, review.raw.encode(), review.event_id, "review")
