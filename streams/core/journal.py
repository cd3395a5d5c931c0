"""Stream state of one source partition, persisted as a batch journal in a changelog topic.

Per-event state writes cost one changelog message each, and the broker's CPU
goes with them; so state is written once per batch: one journal entry per
(partition, kind, batch) holding that batch's records. In-memory indexes are
derived from the journal, rebuilt after a restart or a rebalance, and pruned by
the partition's *event-time* watermark (never the wall clock), so a replay of
last month prunes exactly as live processing did.

Journal keys are ``<partition>|<kind>|<nonce>|<seq>`` and live in changelog
partition ``<partition>``; the value is compact JSON ``{"k": kind, "t": t_max,
"r": [record, ...]}`` where ``t_max`` is the newest event time (epoch ms) of its
records and each record is a JSON array of its type's fields, in order. Each
writer (a process owning the partition) has a random ``nonce`` and numbers its
entries ``seq`` = 1, 2, ...; a deleted key (``None`` value) removes its entry.
Kinds, each handled by one ``Kind`` of its domain's module (``dedup``, ``touches``,
``refunds``, ``reviews``, ``conversations``):

``seen``     SeenRecord — de-duplication (``dedup_horizon``), for events no other record carries
``touch``    TouchRecord — touchpoints (``lookback`` before the oldest pending order, and never
             before ``dedup_horizon``: a touch record is also its event's de-duplication)
``order``    OrderRec — a paid order awaiting / done attribution (``weights_retention``)
``attr``     AttrRecord — an order's attribution path, kept for its refunds (``weights_retention``)
``refund``   RefundRec — a refund event, held until its order is attributed (``weights_retention``)
``settled``  RefundOutcome — what became of a refund: applied | orphan | over_refund (``weights_retention``)
``review``   ReviewRec — a review, held until it is judged (``weights_retention``)
``reviewed`` ReviewOutcome — what became of a review: applied | orphan_review | review_already_given |
             review_user_mismatch (``weights_retention``)
``cs``       CsMessageRec — a customer-service message; its conversation's turns are derived from all of
             them (``weights_retention``)
``mark``     ``{"k": "mark", "n": nonce, "s": seq}`` under key ``<partition>|mark``: ClickHouse holds
             every row derived from the writer's own entries up to ``seq`` and from every other
             writer's entry before the mark. Batches are pipelined (batch N+1's journal goes out
             while batch N is written to ClickHouse), so a mark can follow entries it does not
             cover yet.

This module is the generic machinery: keys, the entry codec, staging and chunking a batch's
records, marks, expiry, and the ``Kind`` base each domain's kinds derive from. Pure: no Kafka,
no clock. The worker sends ``Journal.commit``'s puts and deletes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import pydantic_core

from gmv.streams.core.batch import BatchContext

JOURNAL_CHUNK = 200  # records per journal entry: a 20-touch path is ~2 KB, so an entry stays < 0.5 MiB
MARK = "mark"


def entry_key(partition: int, kind: str, nonce: str, seq: int) -> str:
    return f"{partition}|{kind}|{nonce}|{seq}"


def mark_key(partition: int) -> str:
    return f"{partition}|{MARK}"


def writer_of(key: str) -> tuple[str, int]:
    """The (nonce, seq) of an entry's key; ("", 0) for a key without them."""
    _, _, nonce, seq = (key.split("|") + ["", "0"])[:4]
    return nonce, int(seq)


def _encode(doc: dict) -> bytes:
    """A journal entry as compact JSON, in Rust; json.dumps for anything Rust refuses (a lone
    surrogate, which validated input never holds)."""
    try:
        return pydantic_core.to_json(doc)
    except ValueError:
        return json.dumps(doc, separators=(",", ":")).encode()


def _decode(raw: bytes) -> dict:
    try:
        return pydantic_core.from_json(raw)
    except ValueError:  # written by _encode's fallback (json.dumps escapes what Rust refuses)
        return json.loads(raw)


@dataclass(slots=True)
class JournalEntry:
    kind: str
    t_max: int  # newest event time (ms) among its records: the entry expires after it
    records: list


@dataclass
class Horizons:
    dedup_ms: int
    lookback_ms: int
    retention_ms: int


class Unconfirmed(NamedTuple):
    """A derived record whose rows ClickHouse may not hold yet (no mark covers it)."""

    kind: str
    record: Any
    nonce: str
    seq: int


S = TypeVar("S")


class Kind(Generic[S]):
    """Decoding, encoding, applying, un-applying and expiring the records of one journal kind, in one
    partition's state of its domain (``st``); a *derived* kind's records produce ClickHouse rows when
    they are made, and again (``reemit``) when a restart finds them unconfirmed."""

    name = ""
    derived = False

    def __init__(self, st: S, journal: Journal) -> None:
        self.st = st
        self.journal = journal

    def decode(self, raw: list) -> Any:
        raise NotImplementedError

    def encode(self, recs: list) -> list:
        """Records as their wire arrays: plain tuples (pydantic-core encodes NamedTuples several
        times slower)."""
        return [tuple(r) for r in recs]

    def apply(self, rec: Any) -> None:
        raise NotImplementedError

    def unapply(self, rec: Any) -> None:
        raise NotImplementedError

    def expiry(self) -> Callable[[JournalEntry], bool]:
        """This expiry pass's test of an entry of this kind (made once per pass); by default, older
        than ``weights_retention``."""
        cutoff = self.journal.watermark_ms - self.journal.horizons.retention_ms
        return lambda entry: entry.t_max < cutoff

    def reemit(self, rec: Any, ctx: BatchContext) -> None:
        """A derived record's rows, again: ClickHouse may not hold them (no mark covers it)."""
        raise NotImplementedError(f"{self.name} records derive no rows")


