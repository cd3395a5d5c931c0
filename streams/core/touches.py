"""Touchpoints, paid orders and their attribution (SPEC §3), in one partition's state.

An engaged view or a live enter is a touchpoint (their funnel rows are ClickHouse's, derived from
their events rows, which say whether they were ``engaged``)
of its user (``touch``); a paid order (``order``) waits ``attribution_delay`` for touches sent
right after it, then its path is built from its user's touches and journalled (``attr``) with
the order's credit rows. A second paid event of one order under another ``event_id`` is
dead-lettered (``order_already_paid``). Refunds (``refunds``) and reviews (``reviews``) look
their order up here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from gmv.schemas.events import LiveRoomEvent, OrderEvent, ViewEvent
from gmv.schemas.outputs import RULE_MODELS
from gmv.schemas.times import row_time
from gmv.streams.core.attribution import OrderFacts, Touch, attribute, build_path, path_label
from gmv.streams.core.batch import (
    CARRIED,
    ENGAGED_CARRIED,
    ENGAGED_NOT_CARRIED,
    NOT_CARRIED,
    BatchContext,
    Handled,
)
from gmv.streams.core.codec import TEXT, decode_json, encode_json, record_codec
from gmv.streams.core.decode import Accepted, DeadLetter
from gmv.streams.core.dedup import DedupState
from gmv.streams.core.journal import Journal
from gmv.streams.core.kinds import Kind
from gmv.streams.core.rows import CreditRow, build
from gmv.streams.state.store import Codec, ResidentMap, StoredMap

TOUCH, ORDER, ATTR = "touch", "order", "attr"


class TouchRecord(NamedTuple):
    """A touchpoint of a user (the Touch's fields, then the user and the event's source)."""

    t_ms: int
    event_id: str
    stage: str
    account_id: str
    content_id: str
    shop_id: str
    traffic: str
    user_id: str
    src: str = ""  # journals from before the touch carried its event's de-duplication

    @property
    def touch(self) -> Touch:
        return Touch(self.t_ms, self.event_id, self.stage, self.account_id, self.content_id, self.shop_id,
                     self.traffic)


class OrderRec(NamedTuple):
    """A paid order as attribution and its rows need it."""

    event_id: str
    src: str
    user_id: str
    order_id: str
    shop_id: str
    sku_id: str
    seller_id: str
    channel: str
    channel_id: str
    amount_fen: int
    t_ms: int
    arrival_ms: int  # processing time it arrived (attribution_delay counts from here)
    quantity: int = 1
    produced_ms: int = 0  # the order message's Kafka timestamp: how far the other topics must be read


class AttrRecord(NamedTuple):
    """An order's attribution path (its conversion touch last)."""

    order_event_id: str
    path: list[Touch]


# order_id -> the paid order, wherever this worker holds it (a review by another user lands on
# that user's partition, not on the order's).
FindOrder = Callable[[str], OrderRec | None]


# -- kinds ------------------------------------------------------------------------------------
class TouchKind(Kind["TouchState"]):
    name = TOUCH
    grouped = True

    def key(self, rec: TouchRecord) -> str:
        return rec.event_id

    def decode(self, raw: list) -> TouchRecord:
        return TouchRecord(*raw)

    def apply(self, rec: TouchRecord) -> None:
        # (``apply_wires`` does the same from wire arrays: keep them alike.)
        st = self.st
        user = st.touches.get(rec.user_id) or UserTouches()
        if user.add(rec.touch):
            st.touches[rec.user_id] = user
        if rec.src:
            st.dedup.remember(rec.event_id, rec.src)

    def unapply(self, rec: TouchRecord) -> None:
        self.unapply_all([rec])

    def apply_wires(self, wires: list[list]) -> None:
        """``apply`` of each, from the wire array itself (its first seven fields are the Touch's, in
        order): no record or Touch built, the touch encoded from the array as it came."""
        st = self.st
        touches, remember = st.touches, st.dedup.remember
        for wire in wires:
            user_id = wire[7]
            user = touches.get(user_id) or UserTouches()
            if user.add_encoded(wire[1], encode_json(wire[:7])):
                touches[user_id] = user
            if len(wire) > 8 and wire[8]:
                remember(wire[1], wire[8])

    def unapply_all(self, recs: list[TouchRecord]) -> None:
        """Each user's touches decoded and encoded once, however many of them the bucket held."""
        st = self.st
        by_user: dict[str, list[str]] = {}
        for rec in recs:
            by_user.setdefault(rec.user_id, []).append(rec.event_id)
            if rec.src:
                st.dedup.forget(rec.event_id, rec.src)
        for user_id, event_ids in by_user.items():
            user = st.touches.get(user_id)
            if user is not None and user.drop(*event_ids):
                if user:
                    st.touches[user_id] = user
                else:
                    del st.touches[user_id]

    def cutoff(self) -> int:
        """Older than ``lookback`` before the oldest order that may still need them: one waiting for
        its attribution, or one not read yet but less than ``dedup_horizon`` late (behind the
        partition's newest event: the lateness the pipeline takes, as its de-duplication does).

        Without that allowance a late order lost its oldest touches to whichever interleaving of
        topics a fetch gave: read after another user's newer events had moved the watermark on and
        a pass had run, not before (a crashed ``gmv run`` rerun credited an order differently).
        A touch so lives ``lookback + dedup_horizon`` behind the watermark (8 days by default, not
        7: a seventh more touches held)."""
        watermark, h = self.journal.watermark_ms, self.journal.horizons
        return min([watermark - h.dedup_ms, *(o.t_ms for o in self.st.unattributed.values())]) - h.lookback_ms


