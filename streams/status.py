"""A worker's status at one instant: what its readers see (the web views, the metrics, the alert
evaluator, the commands' progress lines), as a frozen snapshot they cannot change.

Readers get a function returning a ``WorkerStatus`` (``GmvWorker.status``), never the worker: they
do not reach into its parts, and nothing they do changes what another reader sees (the oldest data
read, which the consumer-lag rule needs, is a list of recent reads, not a value taken away).
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from gmv.streams.core.processor import OUTCOMES


@dataclass(frozen=True)
class WorkerStatus:
    """Everything readers ask of a worker, copied when it was taken."""

    taken_at: float  # time.time()
    worker_id: str  # GMV_WORKER_INSTANCE_ID
    source_topics: tuple[str, ...]
    counters: Mapping[tuple[str, str], int]  # (topic, outcome) -> events, of stored batches
    batches: int
    seconds_in: Mapping[str, float]
    lag: int  # messages on the owned partitions not yet stored; -1 unknown
    lag_per_partition: Mapping[tuple[str, int], int]
    partitions: tuple[int, ...]
    next_offsets: Mapping[tuple[str, int], int]
    uncommitted: int  # processed messages whose offsets are not committed
    pending_orders: int
    held_refunds: int
    # Event time (epoch ms) up to which every order is attributed, stored and in the minute rollups
    # (0: none yet); the same for the slow refresh (trust scores, hour/day levels).
    rolled_up_to_ms: int
    scored_up_to_ms: int
    refresh_pending: bool  # stored rows whose rollups (or markov credits, levels, scores) are not refreshed yet
    earliest_minute: datetime | None  # of any row this process stored
    reads: tuple[tuple[float, int], ...]  # (monotonic time, oldest Kafka timestamp of that fetch), last 120 s
    last_stored_at: float  # time.time() of the last stored batch (0: none)
    started_at: float  # time.time() the worker started
    uptime_s: float
    rows_written: int
    rows_by_table: Mapping[str, int]
    write_failures: int
    sink_failing_s: float | None  # how long ClickHouse writes have been failing (None: they succeed)
    rows_writer: Mapping[str, Any] | None
    # The state stores (``gmv.streams.recovery.state_report``): keys per domain, bytes in memory and on
    # disk, the hot cache's hit ratio, and what the last restore read.
    state: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # add-ons' sections (the alert evaluator's)

    def summary(self) -> dict[str, int]:
        """received = accepted + duplicates + dead-lettered (+ rekeyed forwards, apart)."""
        def total(outcome: str | None) -> int:
            return sum(n for (_, o), n in self.counters.items() if (o in OUTCOMES if outcome is None else o == outcome))

        return {"received": total(None), "accepted": total("accepted"), "duplicates": total("duplicate"),
                "dead_lettered": total("dead_letter"), "rekeyed": total("rekeyed")}

    def per_topic(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (topic, outcome), n in sorted(self.counters.items()):
            if outcome in OUTCOMES:
                out.setdefault(topic, dict.fromkeys(OUTCOMES, 0))[outcome] += n
        return out

    def oldest_read_since(self, since_monotonic: float) -> int:
        """The oldest Kafka timestamp read after that moment (0: nothing read since)."""
        return min((ts for at, ts in self.reads if at > since_monotonic and ts > 0), default=0)

    def stored_age_s(self) -> float | None:
        return None if not self.last_stored_at else self.taken_at - self.last_stored_at

    def as_json(self) -> dict[str, Any]:
        """``/gmv/stats/``: counters and progress (no GMV figures: it needs no token)."""
        return {
            "counters": self.summary(), "per_topic": self.per_topic(), "batches": self.batches,
            "seconds_in": {k: round(v, 3) for k, v in self.seconds_in.items()}, "rows_written": self.rows_written,
            "rows_writer": self.rows_writer, "uptime_s": round(self.uptime_s, 1), "lag": self.lag,
            "pending_orders": self.pending_orders, "held_refunds": self.held_refunds,
            "sink_failing_s": self.sink_failing_s, "write_failures": self.write_failures, "partitions": list(self.partitions),
            "next_offsets": {f"{t}:{p}": o for (t, p), o in sorted(self.next_offsets.items())},
            "uncommitted": self.uncommitted, "rolled_up_to_ms": self.rolled_up_to_ms,
            "scored_up_to_ms": self.scored_up_to_ms, "refresh_pending": self.refresh_pending, "state": dict(self.state),
            **self.extra,
        }


StatusSource = Callable[[], WorkerStatus]
T = TypeVar("T")


def copied(read: Callable[[], T]) -> T:
    """``read()``, a dict view made a list, retried while the event loop changes the map under a reader
    on another thread (the metrics endpoint's): "changed size during iteration"."""
    for attempt in range(10):
        try:
            value = read()
            return list(value) if isinstance(value, KeysView | ValuesView | ItemsView) else value  # type: ignore[return-value]
        except RuntimeError:
            if attempt == 9:
                raise
    raise AssertionError("unreachable")
