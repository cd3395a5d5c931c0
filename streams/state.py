"""Stream state of one source partition, persisted as a batch journal in a faust table.

Per-event table writes cost one changelog message each, and the broker's CPU
goes with them; so state is written once per batch: one journal entry per
(partition, kind, batch) holding that batch's records. In-memory indexes are
derived from the journal, rebuilt after recovery or a rebalance, and pruned by
the partition's *event-time* watermark (never the wall clock), so a replay of
last month prunes exactly as live processing did.

Journal keys are ``<partition>|<kind>|<nonce>|<seq>``: the changelog partition is
the source partition (see ``JournalTable.partition_for_key``), so recovery hands
each worker exactly the state of the partitions it owns.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(when: datetime) -> int:
    return (when - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


@dataclass(slots=True)
class JournalEntry:
    kind: str
    t_max: int  # newest event time (ms) among its records: the entry expires after it
    records: list


@dataclass
class PartitionState:
    """De-duplication index of one partition (attribution state is added by the attribution layer)."""

    partition: int
    dedup_horizon_ms: int
    seen: dict[str, str] = field(default_factory=dict)  # event_id -> src of its first occurrence
    entries: dict[str, JournalEntry] = field(default_factory=dict)
    watermark_ms: int = 0
    _pending: dict[str, list] = field(default_factory=dict)
    _pending_t: dict[str, int] = field(default_factory=dict)
    _seq: int = 0
    _nonce: str = field(default_factory=lambda: os.urandom(4).hex())

    # -- journal ---------------------------------------------------------------
    def load(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Rebuild from journal entries (changelog order)."""
        for key, raw in items:
            doc = json.loads(raw)
            entry = JournalEntry(doc["k"], doc["t"], doc["r"])
            self.entries[key] = entry
            self._apply(entry)
            self.watermark_ms = max(self.watermark_ms, entry.t_max)

    def record(self, kind: str, rec: list, t_ms: int) -> None:
        """Stage a record for this batch's journal entry of ``kind``."""
        self._pending.setdefault(kind, []).append(rec)
        self._pending_t[kind] = max(self._pending_t.get(kind, 0), t_ms)

    def commit_batch(self) -> tuple[list[tuple[str, bytes]], list[str]]:
        """Journal entries to put and keys to delete for this batch."""
        puts: list[tuple[str, bytes]] = []
        for kind, recs in self._pending.items():
            self._seq += 1
            key = f"{self.partition}|{kind}|{self._nonce}|{self._seq}"
            entry = JournalEntry(kind, self._pending_t[kind], recs)
            self.entries[key] = entry
            puts.append((key, json.dumps({"k": kind, "t": entry.t_max, "r": recs}, separators=(",", ":")).encode()))
        self._pending.clear()
        self._pending_t.clear()
        return puts, self._expire()

    def _expire(self) -> list[str]:
        dels = []
        for key, entry in list(self.entries.items()):
            if entry.t_max < self.watermark_ms - self.horizon_ms(entry.kind):
                del self.entries[key]
                self._unapply(entry)
                dels.append(key)
        return dels

    def horizon_ms(self, kind: str) -> int:
        return self.dedup_horizon_ms

    def _apply(self, entry: JournalEntry) -> None:
        if entry.kind == "seen":
            for event_id, src in entry.records:
                self.seen.setdefault(event_id, src)

    def _unapply(self, entry: JournalEntry) -> None:
        if entry.kind == "seen":
            for event_id, src in entry.records:
                if self.seen.get(event_id) == src:
                    del self.seen[event_id]

    # -- de-duplication ----------------------------------------------------------
    def classify(self, event_id: str, src: str, t_ms: int) -> str:
        """'new', 'replay' (same source message seen again: re-derive its rows) or 'duplicate'."""
        first = self.seen.get(event_id)
        if first is None:
            self.seen[event_id] = src
            self.record("seen", [event_id, src], t_ms)
            return "new"
        return "replay" if first == src else "duplicate"

    def advance(self, t_ms: int) -> None:
        if t_ms > self.watermark_ms:
            self.watermark_ms = t_ms