class OrderKind(Kind["TouchState"]):
    name = ORDER

    def decode(self, raw: list) -> OrderRec:
        return OrderRec(*raw)

    def apply(self, rec: OrderRec) -> None:
        st = self.st
        st.orders[rec.event_id] = rec
        if rec.order_id not in st.order_ids:
            st.order_ids[rec.order_id] = rec.event_id
        st.dedup.remember(rec.event_id, rec.src)
        if rec.event_id not in st.attrs:
            st.unattributed[rec.event_id] = rec

    def unapply(self, rec: OrderRec) -> None:
        st = self.st
        st.orders.pop(rec.event_id, None)
        st.unattributed.pop(rec.event_id, None)
        if st.order_ids.get(rec.order_id) == rec.event_id:
            del st.order_ids[rec.order_id]
        st.dedup.forget(rec.event_id, rec.src)

    def may_expire(self, rec: OrderRec) -> bool:
        """Past retention, once attributed."""
        return rec.event_id in self.st.attrs


class AttrKind(Kind["TouchState"]):
    name = ATTR
    derived = True

    def decode(self, raw: list) -> AttrRecord:
        order_event_id, path = raw
        return AttrRecord(order_event_id, [Touch(*t) for t in path])

    def encode(self, rec: AttrRecord) -> Any:
        return (rec.order_event_id, [tuple(t) for t in rec.path])

    def apply(self, rec: AttrRecord) -> None:
        self.st.attrs[rec.order_event_id] = rec.path
        self.st.unattributed.pop(rec.order_event_id, None)

    def unapply(self, rec: AttrRecord) -> None:
        st = self.st
        st.attrs.pop(rec.order_event_id, None)
        order = st.orders.get(rec.order_event_id)
        if order is not None:
            st.unattributed[rec.order_event_id] = order

    def reemit(self, rec: AttrRecord, ctx: BatchContext) -> None:
        order = self.st.orders.get(rec.order_event_id)
        if order is not None:
            self.st.paid_rows(ctx, order, self.st.attrs.get(order.event_id) or [])


# -- state --------------------------------------------------------------------------------------
class PaidOrderIndex:
    """The paid order of an order_id in whichever partition one processor holds it (a review may land
    on another partition than its order): each partition's ``order_ids`` is asked, in the processor's
    order, so the first partition holding it answers."""

    def __init__(self, partitions: Mapping[int, Any] | None = None) -> None:
        self._partitions = partitions if partitions is not None else {}  # the processor's, in its order

    def find(self, order_id: str) -> OrderRec | None:
        for ps in self._partitions.values():
            order = ps.attribution.paid_order(order_id)
            if order is not None:
                return order
        return None


