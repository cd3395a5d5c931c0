"""What the worker has done so far: counters, batches, and where its time went."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from gmv.streams.core.decode import SourceMessage
from gmv.streams.core.processor import BatchResult, IngestCounters

READS_KEPT_S = 120.0  # how far back ``WorkerStats.reads`` reaches

PHASES = ("process", "process_cpu", "journal", "store_wait", "sink", "rollups", "commit")


@dataclass
class WorkerStats:
    counters: IngestCounters = field(default_factory=IngestCounters)  # of stored batches only
    batches: int = 0
    seen_msgs: dict[tuple[str, int], int] = field(default_factory=dict)  # stored messages per (topic, partition)
    first_batch_at: float | None = None  # monotonic time the first messages arrived
    last_batch_at: float = 0.0  # wall-clock time the last batch was stored
    started_at: float = field(default_factory=time.monotonic)
    seconds_in: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    # (monotonic time, oldest Kafka timestamp of that fetch) of the last READS_KEPT_S: how far behind
    # the worker reads, for any reader (``WorkerStatus.oldest_read_since``), never taken away by one.
    reads: deque[tuple[float, int]] = field(default_factory=deque)
    started_wall: float = field(default_factory=time.time)
    # Metrics hooks (``gmv.streams.metrics``): each timed phase's duration, each batch's size.
    phase_observers: dict[str, Callable[[float], None]] = field(default_factory=dict)
    size_observer: Callable[[float], None] | None = None

    @contextmanager
    def timing(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - t0
            self.seconds_in[phase] += took
            if (observe := self.phase_observers.get(phase)) is not None:
                observe(took)

    def arrived(self, msgs: list[SourceMessage]) -> None:
        if msgs and self.first_batch_at is None:
            self.first_batch_at = time.monotonic()
        if msgs and self.size_observer is not None:
            self.size_observer(len(msgs))

    def read(self, oldest_timestamp_ms: int) -> None:
        """A fetch held data as old as this (Kafka time): how far behind the worker reads."""
        if oldest_timestamp_ms <= 0:
            return
        now = time.monotonic()
        self.reads.append((now, oldest_timestamp_ms))
        while self.reads and self.reads[0][0] < now - READS_KEPT_S:
            self.reads.popleft()

    def stored(self, result: BatchResult, msgs: list[SourceMessage]) -> None:
        """A batch is in the sink and its offsets committed: it counts."""
        for m in msgs:
            k = (m.topic, m.partition)
            self.seen_msgs[k] = self.seen_msgs.get(k, 0) + 1
        self.counters.by_topic.update(result.counters.by_topic)
        self.batches += 1
        self.last_batch_at = time.time()
