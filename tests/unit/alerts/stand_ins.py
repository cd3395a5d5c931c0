"""A worker as the alert evaluator sees it: a status source returning real ``WorkerStatus``
snapshots, which a test moves on (watermarks, counters, reads) between evaluations."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from typing import Any

from gmv.streams.status import WorkerStatus


class Worker:
    def __init__(self, rolled_up_to_ms: int = 0, scored_up_to_ms: int = 0, earliest_minute: datetime | None = None,
                 **fields: Any) -> None:
        now = time.time()
        self.current = WorkerStatus(
            taken_at=now, worker_id="w1", source_topics=("orders",), counters={}, batches=0, seconds_in={}, lag=0,
            lag_per_partition={}, partitions=(0,), next_offsets={}, uncommitted=0, pending_orders=0,
            held_refunds=0, rolled_up_to_ms=rolled_up_to_ms, scored_up_to_ms=scored_up_to_ms, refresh_pending=False,
            earliest_minute=earliest_minute, reads=(), last_stored_at=0.0, started_at=now, uptime_s=0.0,
            rows_written=0, rows_by_table={}, write_failures=0, sink_failing_s=None, rows_writer=None)
        self.move(**fields)

    def move(self, **fields: Any) -> None:
        """The worker went on: later snapshots have these fields."""
        self.current = dataclasses.replace(self.current, **fields)

    def status(self) -> WorkerStatus:
        return self.current