class UserTouches:
    """A user's touches, as the store keeps them (a JSON array of Touch arrays), decoded only when a
    rule reads them (an order's attribution, an expiry): an engaged view or live enter appends to the
    bytes, so a touch event decodes nothing, and the hot cache holds bytes (a fifth of their decoded
    size) rather than Touch tuples. In the soak (2M events, ~600k users) decoding a user's touches at
    every touch event took 12% of the worker's thread."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes = b"[]") -> None:
        self.raw = raw

    def by_id(self) -> dict[str, Touch]:
        """The touches, decoded (not kept: a new dict per call)."""
        return {t[1]: Touch(*t) for t in decode_json(self.raw)}

    def add(self, touch: Touch) -> bool:
        """Append a touch; False if the user has it already."""
        return self.add_encoded(touch.event_id, encode_json(tuple(touch)))

    def add_encoded(self, event_id: str, one: bytes) -> bool:
        """Append a touch given as its JSON array (``one``). (Its event id, as JSON between commas,
        is looked for in the bytes first: only a match, a rare one, is decoded to be sure.)"""
        if b"," + encode_json(event_id) + b"," in self.raw and event_id in self.by_id():
            return False
        self.raw = b"[" + one + b"]" if len(self.raw) == 2 else self.raw[:-1] + b"," + one + b"]"
        return True

    def drop(self, *event_ids: str) -> bool:
        """Remove these touches (decoded and encoded once); False if the user had none of them."""
        touches = self.by_id()
        held = len(touches)
        for event_id in event_ids:
            touches.pop(event_id, None)
        if len(touches) == held:
            return False
        self.raw = encode_json([tuple(t) for t in touches.values()])
        return True

    def values(self) -> Iterable[Touch]:
        return self.by_id().values()

    def items(self) -> Iterable[tuple[str, Touch]]:
        return self.by_id().items()

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_id())

    def __contains__(self, event_id: object) -> bool:
        return event_id in self.by_id()

    def __len__(self) -> int:
        return len(self.by_id())

    def __bool__(self) -> bool:
        return len(self.raw) > 2


# Its bytes, and the object around them (ENTRY_BYTES): a factor of 1.
TOUCHES: Codec[UserTouches] = Codec(lambda user: user.raw, UserTouches, 1)
PATH: Codec[list[Touch]] = Codec(lambda path: encode_json([tuple(t) for t in path]),
                                 lambda raw: [Touch(*t) for t in decode_json(raw)])
ORDER_CODEC: Codec[OrderRec] = record_codec(OrderRec)


class TouchState:
    """One partition's touchpoints, paid orders and attribution paths, and their handlers."""

    def __init__(self, journal: Journal, dedup: DedupState, paid_orders: PaidOrderIndex) -> None:
        self.journal = journal
        self.dedup = dedup
        self.paid_orders = paid_orders
        self.partition = journal.partition
        store = journal.store
        self.touches: StoredMap[UserTouches] = StoredMap(store, "t|", TOUCHES)  # user -> event_id -> touch
        self.orders: StoredMap[OrderRec] = StoredMap(store, "o|", ORDER_CODEC)  # order event_id -> order
        self.order_ids: StoredMap[str] = StoredMap(store, "i|", TEXT)  # order_id -> its paid event_id
        self.attrs: StoredMap[list[Touch]] = StoredMap(store, "a|", PATH)  # order event_id -> attribution path
        # Orders without attrs, held in memory too so that per-batch work follows what is pending,
        # not what is retained (orders stay for weights_retention, 90 days by default).
        self.unattributed: ResidentMap[OrderRec] = ResidentMap(store, "w|", ORDER_CODEC)  # event_id -> order
        journal.register(self, TouchKind)
        self._order = journal.register(self, OrderKind)
        self._attr = journal.register(self, AttrKind)

    # -- handlers ------------------------------------------------------------------------------
    def on_view(self, item: Accepted, t_ms: int, ctx: BatchContext) -> Handled:
        event: ViewEvent = item.event  # type: ignore[assignment]
        # Its funnel_events row is derived in ClickHouse from its events row (``engaged`` included).
        if event.watch_ms < ctx.config.engaged_ms:
            return NOT_CARRIED
        if self.add_touch(event.user_id, Touch(t_ms, event.event_id, event.kind, event.author_id, event.video_id,
                                               event.shop_id or "", event.traffic), item.src):
            return ENGAGED_CARRIED
        return ENGAGED_NOT_CARRIED

    def on_live_room(self, item: Accepted, t_ms: int, ctx: BatchContext) -> Handled:
        event: LiveRoomEvent = item.event  # type: ignore[assignment]
        if event.action != "enter":
            return NOT_CARRIED
        if event.user_id and self.add_touch(event.user_id, Touch(t_ms, event.event_id, "live", event.anchor_id,
                                                                 event.live_id, event.shop_id or "", event.traffic),
                                            item.src):
            return ENGAGED_CARRIED
        return ENGAGED_NOT_CARRIED

    def on_paid(self, item: Accepted, t_ms: int, ctx: BatchContext) -> Handled:
        event: OrderEvent = item.event  # type: ignore[assignment]
        first = self.order_ids.get(event.order_id)
        if first is not None and first != event.event_id:
            return Handled(False, DeadLetter(
                item.msg, item.index, item.src, "order_already_paid",
                f"order {event.order_id} was already paid by event {first}; a second paid event with another "
                "event_id would count it twice. Re-send the same event_id, or use a new order_id",
                event.model_dump_json().encode(), event.event_id, event.event_type))
        carried = self.add_order(OrderRec(
            event_id=event.event_id, src=item.src, user_id=event.user_id, order_id=event.order_id,
            shop_id=event.shop_id or "", sku_id=event.sku_id or "", seller_id=event.seller_id,
            channel=event.conversion_stage, channel_id=event.channel_id or "", amount_fen=event.amount_fen or 0,
            t_ms=t_ms, arrival_ms=ctx.now_ms, quantity=event.quantity, produced_ms=item.msg.timestamp_ms))
        return CARRIED if carried else NOT_CARRIED

    # -- the state, applied as the journal applies it, then journalled ----------------------------
    def add_touch(self, user_id: str, touch: Touch, src: str) -> bool:
        """Per engaged view and live enter: what ``TouchKind.apply`` does, without rebuilding the
        Touch. True if journalled now (its record carries the event's de-duplication)."""
        user = self.touches.get(user_id) or UserTouches()
        if not user.add(touch):
            return False
        self.touches[user_id] = user
        self.journal.record(TOUCH, build(TouchRecord, (*touch, user_id, src)), touch.t_ms)
        return True

    def add_order(self, order: OrderRec) -> bool:
        """True if journalled now (its record carries the event's de-duplication)."""
        if order.event_id in self.orders:
            return False
        self._order.apply(order)
        self.journal.record(ORDER, order, order.t_ms)
        return True

    def add_attr(self, order: OrderRec, path: list[Touch]) -> None:
        rec = AttrRecord(order.event_id, path)
        self._attr.apply(rec)
        self.journal.record(ATTR, rec, order.t_ms)

    def paid_order(self, order_id: str) -> OrderRec | None:
        eid = self.order_ids.get(order_id)
        return None if eid is None else self.orders.get(eid)

    # -- attribution (timer / end of input) -------------------------------------------------------
    def attribute_due(self, ctx: BatchContext, final: bool, read_to: int | None) -> None:
        """Attribute the orders whose ``attribution_delay`` has passed (all of them when ``final``),
        in event-time order: each once its partition is read (``read_to``, Kafka time; None once
        caught up) past the order's own Kafka timestamp plus the delay."""
        delay, now_ms = ctx.config.attribution_delay_ms, ctx.now_ms
        due = sorted((o for o in self.unattributed.values()
                      if final or (o.arrival_ms + delay <= now_ms
                                   and (read_to is None or o.produced_ms + delay <= read_to))),
                     key=lambda o: (o.t_ms, o.event_id))
        for order in due:
            path = build_path(self.touches.get(order.user_id, UserTouches()).values(), OrderFacts(
                order.t_ms, order.event_id, order.seller_id, order.shop_id, order.channel, order.channel_id),
                ctx.config.lookback_ms)
            self.add_attr(order, path)
            self.paid_rows(ctx, order, path)
            ctx.out.touched_partitions.add(self.partition)

    def paid_rows(self, ctx: BatchContext, order: OrderRec, path: list[Touch]) -> None:
        credits = attribute(order.amount_fen, path, ctx.config.half_life_ms)
        ctx.out.credit_rows.extend(credit_rows(order.event_id, "paid", order.t_ms, order, path, credits, ctx.now_s))


