"""The event contract (SPEC §2) as strict pydantic v2 models.

Producers send one JSON event per Kafka message (or a JSON array of events of
the message's topic). Validation happens here, at the edge; everything past
this module may trust its input. Rules that the SPEC leaves open are decided
here and documented in ``docs/contract.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Earliest and latest instants the contract accepts. ClickHouse DateTime64(3)
# covers 1900..2299; anything outside this window is certainly a producer bug.
MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME = datetime(2200, 1, 1, tzinfo=UTC)
# parse_event_time checks the range by UTC year: the bounds must be New Year, 00:00 UTC.
_MIN_MS = int((MIN_EVENT_TIME - EPOCH).total_seconds()) * 1000
_MAX_MS = int((MAX_EVENT_TIME - EPOCH).total_seconds()) * 1000
assert MIN_EVENT_TIME == datetime(MIN_EVENT_TIME.year, 1, 1, tzinfo=UTC) == MAX_EVENT_TIME.replace(year=2000)
# Money and counters: JSON-safe integers that sum safely in Int64.
MAX_FEN = 10**13  # 100 billion yuan in one order is not a real order
MAX_INT = 2**53 - 1


def parse_event_time(value: Any) -> datetime:
    """ISO-8601 with a UTC offset, or integer epoch milliseconds -> aware UTC datetime (ms precision).

    Runs once per event: the common cases take the short way (an offset other than UTC is
    converted once; both datetimes in a comparison share the ``UTC`` tzinfo, so comparisons
    stay cheap; the range check reads the UTC year, equal to comparing with the bounds)."""
    if type(value) is str:
        when = _parse_iso(value)
    elif isinstance(value, bool):
        raise ValueError("event_time must be an ISO-8601 string with offset or epoch milliseconds, not a boolean")
    elif isinstance(value, int):
        if not _MIN_MS <= value < _MAX_MS:  # before building a datetime: far values overflow it
            raise ValueError(f"event_time {value} (epoch ms) is outside 2000-01-01..2200-01-01")
        when = EPOCH + timedelta(milliseconds=value)
    elif isinstance(value, str):
        when = _parse_iso(str(value))
    else:
        raise ValueError("event_time must be an ISO-8601 string with offset or integer epoch milliseconds")
    micro = when.microsecond
    if micro % 1000:
        when = when.replace(microsecond=micro - micro % 1000)
    if not MIN_EVENT_TIME.year <= when.year < MAX_EVENT_TIME.year:
        raise ValueError(f"event_time {when.isoformat()} is outside 2000-01-01..2200-01-01")
    return when


def _parse_iso(value: str) -> datetime:
    if len(value) > 64:
        raise ValueError("event_time string too long to be a timestamp")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"event_time {value[:40]!r} is not ISO-8601; send e.g. '2026-11-25T20:00:00+08:00' or epoch ms"
        ) from None
    if when.tzinfo is UTC:
        return when
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"event_time {value[:40]!r} has no UTC offset (naive); append 'Z' or an offset like '+08:00'"
        )
    try:
        return when.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise ValueError(f"event_time {value[:40]!r} is outside 2000-01-01..2200-01-01") from None


def format_event_time(when: datetime) -> str:
    """Canonical form: UTC, millisecond precision, 'Z'."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


EventTime = Annotated[
    datetime,
    PlainValidator(parse_event_time),
    PlainSerializer(format_event_time, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time", "description": "ISO-8601 with UTC offset"},
                {"type": "integer", "description": "epoch milliseconds"},
            ]
        }
    ),
]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
# Identifiers other than event_id: the SPEC gives no bound; 256 keeps hostile
# input from bloating stream state and is far above any real id.
Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]
OptionalId = Annotated[str, StringConstraints(max_length=256)]
Fen = Annotated[int, Field(gt=0, le=MAX_FEN)]
Traffic = Literal["public", "private"]
Rating = Annotated[int, Field(ge=1, le=5)]
RefundReason = Literal["quality", "not_as_described", "damaged", "wrong_item", "changed_mind", "logistics", "other"]
# SPEC §7: the reasons that say the product itself failed the buyer (they weigh on the trust scores).
QUALITY_REASONS: frozenset[str] = frozenset({"quality", "not_as_described", "damaged", "wrong_item"})


class _Event(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="ignore", frozen=True, allow_inf_nan=False, str_max_length=4096
    )

    event_id: EventId
    event_time: EventTime

    @property
    def partition_key(self) -> str:
        """The key the event must be partitioned by (user_id; live_id for live start/end)."""
        return getattr(self, "user_id", None) or getattr(self, "live_id", "")


