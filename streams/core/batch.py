"""What one call of the batch processor produces (``BatchResult``), what its handlers share while
producing it (``BatchContext``) and what a handler says of the event it took (``Handled``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from gmv.schemas.times import from_ms
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import DeadLetter
from gmv.streams.core.routing import Rekeyed
from gmv.streams.core.rows import ROW_TYPES, CreditRow, DeadLetterRow, EventRow, IngestLogRow
from gmv.streams.state.store import Staged

OUTCOMES = ("accepted", "duplicate", "dead_letter")


@dataclass
class IngestCounters:
    """received = accepted + duplicates + dead-lettered, per topic."""

    by_topic: Counter = field(default_factory=Counter)  # (topic, outcome) -> n

    def add(self, topic: str, outcome: str, n: int = 1) -> None:
        self.by_topic[(topic, outcome)] += n

    def total(self, outcome: str | None = None) -> int:
        return sum(n for (_, o), n in self.by_topic.items() if (o in OUTCOMES if outcome is None else o == outcome))

    def summary(self) -> dict[str, int]:
        return {
            "received": self.total(),
            "accepted": self.total("accepted"),
            "duplicates": self.total("duplicate"),
            "dead_lettered": self.total("dead_letter"),
            "rekeyed": self.total("rekeyed"),
        }

    def per_topic(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (topic, outcome), n in sorted(self.by_topic.items()):
            if outcome in OUTCOMES:
                out.setdefault(topic, {o: 0 for o in OUTCOMES})[outcome] += n
        return out


@dataclass
class BatchResult:
    """Everything one batch (or one attribution pass) produced, for the worker to write."""

    rows: dict[str, list[tuple]] = field(default_factory=lambda: {t.TABLE: [] for t in ROW_TYPES})
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rekeyed: list[Rekeyed] = field(default_factory=list)
    journal_puts: list[tuple[str, bytes | None]] = field(default_factory=list)  # changelog records (None: tombstone)
    staged: list[Staged] = field(default_factory=list)  # store writes, made once the broker has the records
    counters: IngestCounters = field(default_factory=IngestCounters)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    touched_partitions: set[int] = field(default_factory=set)
    # Event time (epoch ms) up to which every order seen is attributed once this batch is stored
    # (``BatchProcessor.attribution_watermark_ms``); 0 = none yet.
    watermark_ms: int = 0

    def merge(self, other: BatchResult) -> None:
        for name, rows in other.rows.items():
            self.rows[name].extend(rows)
        self.dead_letters.extend(other.dead_letters)
        self.rekeyed.extend(other.rekeyed)
        self.journal_puts.extend(other.journal_puts)
        self.staged.extend(other.staged)
        self.counters.by_topic.update(other.counters.by_topic)
        for k, v in other.next_offsets.items():
            self.next_offsets[k] = max(self.next_offsets.get(k, 0), v)
        self.touched_partitions |= other.touched_partitions
        self.watermark_ms = max(self.watermark_ms, other.watermark_ms)

    @property
    def credit_rows(self) -> list[CreditRow]:
        return self.rows[CreditRow.TABLE]  # type: ignore[return-value]

    @property
    def event_rows(self) -> list[EventRow]:
        return self.rows[EventRow.TABLE]  # type: ignore[return-value]

    def has_output(self) -> bool:
        return bool(self.touched_partitions or self.journal_puts or self.staged or self.dead_letters)


class Handled(NamedTuple):
    """What a handler says of an accepted event it took into its partition's state."""

    carried: bool  # a record of the event's own (touch, order, refund, ...) journals its de-duplication
    rejection: DeadLetter | None = None  # it broke an order-level rule: dead-lettered, not accepted
    engaged: bool = False  # a view watched engaged_ms or more, or a live enter (events.engaged; the funnel's)


CARRIED = Handled(True)
NOT_CARRIED = Handled(False)
ENGAGED_CARRIED = Handled(True, None, True)
ENGAGED_NOT_CARRIED = Handled(False, None, True)


@dataclass(slots=True)
class BatchContext:
    """What the handlers of one call (a batch, an attribution pass, a load) share: its output, its
    processing time and the settings."""

    config: PipelineConfig
    out: BatchResult
    now_ms: int
    now_s: float  # ``now_ms`` as a row time
    # Conversations that got a message since their turns were last derived: (partition, id).
    changed_conversations: set[tuple[int, str]]

    def dead_letter(self, dl: DeadLetter, count: bool = True) -> None:
        """A dead letter, its ingest_log row and its dead_letters row (``count``: in the counters)."""
        msg = dl.msg
        out = self.out
        if count:
            out.counters.add(msg.topic, "dead_letter")
        out.dead_letters.append(dl)
        out.rows[IngestLogRow.TABLE].append(IngestLogRow(
            src=dl.src, source_topic=msg.topic, source_partition=msg.partition, source_offset=msg.offset,
            element_index=dl.index, event_id=dl.event_id, event_type=dl.event_type, outcome="dead_letter",
            reason_code=dl.reason_code, logged_at=self.now_s))
        out.rows[DeadLetterRow.TABLE].append(dead_letter_row(dl, self.now_s))


def dead_letter_row(dl: DeadLetter, now_s: float) -> DeadLetterRow:
    msg = dl.msg
    return DeadLetterRow(src=dl.src, source_topic=msg.topic, source_partition=msg.partition, source_offset=msg.offset,
                         element_index=dl.index, event_id=dl.event_id, event_type=dl.event_type,
                         reason_code=dl.reason_code, reason=dl.reason, raw=dl.raw, received_at=_datetime(now_s))


def _datetime(row_s: float) -> datetime:
    return from_ms(round(row_s * 1000))