def credit_rows(event_id: str, kind: str, t_ms: int, order: OrderRec, path: list[Touch],
                credits: dict[str, list[int]], now_s: float) -> list[CreditRow]:
    """The rows of one order event (paid) or refund event: one per model and touch of the path."""
    label, n = path_label(path), len(path)
    order_time, event_time = row_time(order.t_ms), row_time(t_ms)
    seller = order.seller_id
    # What a touch's rows share under every model, worked out once per touch.
    touches = [(i, touch, int(i == n - 1), int(bool(seller) and touch.account_id == seller), row_time(touch.t_ms))
               for i, touch in enumerate(path)]
    return [CreditRow(
        event_id=event_id, order_id=order.order_id, kind=kind, model=model, touch_index=i,
        is_conversion=is_conversion, stage=touch.stage, touch_account_id=touch.account_id,
        touch_content_id=touch.content_id, touch_event_id=touch.event_id, is_self=is_self, traffic=touch.traffic,
        touch_time=touch_time, order_time=order_time, event_time=event_time, user_id=order.user_id,
        shop_id=order.shop_id, seller_id=seller, sku_id=order.sku_id, channel=order.channel,
        credit_fen=credit, path=label, path_length=n, attributed_at=now_s)
        for model in RULE_MODELS
        for (i, touch, is_conversion, is_self, touch_time), credit in zip(touches, credits[model], strict=True)]
