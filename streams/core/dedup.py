"""De-duplication of one partition's events by ``event_id`` (SPEC §2), within ``dedup_horizon``.

An event is *new*, a *replay* (the same source message again, after a crash before the offset
commit: its rows are derived again, identically) or a *duplicate* (another message re-sent it:
it counts once). A new event's de-duplication is journalled by its own record when it has one
(touch, order, refund, review, cs), else by a ``seen`` record: the handler that took the event
says which (``Handled.carried``).
"""

from __future__ import annotations

from typing import NamedTuple

from gmv.streams.core.codec import TEXT
from gmv.streams.core.journal import Journal
from gmv.streams.core.kinds import Kind
from gmv.streams.core.rows import build
from gmv.streams.state.store import MISSING, UncachedMap

SEEN = "seen"


class SeenRecord(NamedTuple):
    event_id: str
    src: str  # the source message of its first occurrence (a replay of it is not a duplicate)


class SeenKind(Kind["DedupState"]):
    name = SEEN
    keeps_record = False  # the de-duplication map holds all of it: event id -> source
    grouped = True

    def recall(self, rid: str) -> tuple[SeenRecord, None] | None:
        src = self.st.seen.get(rid)
        return None if src is None else (SeenRecord(rid, src), None)

    def decode(self, raw: list) -> SeenRecord:
        return SeenRecord(*raw)

    def apply(self, rec: SeenRecord) -> None:
        self.st.remember(rec.event_id, rec.src)

    def unapply(self, rec: SeenRecord) -> None:
        self.st.forget(rec.event_id, rec.src)

    def apply_wires(self, wires: list[list]) -> None:
        remember = self.st.remember
        for event_id, src in wires:
            remember(event_id, src)

    def cutoff(self) -> int:
        return self.journal.watermark_ms - self.journal.horizons.dedup_ms


class DedupState:
    """The event ids of one partition and the source message each first came in."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.seen: UncachedMap[str] = UncachedMap(journal.store, "d|", TEXT)  # event_id -> src of its first occurrence
        journal.register(self, SeenKind)

    def classify(self, event_id: str, src: str) -> str:
        """'new', 'replay' (same source message seen again: re-derive its rows) or 'duplicate'.
        (Per event: ``UncachedMap.get`` and ``__setitem__`` inlined, the key made once.)"""
        key = self.seen.prefix + event_id.encode("utf-8", "surrogatepass")
        store = self.journal.store
        first = store.raw.get(key, MISSING)
        if first is MISSING:
            first = store._raw(key) if store.unwritten else store.backend_get(key)
        if first is None:
            store.raw[key] = src.encode("utf-8", "surrogatepass")
            return "new"
        return "replay" if first == src.encode("utf-8", "surrogatepass") else "duplicate"

    def journal_seen(self, event_id: str, src: str, t_ms: int) -> None:
        """Journal a new event's de-duplication (for an event no record of its own carries)."""
        self.journal.record(SEEN, build(SeenRecord, (event_id, src)), t_ms)

    def remember(self, event_id: str, src: str) -> None:
        """A journalled record's event (a record of any kind carrying its de-duplication)."""
        if self.seen.get(event_id) is None:
            self.seen[event_id] = src

    def forget(self, event_id: str, src: str) -> None:
        """Drop a de-duplication entry, if it is the one this source made."""
        if self.seen.get(event_id) == src:
            del self.seen[event_id]
