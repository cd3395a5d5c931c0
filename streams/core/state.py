"""Stream state of one source partition: its journal and the domains that live in it.

A ``PartitionState`` composes the partition's ``Journal`` (``journal``: the changelog format,
its codec, marks and expiry) with one state per domain, each in its own module with its
records, its journal kinds and its handlers:

- ``dedup``: event ids seen (``dedup``: kind ``seen``);
- ``attribution``: touchpoints, paid orders and attribution paths (``touches``: ``touch``,
  ``order``, ``attr``);
- ``settlement``: refunds and their outcomes (``refunds``: ``refund``, ``settled``);
- ``judgement``: reviews and their outcomes (``reviews``: ``review``, ``reviewed``);
- ``service``: customer-service conversations (``conversations``: ``cs``).

``handlers`` maps each event type to the handler of the domain it changes. This module also
re-exports the names other packages took from it before the split (the records, the time
helpers, ``Horizons``), so their imports keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gmv.schemas.events import CsMessageEvent, LiveRoomEvent, OrderEvent, ReviewEvent, ViewEvent
from gmv.schemas.times import EPOCH, from_ms, row_time, to_ms
from gmv.streams.core.batch import BatchContext, Handled
from gmv.streams.core.conversations import ConversationState, CsKind, CsMessageRec
from gmv.streams.core.decode import Accepted
from gmv.streams.core.dedup import DedupState, SeenKind, SeenRecord
from gmv.streams.core.journal import ChangelogRecord, Journal
from gmv.streams.core.kinds import Horizons, Kind, Unconfirmed
from gmv.streams.core.refunds import OutcomeKind, RefundKind, RefundOutcome, RefundRec, RefundState
from gmv.streams.core.reviews import ReviewedKind, ReviewKind, ReviewOutcome, ReviewRec, ReviewState
from gmv.streams.core.rows import build
from gmv.streams.core.touches import (
    AttrKind,
    AttrRecord,
    OrderKind,
    OrderRec,
    PaidOrderIndex,
    TouchKind,
    TouchRecord,
    TouchState,
)
from gmv.streams.state.store import PartitionStore, Staged

__all__ = [
    "EPOCH", "KINDS", "AttrRecord", "CsMessageRec", "Handler", "Horizons",
    "OrderRec", "PartitionState", "RefundOutcome", "RefundRec", "ReviewOutcome", "ReviewRec", "SeenRecord",
    "TouchRecord", "Unconfirmed", "build", "from_ms", "row_time", "to_ms",
]

# Every journal kind, by its name in the changelog: each is handled by exactly one Kind.
KINDS: dict[str, type[Kind]] = {k.name: k for k in (SeenKind, TouchKind, OrderKind, AttrKind, RefundKind, OutcomeKind,
                                                     ReviewKind, ReviewedKind, CsKind)}

# An accepted event into its partition's state (the event's own handler: see ``PartitionState.handlers``).
Handler = Callable[[Accepted, int, BatchContext], Handled]


def _view(domain: str, name: str) -> property:
    """A domain's map, read where it was read before the split (``ps.orders``, ``ps.refunds`` ...)."""
    return property(lambda ps: getattr(getattr(ps, domain), name), doc=f"``{domain}.{name}``")


class PartitionState:
    """The journal and the domain states of one partition, and the handler of each event type."""

    def __init__(self, partition: int, horizons: Horizons, paid_orders: PaidOrderIndex | None = None,
                 store: PartitionStore | None = None) -> None:
        self.partition = partition
        self.horizons = horizons
        self.store = PartitionStore.in_memory(partition) if store is None else store
        self.journal = Journal(partition, horizons, self.store)
        self.dedup = DedupState(self.journal)
        self.attribution = TouchState(self.journal, self.dedup,
                                      PaidOrderIndex() if paid_orders is None else paid_orders)
        self.settlement = RefundState(self.journal, self.dedup, self.attribution)
        self.judgement = ReviewState(self.journal, self.dedup, self.attribution)
        self.service = ConversationState(self.journal, self.dedup)
        # An order event is paid or refunded: its status picks the domain.
        self.order_handlers: dict[str, Handler] = {"paid": self.attribution.on_paid,
                                                   "refunded": self.settlement.on_refund}
        self.handlers: dict[type[Any], Handler] = {
            ViewEvent: self.attribution.on_view,
            LiveRoomEvent: self.attribution.on_live_room,
            OrderEvent: self._on_order,
            ReviewEvent: self.judgement.on_review,
            CsMessageEvent: self.service.on_message,
        }

    def _on_order(self, item: Accepted, t_ms: int, ctx: BatchContext) -> Handled:
        return self.order_handlers[item.event.status](item, t_ms, ctx)  # type: ignore[union-attr]

    # -- journal ---------------------------------------------------------------------------------
    def load(self, items: Iterable[ChangelogRecord]) -> int:
        """Apply changelog records in offset order (``None`` = expired or confirmed)."""
        return self.journal.load(items)

    def commit_batch(self) -> tuple[list[ChangelogRecord], Staged]:
        """This batch's changelog records and its staged store writes."""
        return self.journal.commit()

    @property
    def watermark_ms(self) -> int:
        """The partition's event-time watermark (it never goes back)."""
        return self.journal.watermark_ms

    def advance(self, t_ms: int) -> None:
        """Move the event-time watermark (it never goes back)."""
        self.journal.advance(t_ms)

    # -- de-duplication ------------------------------------------------------------------------------
    def classify(self, event_id: str, src: str) -> str:
        """'new', 'replay' (same source message seen again: re-derive its rows) or 'duplicate'."""
        return self.dedup.classify(event_id, src)

    def journal_seen(self, event_id: str, src: str, t_ms: int) -> None:
        """Journal a new event's de-duplication (for an event no record of its own carries)."""
        self.dedup.journal_seen(event_id, src, t_ms)

    # -- the domains' maps, where they were read before the split -------------------------------------
    seen = _view("dedup", "seen")
    touches = _view("attribution", "touches")
    orders = _view("attribution", "orders")
    order_ids = _view("attribution", "order_ids")
    attrs = _view("attribution", "attrs")
    unattributed = _view("attribution", "unattributed")
    refunds = _view("settlement", "refunds")
    outcomes = _view("settlement", "outcomes")
    unsettled = _view("settlement", "unsettled")
    refunds_of = _view("settlement", "refunds_of")
    reviews = _view("judgement", "reviews")
    review_outcomes = _view("judgement", "review_outcomes")
    unjudged = _view("judgement", "unjudged")
    reviewed = _view("judgement", "reviewed")
    conversations = _view("service", "conversations")
