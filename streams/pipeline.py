"""The batch processor: decoded messages + partition state -> rows, dead letters, journal writes.

No faust and no I/O here: the agent (``streams.agents``) feeds it each
``take_events`` batch and writes what it returns. Processing is deterministic
given the same input and whatever state it finds: a replayed message gives the
same rows (it is recognised by its ``src``), so a crash between the state write,
the ClickHouse write and the offset commit never changes a total.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.events import AnyEvent
from sinks.schema import DEAD_LETTERS, EVENTS, INGEST_LOG
from streams.ingest import Accepted, DeadLetter, MessageDecoder, SourceMessage
from streams.settings import Settings
from streams.state import PartitionState, to_ms

OUTCOMES = ("accepted", "duplicate", "dead_letter")


@dataclass
class IngestCounters:
    """received = accepted + duplicates + dead-lettered, per topic."""

    by_topic: Counter = field(default_factory=Counter)  # (topic, outcome) -> n

    def add(self, topic: str, outcome: str, n: int = 1) -> None:
        self.by_topic[(topic, outcome)] += n

    def total(self, outcome: str | None = None) -> int:
        return sum(n for (_, o), n in self.by_topic.items() if outcome is None or o == outcome)

    def summary(self) -> dict[str, int]:
        return {
            "received": self.total(),
            "accepted": self.total("accepted"),
            "duplicates": self.total("duplicate"),
            "dead_lettered": self.total("dead_letter"),
        }

    def per_topic(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (topic, outcome), n in sorted(self.by_topic.items()):
            out.setdefault(topic, {o: 0 for o in OUTCOMES})[outcome] += n
        return out


@dataclass
class BatchResult:
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {t.name: [] for t in (EVENTS, INGEST_LOG, DEAD_LETTERS)})
    dead_letters: list[DeadLetter] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)  # first-seen or replayed valid events, for attribution
    journal_puts: list[tuple[str, bytes]] = field(default_factory=list)
    journal_dels: list[str] = field(default_factory=list)
    counters: IngestCounters = field(default_factory=IngestCounters)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


class BatchProcessor:
    """Validates, de-duplicates and turns a batch into rows. Owns the partition states."""

    def __init__(self, settings: Settings, extra_topics: dict[str, str | None] | None = None) -> None:
        topics: dict[str, str | None] = dict(settings.source_topics)
        topics.update(extra_topics or {})
        self.decoder = MessageDecoder(
            {t: et for t, et in topics.items() if et}, settings.max_message_bytes,
            settings.max_batch_events, int(settings.max_future_skew.total_seconds() * 1000),
        )
        self.dedup_horizon_ms = int(settings.dedup_horizon.total_seconds() * 1000)
        self.partitions: dict[int, PartitionState] = {}

    def partition_state(self, partition: int) -> PartitionState:
        ps = self.partitions.get(partition)
        if ps is None:
            ps = self.partitions[partition] = PartitionState(partition, self.dedup_horizon_ms)
        return ps

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)

    def process(self, messages: list[SourceMessage], now: datetime | None = None) -> BatchResult:
        now = now or datetime.now(UTC)
        out = BatchResult()
        ev_rows, log_rows = out.rows[EVENTS.name], out.rows[INGEST_LOG.name]
        touched: set[int] = set()
        for msg in messages:
            key = (msg.topic, msg.partition)
            out.next_offsets[key] = max(out.next_offsets.get(key, 0), msg.offset + 1)
            for item in self.decoder.decode(msg, now):
                if isinstance(item, DeadLetter):
                    self._dead_letter(out, item, now)
                    continue
                event = item.event
                ps = self.partition_state(msg.partition)
                touched.add(msg.partition)
                t_ms = to_ms(event.event_time)
                verdict = ps.classify(event.event_id, item.src, t_ms)
                outcome = "duplicate" if verdict == "duplicate" else "accepted"
                out.counters.add(msg.topic, outcome)
                log_rows.append(_log_row(item.src, msg, item.index, event.event_id, event.event_type, outcome, "", now))
                if outcome == "accepted":
                    ps.advance(t_ms)
                    ev_rows.append(_event_row(event, item, now))
                    out.accepted.append(item)
        for p in touched:
            puts, dels = self.partitions[p].commit_batch()
            out.journal_puts.extend(puts)
            out.journal_dels.extend(dels)
        return out

    def _dead_letter(self, out: BatchResult, dl: DeadLetter, now: datetime) -> None:
        msg = dl.msg
        out.counters.add(msg.topic, "dead_letter")
        out.dead_letters.append(dl)
        out.rows[INGEST_LOG.name].append(
            _log_row(dl.src, msg, dl.index, dl.event_id, dl.event_type, "dead_letter", dl.reason_code, now))
        out.rows[DEAD_LETTERS.name].append(dead_letter_row(dl, now))


def _log_row(src: str, msg: SourceMessage, index: int, event_id: str, event_type: str,
             outcome: str, reason_code: str, now: datetime) -> tuple:
    return (src, msg.topic, msg.partition, msg.offset, index, event_id, event_type, outcome, reason_code, now)


def dead_letter_row(dl: DeadLetter, now: datetime) -> tuple:
    msg = dl.msg
    return (dl.src, msg.topic, msg.partition, msg.offset, dl.index, dl.event_id, dl.event_type,
            dl.reason_code, dl.reason, dl.raw, now)


def _event_row(event: AnyEvent, item: Accepted, now: datetime) -> tuple[Any, ...]:
    msg = item.msg
    return (event.event_id, event.event_type, event.event_time, getattr(event, "user_id", None) or "",
            event.partition_key, item.src, msg.topic, msg.partition, msg.offset,
            event.model_dump_json(), now)
