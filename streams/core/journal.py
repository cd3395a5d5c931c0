"""Stream state of one source partition: its records, kept in the partition's store and written to a
changelog topic keyed by record, so that Kafka's compaction keeps live state only.

Each record is made once, by the handler that took its event, and lives until its own horizon has
passed in *event time* (the partition's watermark, never the wall clock), so a replay of last month
expires exactly as live processing did. The changelog (format 2) has one message per record, but
for the grouped kinds (``seen``, ``touch``: one per event, never changed), by the bucket:

``<partition>/<kind>/<id>`` → compact JSON ``{"t": t_ms, "r": record}``: ``t_ms`` is the event
time (epoch ms) the record expires by, ``record`` the JSON array of its type's fields, in order;
``id`` is what looks the record up (an event id; an order's event id for ``attr``); a ``None``
value (tombstone) is the record's expiry.

``<partition>/bucket/<kind>/<end, 15 digits>/<n>.<writer>`` → ``{"t": t_ms, "r": [record, ...]}``:
records of a grouped kind one batch made in one bucket of event time ending at ``end`` (epoch ms), at
most 256 KiB of them (a bigger bucket goes in several messages), ``t_ms`` the latest of their times;
``n`` numbers the partition's buckets and index entries, ``writer`` (8 hex digits) is the journal that
wrote it, new at each assignment. A key loaded again replaces the records the first message held. The
records expire together, with the bucket's tombstone. (Until 5d39b92 these kinds were written a record per key; such
records still load and expire.)

``<partition>/pending/<kind>/<id>`` → ``1``: the rows derived from that record may not be in
ClickHouse yet; its tombstone (sent once they are stored and rolled up, or their slow refresh is
recorded as owed, ``confirm``) says they are.
A restart re-emits the rows of every record still pending.

Changelog partition ``p`` holds source partition ``p``'s records. Kinds, each handled by one
``Kind`` of its domain's module (``dedup``, ``touches``, ``refunds``, ``reviews``, ``conversations``):

``seen``     SeenRecord — de-duplication (``dedup_horizon``), for events no other record carries
``touch``    TouchRecord — touchpoints (``lookback`` before the oldest pending order, or before the
             watermark less ``dedup_horizon``, the lateness an order may have; a touch record is
             also its event's de-duplication)
``order``    OrderRec — a paid order awaiting / done attribution (``weights_retention``, once attributed)
``attr``     AttrRecord — an order's attribution path, kept for its refunds (``weights_retention``)
``refund``   RefundRec — a refund event, held until its order is attributed (``weights_retention``, once settled)
``settled``  RefundOutcome — what became of a refund: applied | orphan | over_refund (``weights_retention``)
``review``   ReviewRec — a review, held until it is judged (``weights_retention``, once judged)
``reviewed`` ReviewOutcome — what became of a review: applied | orphan_review | review_already_given |
             review_user_mismatch (``weights_retention``)
``cs``       CsMessageRec — a customer-service message; its conversation's turns are derived from all of
             them (``weights_retention``)

In the store (``gmv.streams.state``), a record's changelog value lives under ``r<kind>|<id>``, and
expiry index entries ``x|<kind>|<end of a bucket of event time, epoch ms, 15 digits>|<n>`` → JSON list
of the ids of records made in that bucket (a tenth of the shortest horizon wide, at most a minute)
let a pass read only what has expired; a grouped kind's bucket is its own index entry,
``x|<kind>|<end>|b<n>.<writer>`` → the bucket's changelog value;
the domains keep what their rules look up (a user's touches, an order id's paid event ...) in maps of
their own, derived from the records by each kind's ``apply`` / ``unapply``.

This module is the generic machinery: keys, the codec, staging a batch's records, expiry, pending
records, applying changelog records, and the ``Kind`` base. No Kafka, no clock. The worker sends
``Journal.commit``'s records and then persists the staged store writes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pydantic_core

from gmv.streams.core.codec import FLAG, decode_json, encode_json
from gmv.streams.core.kinds import Horizons, Kind, S, Unconfirmed
from gmv.streams.state.store import RAW, PartitionStore, ResidentMap, Staged, UncachedMap

PENDING = "pending"
BUCKET = "bucket"
ChangelogRecord = tuple[str, bytes | None]

_META = b"\x00meta|"
_WATERMARK, _EXPIRED_AT, _BUCKET_SEQ = b"watermark", b"expired_at", b"bucket_seq"


def changelog_key(partition: int, kind: str, rid: str) -> str:
    return f"{partition}/{kind}/{rid}"


def partition_of(key: str) -> int:
    """The changelog partition of a key of either format (``<partition>/...`` or ``<partition>|...``)."""
    i = 0
    while key[i].isdigit():
        i += 1
    return int(key[:i])


def split_key(key: str) -> tuple[int, str, str]:
    """(partition, kind, id) of a format-2 changelog key."""
    p, kind, rid = key.split("/", 2)
    return int(p), kind, rid


def bucket_key(partition: int, kind: str, end_ms: int, n: str) -> str:
    """The changelog key of a bucket: the records of a grouped kind made by one batch in one bucket of
    event time (``n``: its number and writer)."""
    return f"{partition}/{BUCKET}/{kind}/{max(0, end_ms):015d}/{n}"


def carried(key: str, value: bytes) -> list[tuple[str, list]]:
    """(kind, record as its wire array) of each record a format-2 changelog message carries: one, or a
    bucket's (none for a pending entry)."""
    _, kind, rid = split_key(key)
    if kind == PENDING:
        return []
    records = decode_json(value)["r"]
    if kind == BUCKET:
        name = rid.split("/", 1)[0]
        return [(name, r) for r in records]
    return [(kind, records)]


