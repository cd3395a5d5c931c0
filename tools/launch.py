"""One way to assemble and run a worker: ``gmv worker``, ``gmv run``, ``gmv demo`` and the bench all use it.

``Launch`` does, in order: load the alert rules (a bad file stops everything before it starts);
``open`` Kafka and ClickHouse (the embedded pair, or servers) and resolve the settings once (the
web token, the partition count of topics a producer created first), frozen from then on; ``start``
the worker with its alert evaluator and wait until it owns its partitions; ``stop`` it; ``close``
what ``open`` started. As an async context manager it does all of that around its body.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from gmv.alerts.evaluator import AlertEvaluator
from gmv.alerts.rules import AlertConfig, load_config
from gmv.alerts.service import attach_alerts
from gmv.schemas.errors import RunFailed
from gmv.sinks.markov import backfill
from gmv.streams.settings import Settings
from gmv.streams.worker import GmvWorker
from gmv.tools.runtime import ClickHouseBusy, Runtime


@dataclass(frozen=True)
class LaunchOptions:
    web_port: int = 0  # 0: no web server
    attribute_at_end: bool = False  # `gmv run`: a replay attributes at the end of its input
    pipeline_rules: bool = True  # the wall-clock alert rules (a replay judges business rules only)
    clickhouse_wait_s: float = 15.0  # how long to wait for a `gmv sql` holding the embedded engine
    may_share_clickhouse: bool = False  # sink_mode=topic: another worker may own the embedded engine


def alert_rules(settings: Settings) -> AlertConfig | None:
    """The alert rules in force (None without alerts); a bad rules file raises here, so a command calls this
    before it checks ports or opens anything and the user sees the file's error, not a side effect."""
    return load_config(settings.alert_rules) if settings.alerts else None


class Launch:
    def __init__(self, settings: Settings, options: LaunchOptions = LaunchOptions(),
                 wrap_client: Callable[[Any], Any] | None = None) -> None:
        self.options = options
        self.rules = alert_rules(settings)
        self.runtime = Runtime(settings, wrap_client)
        self.settings = self.runtime.settings
        self.bootstrap = ""
        self.owns_clickhouse = True
        self.worker: GmvWorker | None = None
        self.evaluator: AlertEvaluator | None = None
        self.task: asyncio.Task | None = None

    def open(self) -> Settings:
        """Reach (or start) ClickHouse and Kafka; returns the resolved settings, final from here on."""
        o = self.options
        try:
            self.runtime.open_clickhouse(wait_s=o.clickhouse_wait_s)
        except ClickHouseBusy:
            if not o.may_share_clickhouse:
                raise
            self.owns_clickhouse = False  # another worker owns the embedded engine and writes our rows
        if self.owns_clickhouse:  # an install from before the markov model: its history, once
            backfill(self.runtime.client, self.settings.clickhouse_database,
                     lambda line: print(f"gmv: {line}", file=sys.stderr, flush=True))
        self.bootstrap = self.runtime.open_kafka()
        self.settings = self.runtime.settings
        return self.settings

    async def start(self, ready_within_s: float | None = 120.0) -> GmvWorker:
        """The worker (and its alert evaluator), started, and owning its partitions unless
        ``ready_within_s`` is None (a worker in a group may have none to own yet)."""
        owns = self.owns_clickhouse
        runtime = self.runtime
        worker = GmvWorker(self.settings, self.bootstrap, runtime.sink() if owns else None,
                           runtime.readers() if owns else None, web_port=self.options.web_port,
                           attribute_at_end=self.options.attribute_at_end)
        self.worker = worker
        if self.rules is not None and owns:
            self.evaluator = attach_alerts(worker, self.rules, self.options.pipeline_rules)
        if self.options.web_port:
            runtime.advertise(self.options.web_port)
        self.task = await worker.start()
        if ready_within_s is not None:
            await wait_ready(worker, self.task, ready_within_s)
        return worker

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.abort()  # whatever is still in flight is not waited for (uncommitted: nothing lost)
            await self.worker.stop()
        if self.evaluator is not None:
            await self.evaluator.close()

    def close(self) -> None:
        self.runtime.close()

    async def __aenter__(self) -> Launch:
        try:
            self.open()
            await self.start()
        except BaseException:
            await self.stop()
            self.close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.stop()
        finally:
            self.close()


async def wait_ready(worker: GmvWorker, task: asyncio.Task, timeout_s: float = 120.0) -> None:
    """Until the worker owns its partitions and has recovered their state."""
    deadline = time.monotonic() + timeout_s
    while not worker.ready.is_set():
        if task.done() or worker.crashed:
            raise RunFailed(f"the worker stopped while starting: {worker.crash_reason()}")
        if time.monotonic() > deadline:
            raise RunFailed(f"the worker was not assigned its partitions within {timeout_s:.0f}s; "
                               "is another worker of the same app id running against this broker?")
        await asyncio.sleep(0.05)


def tune_gc() -> None:
    """For a process that runs the worker: the stream state is millions of long-lived, acyclic
    objects, and the default collector thresholds rescan them every few thousand allocations
    (a large share of the hot loop's time: docs/performance.md). Collect rarely; objects from
    start-up (modules, faust) are frozen out of every scan."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