class ViewEvent(_Event):
    """A user watched a short video or a clip (topic gmv.views, key user_id)."""

    event_type: Literal["view"]
    user_id: Id
    video_id: Id
    author_id: Id
    kind: Literal["short_video", "clip"]
    source_live_id: Id | None = None
    watch_ms: Annotated[int, Field(ge=0, le=MAX_INT)]
    traffic: Traffic = "public"
    shop_id: Id | None = None

    @model_validator(mode="after")
    def _clip_needs_source(self) -> ViewEvent:
        if self.kind == "clip" and not self.source_live_id:
            raise ValueError("a clip view needs source_live_id (the live session it was cut from)")
        return self


class LiveRoomEvent(_Event):
    """Live session start/end and room enter/leave (topic gmv.live_rooms)."""

    event_type: Literal["live_room"]
    live_id: Id
    anchor_id: Id
    action: Literal["start", "end", "enter", "leave"]
    user_id: Id | None = None
    referrer_kind: Literal["short_video", "clip", "feed", "follow", "search", "shelf", "other"] | None = None
    referrer_id: Id | None = None
    traffic: Traffic = "public"
    shop_id: Id | None = None

    @model_validator(mode="after")
    def _enter_leave_need_user(self) -> LiveRoomEvent:
        if self.action in ("enter", "leave") and not self.user_id:
            raise ValueError(f"a live_room '{self.action}' needs user_id")
        return self


class OrderEvent(_Event):
    """A paid order or a (partial) refund of one (topic gmv.orders, key user_id)."""

    event_type: Literal["order"]
    order_id: Id
    user_id: Id
    status: Literal["paid", "refunded"]
    # On refunds these may be omitted: the refund inherits them from its order.
    shop_id: Id | None = None
    sku_id: Id | None = None
    seller_id: OptionalId = ""
    amount_fen: Fen | None = None
    refund_fen: Fen | None = None
    quantity: Annotated[int, Field(ge=1, le=MAX_INT)] = 1
    currency: Literal["CNY"] = "CNY"
    channel: Literal["short_video", "live", "clip", "shelf"] | None = None
    channel_id: Id | None = None
    shelf_source: Literal["mall", "search", "store", "recommend"] | None = None
    # On refunds (SPEC §7): why; absent means "other". Ignored on paid orders.
    refund_reason: RefundReason | None = None

    @model_validator(mode="after")
    def _status_rules(self) -> OrderEvent:
        if self.status == "paid":
            missing = [f for f in ("amount_fen", "shop_id", "sku_id", "channel") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a paid order needs {', '.join(missing)}")
            if self.refund_fen is not None:
                raise ValueError("a paid order must not carry refund_fen; send refunds as status 'refunded'")
            if self.channel == "shelf":
                if self.shelf_source is None:
                    raise ValueError("a shelf order needs shelf_source (mall, search, store or recommend)")
            else:
                if not self.channel_id:
                    raise ValueError(
                        f"a {self.channel} order needs channel_id "
                        f"({'live_id' if self.channel == 'live' else 'video_id'} where it was paid)"
                    )
                if not self.seller_id:
                    raise ValueError(f"a {self.channel} order needs seller_id ('' is only for pure shelf sales)")
        elif self.refund_fen is None:
            raise ValueError("a refunded order event needs refund_fen (the refunded amount in fen, > 0)")
        return self

    @property
    def conversion_stage(self) -> str:
        return self.channel or "shelf"

    @property
    def reason(self) -> str:
        """The refund's reason, ``other`` when the producer gave none."""
        return self.refund_reason or "other"


class ReviewEvent(_Event):
    """A buyer's review of a paid order (topic gmv.reviews, key user_id; SPEC §7)."""

    event_type: Literal["review"]
    order_id: Id
    user_id: Id
    product_rating: Rating
    service_rating: Rating
    logistics_rating: Rating


class CsMessageEvent(_Event):
    """One message of a customer-service conversation (topic gmv.service, key user_id; SPEC §7).

    ``user_id`` is the buyer's on every message of the conversation, the agent's and bot's too."""

    event_type: Literal["cs_message"]
    conversation_id: Id
    shop_id: Id
    user_id: Id
    sender: Literal["buyer", "agent", "bot"]


AnyEvent = ViewEvent | LiveRoomEvent | OrderEvent | ReviewEvent | CsMessageEvent
Event = Annotated[AnyEvent, Field(discriminator="event_type")]
EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)

# Each event type's topic (SPEC §2, §7), after the topic prefix (``gmv.`` by default).
TOPIC_NAMES: dict[str, str] = {"view": "views", "live_room": "live_rooms", "order": "orders", "review": "reviews",
                               "cs_message": "service"}

EVENT_TYPES: dict[str, type[_Event]] = {
    "view": ViewEvent,
    "live_room": LiveRoomEvent,
    "order": OrderEvent,
    "review": ReviewEvent,
    "cs_message": CsMessageEvent,
}