def is_current(key: str) -> bool:
    """A format-2 key (format 1's were ``<partition>|<kind>|<nonce>|<seq>`` and ``<partition>|mark``)."""
    head = key.split("/", 1)[0]
    return head.isdigit() and len(head) < len(key)


def _bucket_key(kind: str, end_ms: int, seq: int) -> bytes:
    """An expiry index entry: the ids of records of ``kind`` made in the bucket of event time ending
    at ``end_ms``."""
    return f"x|{kind}|{max(0, end_ms):015d}|{seq}".encode()


def _group_key(kind: str, end_ms: int, n: str) -> bytes:
    """A bucket of a grouped kind in the store: its records themselves (the changelog value)."""
    return f"x|{kind}|{max(0, end_ms):015d}|b{n}".encode()


@dataclass
class Confirmation:
    """Pending records of one journal whose rows a refresh will have stored: once it has, ``Journal.confirm``."""

    journal: Journal
    pending_ids: list[str]


# A bucket's message stays under this, far below a producer batch and the broker's message limit
# (1 MiB): a bucket of a big batch holds thousands of records of ~200 bytes, more with long ids.
BUCKET_BYTES = 256 * 1024


def _bucketed(kind: Kind, staged: list[tuple[Any, int, bool]], step: int) -> list[tuple[int, bytes]]:
    """A grouped kind's records of one batch, per bucket of event time: (the bucket's end, the message
    ``{"t": latest record's time, "r": [records]}``), a bucket in several messages if it is big."""
    groups: dict[int, tuple[list[Any], list[int]]] = {}
    encode = kind.encode
    for rec, t_ms, _ in staged:
        group = groups.get(t_ms // step)
        if group is None:
            group = groups[t_ms // step] = ([], [])
        group[0].append(encode(rec))
        group[1].append(t_ms)
    return [m for b, (wires, times) in groups.items() for m in _messages((b + 1) * step - 1, wires, times)]


def _messages(end: int, wires: list[Any], times: list[int]) -> list[tuple[int, bytes]]:
    raw = encode_json({"t": max(times), "r": wires})
    if len(raw) <= BUCKET_BYTES or len(wires) == 1:
        return [(end, raw)]
    half = len(wires) // 2
    return _messages(end, wires[:half], times[:half]) + _messages(end, wires[half:], times[half:])


def _unapply_bucket(kind: Kind, raw: bytes) -> int:
    """Un-apply a bucket's records; how many it held."""
    wires = decode_json(raw)["r"]
    kind.unapply_all([kind.decode(wire) for wire in wires])
    return len(wires)


class Journal:
    """One partition's records: those staged by this batch, the store they live in, the pending ones,
    and the event-time watermark they expire by."""

    def __init__(self, partition: int, horizons: Horizons, store: PartitionStore) -> None:
        self.partition = partition
        self.horizons = horizons
        self.store = store
        self.kinds: dict[str, Kind] = {}
        self.records: dict[str, UncachedMap[bytes]] = {}
        self.pending: ResidentMap[int] = ResidentMap(store, "u|", FLAG)  # "<kind>/<id>" -> 1
        self.unmarked: list[str] = []  # pending records no mark has covered yet
        self.counts: dict[str, int] = {}  # records per kind (made minus expired)
        self._staged: list[tuple[str, Any, int, bool]] = []
        # In a bucket's key: two writers of a partition (a member the group dropped while it still
        # sends, and the new owner) never write one key, whatever their batches held.
        self.writer = secrets.token_hex(4)
        # Expiry goes by buckets of event time this wide: a pass every step, at most a step late.
        self.step_ms = min(60_000, max(1, min(horizons.dedup_ms, horizons.lookback_ms, horizons.retention_ms) // 10))
        meta = store.meta
        raw_wm, raw_exp, raw_seq = meta(_WATERMARK), meta(_EXPIRED_AT), meta(_BUCKET_SEQ)
        self.watermark_ms = int(raw_wm) if raw_wm else 0
        self._expired_at_ms: int | None = int(raw_exp) if raw_exp else None
        self._bucket_seq = int(raw_seq) if raw_seq else 0
        raw_counts = meta(b"counts")
        if raw_counts:
            self.counts = decode_json(raw_counts)

    def register(self, st: S, kind: type[Kind[S]]) -> Kind[S]:
        """Bind a domain's kind to its state in this partition: its records are applied there."""
        if kind.name in self.kinds or kind.name in (PENDING, BUCKET):
            raise ValueError(f"journal kind {kind.name!r} is handled twice")
        bound = self.kinds[kind.name] = kind(st, self)
        self.records[kind.name] = UncachedMap(self.store, f"r{kind.name}|", RAW)
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
        p, kinds, step = self.partition, self.kinds, self.step_ms
        raw_writes = self.store.raw
        buckets: dict[tuple[str, int], list[str]] = {}
        by_kind: dict[str, list[tuple[Any, int, bool]]] = {}
        for name, rec, t_ms, confirmed in self._staged:
            by_kind.setdefault(name, []).append((rec, t_ms, confirmed))
        self._staged.clear()
        to_json = pydantic_core.to_json
        # Per record: its changelog record and what the store keeps (calls and lookups hoisted per kind).
        for name, staged in by_kind.items():
            kind = kinds[name]
            if kind.grouped:
                out.extend(self._commit_grouped(kind, staged))
                continue
            key, encode, derived, keeps = kind.key, kind.encode, kind.derived, kind.keeps_record
            prefix, head = b"r%b|" % name.encode(), f"{p}/{name}/"
            self.counts[name] += len(staged)
            for rec, t_ms, confirmed in staged:
                rid = key(rec)
                wire = encode(rec)
                try:
                    raw = b'{"t":%d,"r":%b}' % (t_ms, to_json(wire))
                except ValueError:  # a lone surrogate (see encode_json)
                    raw = b'{"t":%d,"r":%b}' % (t_ms, encode_json(wire))
                if keeps:
                    raw_writes[prefix + rid.encode("utf-8", "surrogatepass")] = raw
                bucket = buckets.get((name, t_ms // step))
                if bucket is None:
                    bucket = buckets[(name, t_ms // step)] = []
                bucket.append(rid)
                out.append((head + rid, raw))
                if derived and not confirmed:
                    pid = f"{name}/{rid}"
                    self.pending[pid] = 1
                    self.unmarked.append(pid)
                    out.append((changelog_key(p, PENDING, pid), b"1"))
        self._index(buckets)
        return out, self.stage()

    def _commit_grouped(self, kind: Kind, staged: list[tuple[Any, int, bool]]) -> list[ChangelogRecord]:
        """A grouped kind's records of this batch: one changelog message and one store entry per
        bucket of event time."""
        self.counts[kind.name] += len(staged)
        out: list[ChangelogRecord] = []
        for end, raw in _bucketed(kind, staged, self.step_ms):
            self._bucket_seq += 1
            n = f"{self._bucket_seq}.{self.writer}"
            self.store.raw[_group_key(kind.name, end, n)] = raw
            out.append((bucket_key(self.partition, kind.name, end, n), raw))
        return out

    def _index(self, buckets: dict[tuple[str, int], list[str]]) -> None:
        """Expiry index entries: per kind and bucket of event time, the ids of the records made in it."""
        raw_writes = self.store.raw
        for (name, b), ids in buckets.items():
            self._bucket_seq += 1
            raw_writes[_bucket_key(name, (b + 1) * self.step_ms - 1, self._bucket_seq)] = encode_json(ids)

    def stage(self) -> Staged:
        meta = {_META + _WATERMARK: str(self.watermark_ms).encode(), _META + b"counts": encode_json(self.counts),
                _META + _BUCKET_SEQ: str(self._bucket_seq).encode()}
        if self._expired_at_ms is not None:
            meta[_META + _EXPIRED_AT] = str(self._expired_at_ms).encode()
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
        """Expire once event time has moved on by a step (a tenth of the shortest horizon, at most a
        minute): a pass reads the expiry index of every kind."""
        if self._expired_at_ms is not None and self.watermark_ms - self._expired_at_ms < self.step_ms:
            return []
        return self.expire()

    def expire(self) -> list[ChangelogRecord]:
        """Every record whose bucket of event time has passed its kind's cutoff (and ``may_expire``) goes:
        its state un-applied, its record and pending entry tombstoned."""
        self._expired_at_ms = self.watermark_ms
        out: list[ChangelogRecord] = []
        store, step = self.store, self.step_ms
        buckets: dict[tuple[str, int], list[str]] = {}  # what may not go yet, indexed again
        writes = store.encoded_writes(b"x|")
        for name, kind in self.kinds.items():
            lo = f"x|{name}|".encode()
            records = self.records[name]
            hi = lo + f"{max(0, kind.cutoff()):015d}".encode()
            for ikey, raw_ids in list(store.scan(lo, hi, decoded=False, writes=writes)):
                store.write_raw(ikey, None)
                end_ms = int(ikey[len(lo):len(lo) + 15])
                if raw_ids[:1] == b"{":  # a bucket of a grouped kind: its records go together
                    out.append((bucket_key(self.partition, name, end_ms, ikey[len(lo) + 17:].decode()), None))
                    self.counts[name] -= _unapply_bucket(kind, raw_ids)
                    continue
                bucket = end_ms // step
                for rid in decode_json(raw_ids):
                    held = kind.recall(rid)
                    if held is None:
                        continue  # expired already, or its tombstone came from the changelog
                    rec, t_ms = held
                    if t_ms is not None and t_ms > end_ms:
                        continue  # made again later: its own bucket holds it (buckets of another width too)
                    if not kind.may_expire(rec):
                        buckets.setdefault((name, bucket), []).append(rid)
                        continue
                    kind.unapply(rec)
                    if kind.keeps_record:
                        records.pop(rid)
                    self.counts[name] -= 1
                    out.append((changelog_key(self.partition, name, rid), None))
                    pid = f"{name}/{rid}"
                    if self.pending.pop(pid) is not None:
                        out.append((changelog_key(self.partition, PENDING, pid), None))
        self._index(buckets)
        return out

    # -- recovery -------------------------------------------------------------------------------
    def load(self, items: Iterable[ChangelogRecord]) -> int:
        """Apply format-2 changelog records in offset order (``None`` = expired or confirmed), as
        found in the changelog past what the store holds. Returns how many records were applied (a
        bucket's each)."""
        n = 0
        kinds, records, step = self.kinds, self.records, self.step_ms
        buckets: dict[tuple[str, int], list[str]] = {}
        for key, raw in items:
            n += 1
            _, name, rid = split_key(key)
            if name == BUCKET:
                n += self._load_group(rid, raw) - 1
                continue
            if name == PENDING:
                if raw is None:
                    self.pending.pop(rid)
                else:
                    self.pending[rid] = 1
                continue
            kind = kinds[name]
            old = kind.recall(rid)
            if old is not None:
                kind.unapply(old[0])
                self.counts[name] -= 1
            if raw is None:
                if kind.keeps_record:
                    records[name].pop(rid)
                continue
            doc = decode_json(raw)
            kind.apply(kind.decode(doc["r"]))
            if kind.keeps_record:
                records[name][rid] = raw
            buckets.setdefault((name, doc["t"] // step), []).append(rid)
            self.counts[name] += 1
            self.advance(doc["t"])
        self._index(buckets)
        return n

    def _load_group(self, rid: str, raw: bytes | None) -> int:
        """A bucket's changelog message: its records applied (a bucket sent again, by a batch made
        again after a crash, first takes back what it held), or, a tombstone, expired. Returns how
        many records it carried (a tombstone: 1)."""
        name, end, n = rid.split("/")
        kind, skey = self.kinds[name], _group_key(name, int(end), n)
        held = self.store._raw(skey)
        if held is not None:
            self.counts[name] -= _unapply_bucket(kind, held)
        self.store.raw[skey] = raw
        if raw is None:
            return 1
        doc = decode_json(raw)
        kind.apply_wires(doc["r"])
        self.counts[name] += len(doc["r"])
        self._bucket_seq = max(self._bucket_seq, int(n.split(".", 1)[0]))
        self.advance(doc["t"])
        return len(doc["r"])

    def unconfirmed(self) -> list[Unconfirmed]:
        """Every pending record (its rows may not be in ClickHouse); each is left for the next mark."""
        out = []
        for pid in list(self.pending.mem):
            name, rid = pid.split("/", 1)
            held = self.kinds[name].recall(rid) if name in self.kinds else None
            if held is None:  # expired meanwhile: nothing to re-emit
                self.pending.pop(pid)
                continue
            out.append(Unconfirmed(name, held[0]))
            self.unmarked.append(pid)
        return out
