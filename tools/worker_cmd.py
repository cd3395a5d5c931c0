"""``gmv worker``: the long-running worker, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

from gmv.streams.settings import Settings
from gmv.tools.embedded import require_free_port
from gmv.tools.launch import Launch, LaunchOptions, alert_rules
from gmv.tools.runtime import dashboard_link
from gmv.tools.signals import StopSignals


def _say(line: str) -> None:
    print(f"gmv worker: {line}", file=sys.stderr, flush=True)


async def run_worker(settings: Settings, wrap_client: Callable[[Any], Any] | None = None) -> int:
    alert_rules(settings)  # a bad rules file is the first thing said
    port = settings.web_port or 6066
    require_free_port(settings.web_host, port, settings.source("web_port"))  # before anything starts
    if settings.metrics_port:
        require_free_port(settings.web_host, settings.metrics_port, settings.source("metrics_port"))
    topic_mode = settings.sink_mode == "topic"
    launch = Launch(settings, LaunchOptions(web_port=port, clickhouse_wait_s=1.0 if topic_mode else 15.0,
                                            may_share_clickhouse=topic_mode), wrap_client)
    try:
        s = launch.open()
        if topic_mode:
            role = "writes ClickHouse for every worker" if launch.owns_clickhouse else "hands its rows to the writer"
            _say(f"sink_mode=topic; this worker {role} (topic {s.rows_topic})")

        def left() -> str:
            if launch.runtime.kafka is not None:
                launch.runtime.kafka.stop(wait=6.0)  # bounded: SIGINT, 6 s, then SIGKILL
            waiting = launch.worker.status(extra=False).uncommitted if launch.worker is not None else 0
            return f"{waiting:,} messages are not committed and will be re-processed at the next start"

        signals = StopSignals("worker", left).install()
        _say(f"consuming {', '.join(s.source_topics)} from {launch.bootstrap}; dashboard on {dashboard_link(s, port)} ; "
             "Ctrl-C stops")
        if s.metrics_port:
            _say(f"Prometheus metrics on http://{s.web_host}:{s.metrics_port}/metrics")
        worker = await launch.start(ready_within_s=None)
        task = launch.task
        assert task is not None
        while not signals.requested.is_set() and not task.done() and not worker.crashed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signals.requested.wait(), 1.0)
        if worker.crashed:
            await worker.stop()
            print(f"gmv worker: stopped after an error: {worker.crash_reason()}", file=sys.stderr)
            return 1
        signals.arm_watchdog(s.stop_timeout_s + 15)
        if launch.evaluator is not None:
            await launch.evaluator.stopping()
        line = await worker.shutdown(drain=False, timeout_s=s.stop_timeout_s)
        signals.disarm()
        _say(f"{signals.signal_name or 'stop'}: {line}")
        return 0
    finally:
        await launch.stop()
        launch.close()