class Journal:
    """One partition's journal: its entries, the records staged for this batch, its writer's nonce
    and sequence, and the event-time watermark its entries expire by."""

    def __init__(self, partition: int, horizons: Horizons) -> None:
        self.partition = partition
        self.horizons = horizons
        self.kinds: dict[str, Kind] = {}
        self.entries: dict[str, JournalEntry] = {}
        self.watermark_ms = 0
        self.unconfirmed: list[Unconfirmed] = []
        self._pending: dict[str, list] = {}
        self._pending_t: dict[str, int] = {}
        self._seq = 0
        self._expired_at_ms: int | None = None  # watermark of the last expiry pass
        self.nonce = os.urandom(4).hex()

    def register(self, st: S, kind: type[Kind[S]]) -> Kind[S]:
        """Bind a domain's kind to its state in this partition: its records are applied there."""
        if kind.name in self.kinds or kind.name == MARK:
            raise ValueError(f"journal kind {kind.name!r} is handled twice")
        bound = self.kinds[kind.name] = kind(st, self)
        return bound

    def load(self, items: Iterable[tuple[str, bytes | None]]) -> None:
        """Rebuild from changelog records in offset order (``None`` = deleted)."""
        for key, raw in items:
            old = self.entries.pop(key, None)
            if old is not None:
                self._unapply(old)
            if raw is None:
                continue
            doc = _decode(raw)
            if doc["k"] == MARK:
                nonce, upto = doc.get("n"), doc.get("s", 0)
                # Everything before the mark is covered, but for the marking writer's own
                # entries past ``upto`` (sent ahead while this batch was being written).
                self.unconfirmed = [u for u in self.unconfirmed if nonce is not None and u.nonce == nonce
                                    and u.seq > upto]
                continue
            kind = self.kinds[doc["k"]]
            entry = JournalEntry(kind.name, doc["t"], [kind.decode(r) for r in doc["r"]])
            self.entries[key] = entry
            for rec in entry.records:
                kind.apply(rec)
            if kind.derived:
                nonce, seq = writer_of(key)
                self.unconfirmed.extend(Unconfirmed(kind.name, rec, nonce, seq) for rec in entry.records)
            self.watermark_ms = max(self.watermark_ms, entry.t_max)
        # Entries that expired while this partition was elsewhere go now.
        self._expire()

    def advance(self, t_ms: int) -> None:
        """Move the event-time watermark (it never goes back)."""
        if t_ms > self.watermark_ms:
            self.watermark_ms = t_ms

    def record(self, kind: str, rec: tuple, t_ms: int) -> None:
        """Stage a record for this batch's journal entry of ``kind`` (its state is updated by the caller)."""
        pending = self._pending.get(kind)
        if pending is None:
            pending = self._pending[kind] = []
            self._pending_t[kind] = t_ms
        pending.append(rec)
        if t_ms > self._pending_t[kind]:
            self._pending_t[kind] = t_ms

    def commit(self) -> tuple[list[tuple[str, bytes]], list[str]]:
        """Journal entries to put and keys to delete for this batch."""
        puts: list[tuple[str, bytes]] = []
        for kind, all_recs in self._pending.items():
            # Bounded entries: a changelog message must stay well under the broker's 1 MiB limit
            # (an end-of-input attribution can journal thousands of 20-touch paths at once).
            for i in range(0, len(all_recs), JOURNAL_CHUNK):
                recs = all_recs[i:i + JOURNAL_CHUNK]
                self._seq += 1
                key = entry_key(self.partition, kind, self.nonce, self._seq)
                entry = JournalEntry(kind, self._pending_t[kind], recs)
                self.entries[key] = entry
                puts.append((key, _encode({"k": kind, "t": entry.t_max, "r": self.kinds[kind].encode(recs)})))
        self._pending.clear()
        self._pending_t.clear()
        return puts, self._expire_due()

    @property
    def seq(self) -> int:
        """Sequence number of the last journal entry this writer committed."""
        return self._seq

    def mark_key_value(self, upto_seq: int | None = None) -> tuple[str, bytes]:
        """The mark saying ClickHouse holds the rows of this writer's entries up to ``upto_seq``."""
        upto = self._seq if upto_seq is None else upto_seq
        doc = {"k": MARK, "t": 0, "r": [], "n": self.nonce, "s": upto}
        return mark_key(self.partition), json.dumps(doc, separators=(",", ":")).encode()

    def _expire_due(self) -> list[str]:
        """Expire once event time has moved on by a tenth of the shortest horizon (at most a
        minute): a pass reads every journal entry, too much to do on every batch."""
        h = self.horizons
        step = min(60_000, max(1, min(h.dedup_ms, h.lookback_ms, h.retention_ms) // 10))
        if self._expired_at_ms is not None and self.watermark_ms - self._expired_at_ms < step:
            return []
        return self._expire()

    def _expire(self) -> list[str]:
        self._expired_at_ms = self.watermark_ms
        dels = []
        expired = {name: kind.expiry() for name, kind in self.kinds.items()}
        for key, entry in list(self.entries.items()):
            if expired[entry.kind](entry):
                del self.entries[key]
                self._unapply(entry)
                dels.append(key)
        return dels

    def _unapply(self, entry: JournalEntry) -> None:
        kind = self.kinds[entry.kind]
        for rec in entry.records:
            kind.unapply(rec)
