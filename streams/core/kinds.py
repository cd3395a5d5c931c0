"""What the journal (``gmv.streams.core.journal``) is told by the domains: each kind of record's codec,
state and expiry (``Kind``), the horizons records expire by, and the pending records it hands back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

from gmv.streams.core.batch import BatchContext
from gmv.streams.core.codec import decode_json

if TYPE_CHECKING:
    from gmv.streams.state.store import UncachedMap


@dataclass
class Horizons:
    dedup_ms: int
    lookback_ms: int
    retention_ms: int


class JournalView(Protocol):
    """What a kind reads of its partition's journal."""

    watermark_ms: int
    horizons: Horizons
    records: dict[str, UncachedMap[bytes]]


class Unconfirmed(NamedTuple):
    """A derived record whose rows ClickHouse may not hold yet (still pending)."""

    kind: str
    record: Any


S = TypeVar("S")


class Kind(Generic[S]):
    """Decoding, encoding, applying, un-applying and expiring the records of one kind, in one
    partition's state of its domain (``st``); a *derived* kind's records produce ClickHouse rows when
    they are made, and again (``reemit``) when a restart finds them pending."""

    name = ""
    derived = False

    def __init__(self, st: S, journal: JournalView) -> None:
        self.st = st
        self.journal = journal

    # Whether the record is kept as written (under ``r<kind>|<id>``), or recalled from the domain's own
    # state (``recall``): a kind whose state holds all of it need not store it twice.
    keeps_record = True
    # Whether the records are journalled by the bucket (``bucket`` keys) rather than one by one: for
    # kinds made once per event and never changed, which expire a whole bucket at a time (a changelog
    # message and a store entry per record cost more than the record).
    grouped = False

    def key(self, rec: Any) -> str:
        """What looks the record up: its event's id, by default."""
        return rec[0]

    def recall(self, rid: str) -> tuple[Any, int | None] | None:
        """The record ``rid`` and its time (None: not known), if it is still held."""
        raw = self.journal.records[self.name].get(rid)
        if raw is None:
            return None
        doc = decode_json(raw)
        return self.decode(doc["r"]), doc["t"]

    def decode(self, raw: list) -> Any:
        raise NotImplementedError

    def encode(self, rec: Any) -> Any:
        """A record as its wire array: a plain tuple (pydantic-core encodes NamedTuples several times
        slower)."""
        return tuple(rec)

    def apply(self, rec: Any) -> None:
        raise NotImplementedError

    def unapply(self, rec: Any) -> None:
        raise NotImplementedError

    def apply_wires(self, wires: list[list]) -> None:
        """A bucket's records, as their wire arrays (a restore applies millions: a kind may skip
        building each record)."""
        for wire in wires:
            self.apply(self.decode(wire))

    def unapply_all(self, recs: list[Any]) -> None:
        """A bucket's records, expired together (a kind whose state holds them by a common key does it
        once per key)."""
        for rec in recs:
            self.unapply(rec)

    def cutoff(self) -> int:
        """Records whose time is before this may expire; by default, older than ``weights_retention``."""
        return self.journal.watermark_ms - self.journal.horizons.retention_ms

    def may_expire(self, rec: Any) -> bool:
        """Past the cutoff, whether this record may go (an order waits for its attribution ...)."""
        return True

    def reemit(self, rec: Any, ctx: BatchContext) -> None:
        """A derived record's rows, again: ClickHouse may not hold them (it is still pending)."""
        raise NotImplementedError(f"{self.name} records derive no rows")
