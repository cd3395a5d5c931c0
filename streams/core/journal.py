"""Stream state of one source partition: its records, kept in the partition's store and written to a
changelog topic keyed by record, so that Kafka's compaction keeps live state only.

Each record is made once, by the handler that took its event, and lives until its own horizon has
passed in *event time* (the partition's watermark, never the wall clock), so a replay of last month
expires exactly as live processing did. The changelog (format 2) has one message per record:

``<partition>/<kind>/<id>`` → compact JSON ``{"t": t_ms, "r": record}``: ``t_ms`` is the event
time (epoch ms) the record expires by, ``record`` the JSON array of its type's fields, in order;
``id`` is what looks the record up (an event id; an order's event id for ``attr``); a ``None``
value (tombstone) is the record's expiry.

``<partition>/pending/<kind>/<id>`` → ``1``: the rows derived from that record may not be in
ClickHouse yet; its tombstone (sent once they are stored and rolled up, ``confirm``) says they are.
A restart re-emits the rows of every record still pending.

Changelog partition ``p`` holds source partition ``p``'s records. Kinds, each handled by one
``Kind`` of its domain's module (``dedup``, ``touches``, ``refunds``, ``reviews``, ``conversations``):

``seen``     SeenRecord — de-duplication (``dedup_horizon``), for events no other record carries
``touch``    TouchRecord — touchpoints (``lookback`` before the oldest pending order, and never
             before ``dedup_horizon``: a touch record is also its event's de-duplication)
``order``    OrderRec — a paid order awaiting / done attribution (``weights_retention``, once attributed)
``attr``     AttrRecord — an order's attribution path, kept for its refunds (``weights_retention``)
``refund``   RefundRec — a refund event, held until its order is attributed (``weights_retention``, once settled)
``settled``  RefundOutcome — what became of a refund: applied | orphan | over_refund (``weights_retention``)
``review``   ReviewRec — a review, held until it is judged (``weights_retention``, once judged)
``reviewed`` ReviewOutcome — what became of a review: applied | orphan_review | review_already_given |
             review_user_mismatch (``weights_retention``)
``cs``       CsMessageRec — a customer-service message; its conversation's turns are derived from all of
             them (``weights_retention``)

In the store (``gmv.streams.state``), a record's changelog value lives under ``r<kind>|<id>``, and an
expiry index entry under ``x|<kind>|<t_ms, 15 digits>|<id>`` lets a pass read only what has expired;
the domains keep what their rules look up (a user's touches, an order id's paid event ...) in maps of
their own, derived from the records by each kind's ``apply`` / ``unapply``.

This module is the generic machinery: keys, the codec, staging a batch's records, expiry, pending
records, applying changelog records, and the ``Kind`` base. No Kafka, no clock. The worker sends
``Journal.commit``'s records and then persists the staged store writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import pydantic_core

from gmv.streams.core.batch import BatchContext
from gmv.streams.state.store import RAW, Codec, PartitionStore, ResidentMap, Staged, StoredMap

PENDING = "pending"
ChangelogRecord = tuple[str, bytes | None]

_WATERMARK, _EXPIRED_AT = b"watermark", b"expired_at"


def changelog_key(partition: int, kind: str, rid: str) -> str:
    return f"{partition}/{kind}/{rid}"


def split_key(key: str) -> tuple[int, str, str]:
    """(partition, kind, id) of a format-2 changelog key."""
    p, kind, rid = key.split("/", 2)
    return int(p), kind, rid


def is_current(key: str) -> bool:
    """A format-2 key (format 1's were ``<partition>|<kind>|<nonce>|<seq>`` and ``<partition>|mark``)."""
    head = key.split("/", 1)[0]
    return head.isdigit() and len(head) < len(key)


def _index_key(kind: str, t_ms: int, rid: str) -> bytes:
    return f"x|{kind}|{max(0, t_ms):015d}|{rid}".encode("utf-8", "surrogatepass")


def encode_json(doc: Any) -> bytes:
    """Compact JSON, in Rust; json.dumps for anything Rust refuses (a lone surrogate, which validated
    input never holds)."""
    try:
        return pydantic_core.to_json(doc)
    except ValueError:
        return json.dumps(doc, separators=(",", ":")).encode()


def decode_json(raw: bytes) -> Any:
    try:
        return pydantic_core.from_json(raw)
    except ValueError:  # written by encode_json's fallback (json.dumps escapes what Rust refuses)
        return json.loads(raw)


# The names the journal's first format used.
_encode, _decode = encode_json, decode_json

TEXT: Codec[str] = Codec(lambda s: s.encode("utf-8", "surrogatepass"), lambda b: b.decode("utf-8", "surrogatepass"))
FLAG: Codec[int] = Codec(lambda _: b"1", lambda _: 1)


def record_codec(cls: type) -> Codec:
    """A NamedTuple of plain fields as its JSON array."""
    return Codec(lambda r: encode_json(tuple(r)), lambda b: cls(*decode_json(b)))


@dataclass
class Horizons:
    dedup_ms: int
    lookback_ms: int
    retention_ms: int


@dataclass
class Confirmation:
    """Pending records of one journal whose rows a refresh will have stored: once it has, ``Journal.confirm``."""

    journal: Journal
    pending_ids: list[str]


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

    def __init__(self, st: S, journal: Journal) -> None:
        self.st = st
        self.journal = journal

    def key(self, rec: Any) -> str:
        """What looks the record up: its event's id, by default."""
        return rec[0]

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

    def cutoff(self) -> int:
        """Records whose time is before this may expire; by default, older than ``weights_retention``."""
        return self.journal.watermark_ms - self.journal.horizons.retention_ms

    def may_expire(self, rec: Any) -> bool:
        """Past the cutoff, whether this record may go (an order waits for its attribution ...)."""
        return True

    def reemit(self, rec: Any, ctx: BatchContext) -> None:
        """A derived record's rows, again: ClickHouse may not hold them (it is still pending)."""
        raise NotImplementedError(f"{self.name} records derive no rows")


class Journal:
    """One partition's records: those staged by this batch, the store they live in, the pending ones,
    and the event-time watermark they expire by."""

    def __init__(self, partition: int, horizons: Horizons, store: PartitionStore) -> None:
        self.partition = partition
        self.horizons = horizons
        self.store = store
        self.kinds: dict[str, Kind] = {}
        self.records: dict[str, StoredMap[bytes]] = {}
        self.pending: ResidentMap[int] = ResidentMap(store, "u|", FLAG)  # "<kind>/<id>" -> 1
        self.unmarked: list[str] = []  # pending records no mark has covered yet
        self.counts: dict[str, int] = {}  # records per kind (made minus expired)
        self._staged: list[tuple[str, Any, int, bool]] = []
        raw_wm, raw_exp = store.meta(_WATERMARK), store.meta(_EXPIRED_AT)
        self.watermark_ms = int(raw_wm) if raw_wm else 0
        self._expired_at_ms: int | None = int(raw_exp) if raw_exp else None
        raw_counts = store.meta(b"counts")
        if raw_counts:
            self.counts = decode_json(raw_counts)

    def register(self, st: S, kind: type[Kind[S]]) -> Kind[S]:
        """Bind a domain's kind to its state in this partition: its records are applied there."""
        if kind.name in self.kinds or kind.name == PENDING:
            raise ValueError(f"journal kind {kind.name!r} is handled twice")
        bound = self.kinds[kind.name] = kind(st, self)
        self.records[kind.name] = StoredMap(self.store, f"r{kind.name}|", RAW)
        self.counts.setdefault(kind.name, 0)
        return bound

    # -- the live path --------------------------------------------------------------------------
    def advance(self, t_ms: int) -> None:
        """Move the event-time watermark (it never goes back)."""
        if t_ms > self.watermark_ms:
            self.watermark_ms = t_ms

    def record(self, kind: str, rec: Any, t_ms: int, confirmed: bool = False) -> None:
        """Stage a record for this batch (its state is updated by the caller); a derived record stays
        pending until ``confirm`` unless ``confirmed`` (its rows are known to be stored)."""
        self._staged.append((kind, rec, t_ms, confirmed))

    def commit(self) -> tuple[list[ChangelogRecord], Staged]:
        """This batch's changelog records (expiries included) and its store writes, staged."""
        out = self._expire_due()
        p, store, kinds, records, counts = self.partition, self.store, self.kinds, self.records, self.counts
        for name, rec, t_ms, confirmed in self._staged:
            kind = kinds[name]
            rid = kind.key(rec)
            raw = encode_json({"t": t_ms, "r": kind.encode(rec)})
            records[name][rid] = raw
            store.write(_index_key(name, t_ms, rid), b"", RAW)
            counts[name] += 1
            out.append((changelog_key(p, name, rid), raw))
            if kind.derived and not confirmed:
                pid = f"{name}/{rid}"
                self.pending[pid] = 1
                self.unmarked.append(pid)
                out.append((changelog_key(p, PENDING, pid), b"1"))
        self._staged.clear()
        return out, self.stage()

    def stage(self) -> Staged:
        meta = {b"\x00meta|" + _WATERMARK: str(self.watermark_ms).encode(),
                b"\x00meta|counts": encode_json(self.counts)}
        if self._expired_at_ms is not None:
            meta[b"\x00meta|" + _EXPIRED_AT] = str(self._expired_at_ms).encode()
        return self.store.stage(meta)

    def take_unmarked(self) -> list[str]:
        """The pending records made (or found) since the last call: a mark written once ClickHouse
        holds everything up to now will confirm them."""
        out, self.unmarked = self.unmarked, []
        return out

    def confirm(self, pending_ids: Iterable[str]) -> tuple[list[ChangelogRecord], dict[bytes, bytes | None]]:
        """Their rows are stored: the tombstones to send, and the store writes to make once sent."""
        out, changes = [], {}
        for pid in pending_ids:
            if self.pending.mem.pop(pid, None) is not None:
                out.append((changelog_key(self.partition, PENDING, pid), None))
                changes[self.pending._key(pid)] = None
        return out, changes

    # -- expiry ---------------------------------------------------------------------------------
    def _expire_due(self) -> list[ChangelogRecord]:
        """Expire once event time has moved on by a tenth of the shortest horizon (at most a
        minute): a pass reads the expiry index of every kind."""
        h = self.horizons
        step = min(60_000, max(1, min(h.dedup_ms, h.lookback_ms, h.retention_ms) // 10))
        if self._expired_at_ms is not None and self.watermark_ms - self._expired_at_ms < step:
            return []
        return self.expire()

    def expire(self) -> list[ChangelogRecord]:
        self._expired_at_ms = self.watermark_ms
        out: list[ChangelogRecord] = []
        store = self.store
        for name, kind in self.kinds.items():
            cutoff = kind.cutoff()
            lo = f"x|{name}|".encode()
            records = self.records[name]
            for ikey, _ in list(store.scan(lo, lo + f"{max(0, cutoff):015d}".encode())):
                t_ms, rid = int(ikey[len(lo):len(lo) + 15]), ikey[len(lo) + 16:].decode("utf-8", "surrogatepass")
                raw = records.get(rid)
                doc = None if raw is None else decode_json(raw)
                if doc is None or doc["t"] != t_ms:  # a record made again later has an entry of its own
                    store.delete(ikey)
                    continue
                rec = kind.decode(doc["r"])
                if not kind.may_expire(rec):
                    continue
                kind.unapply(rec)
                records.pop(rid)
                store.delete(ikey)
                self.counts[name] -= 1
                out.append((changelog_key(self.partition, name, rid), None))
                pid = f"{name}/{rid}"
                if self.pending.pop(pid) is not None:
                    out.append((changelog_key(self.partition, PENDING, pid), None))
        return out

    # -- recovery -------------------------------------------------------------------------------
    def load(self, items: Iterable[ChangelogRecord]) -> int:
        """Apply format-2 changelog records in offset order (``None`` = expired or confirmed), as
        found in the changelog past what the store holds. Returns how many were applied."""
        n = 0
        kinds, records, store = self.kinds, self.records, self.store
        for key, raw in items:
            n += 1
            _, name, rid = split_key(key)
            if name == PENDING:
                if raw is None:
                    self.pending.pop(rid)
                else:
                    self.pending[rid] = 1
                continue
            kind = kinds[name]
            old = records[name].get(rid)
            if old is not None:
                od = decode_json(old)
                kind.unapply(kind.decode(od["r"]))
                store.delete(_index_key(name, od["t"], rid))
                self.counts[name] -= 1
            if raw is None:
                records[name].pop(rid)
                continue
            doc = decode_json(raw)
            kind.apply(kind.decode(doc["r"]))
            records[name][rid] = raw
            store.write(_index_key(name, doc["t"], rid), b"", RAW)
            self.counts[name] += 1
            self.advance(doc["t"])
        return n

    def unconfirmed(self) -> list[Unconfirmed]:
        """Every pending record (its rows may not be in ClickHouse); each is left for the next mark."""
        out = []
        for pid in list(self.pending.mem):
            name, rid = pid.split("/", 1)
            raw = self.records[name].get(rid) if name in self.records else None
            if raw is None:  # expired meanwhile: nothing to re-emit
                self.pending.pop(pid)
                continue
            out.append(Unconfirmed(name, self.kinds[name].decode(decode_json(raw)["r"])))
            self.unmarked.append(pid)
        return out
