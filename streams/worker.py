"""The worker: a faust app hosting the ingest loop and the web views, over parts that each do one job.

- ``IngestLoop`` (``loop.py``): the aiokafka consumer, read progress, offsets;
- ``BatchProcessor`` (``core/processor.py``): validation, dedup, attribution — pure;
- ``Outbox`` and ``StorePipeline`` (``store.py``): journal and dead letters, then rows, then offsets;
- ``RollupScheduler`` (``rollup_scheduler.py``): minute rollups, then journal marks;
- ``WorkerStats`` (``stats.py``): counters and where the time went;
- ``WorkerMetrics`` (``metrics.py``): the same, for Prometheus (``GMV_METRICS_PORT``);
- the sink (``gmv.sinks``): ClickHouse directly, or the rows topic (``sink_mode=topic``).

faust hosts the lifecycle and the web views only: its own Kafka consumer and
producer are not started (``_HostOnly``), so it joins no consumer group and holds
no connection of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.app.base import BootStrategy

from gmv.sinks.base import BatchingSink
from gmv.sinks.clickhouse import ClickHouseSink
from gmv.sinks.exceptions import SinkStopped
from gmv.sinks.topic import RowsWriter, TopicSink
from gmv.streams.core.processor import BatchProcessor, IngestCounters
from gmv.streams.kafka_compat import install_aiokafka_tuning
from gmv.streams.loop import IngestLoop
from gmv.streams.metrics import WorkerMetrics
from gmv.streams.rollup_scheduler import RollupScheduler
from gmv.streams.settings import Settings
from gmv.streams.stats import WorkerStats
from gmv.streams.store import Outbox, StorePipeline

log = logging.getLogger(__name__)


class _HostOnly(BootStrategy):
    """faust without its Kafka consumer, producer, conductor and tables: web views and tasks."""

    enable_kafka = False


class _HostWorker(faust.Worker):
    """faust's worker without its signal handlers: the command running the worker owns SIGINT and
    SIGTERM (``gmv.tools.signals``), since how to stop depends on what ClickHouse is doing."""

    def install_signal_handlers(self) -> None:
        return None


class GmvWorker:
    """One worker process: the parts above, wired together, and what the tools ask of them."""

    def __init__(self, settings: Settings, bootstrap: str, sink: ClickHouseSink | None,
                 sql_runner: Callable[..., bytes] | None = None, web_port: int = 0,
                 attribute_at_end: bool = False) -> None:
        """``sink`` is this process's ClickHouse (None if another process owns it). In
        ``sink_mode=topic`` rows go through the rows topic, and a process with a sink also
        runs the one ``RowsWriter``."""
        install_aiokafka_tuning()  # idle consumers stop spinning; lz4 at its fast level
        self.settings = settings
        self.bootstrap = bootstrap
        self.sql_runner = sql_runner
        self.stats = WorkerStats()
        self.processor = BatchProcessor(settings.pipeline_config())
        self.outbox = Outbox(settings, bootstrap)
        self.rows_writer: RowsWriter | None = None
        if settings.sink_mode == "topic":
            self.sink: BatchingSink = TopicSink(lambda: self.outbox.producer, settings.rows_topic)
            if sink is not None:
                self.rows_writer = RowsWriter(bootstrap, settings.rows_topic, f"{settings.app_id}-rows-writer",
                                              sink, settings.session_timeout_s)
        elif sink is None:
            raise ValueError("sink_mode=direct needs ClickHouse in this process; use sink_mode=topic")
        else:
            self.sink = sink
        self.own_sink = sink  # the ClickHouse this process writes (direct, or as the rows writer)
        self.scheduler = RollupScheduler(self.sink, self.outbox, self.processor, self.stats,
                                         settings.rollup_interval_s)
        self.store = StorePipeline(self.sink, self.stats, self._commit, self.scheduler.stored)
        self.loop = IngestLoop(settings, bootstrap, self.processor, self.outbox, self.store, self.scheduler,
                               self.stats, attribute_at_end)
        self._crash: BaseException | None = None
        self._abandoned = False
        self.reporters: dict[str, Callable[[], Any]] = {}  # extra sections of ``stats_snapshot`` (add-ons)
        self.metrics = WorkerMetrics()
        self.metrics.watch(self)
        self.stats.phase_observers.update({"process": self.metrics.batch_seconds.observe,
                                           "sink": self.metrics.flush_seconds.observe})
        self.stats.size_observer = self.metrics.batch_messages.observe
        self.web_port = web_port
        self.app = self._host(web_port)

    async def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        await self.loop.commit(offsets)

    def _host(self, web_port: int) -> faust.App:
        s = self.settings
        faust_dir = s.data_path / "faust"
        faust_dir.mkdir(parents=True, exist_ok=True)
        app = faust.App(
            f"{s.app_id}-host", broker=f"kafka://{self.bootstrap.replace(',', ';kafka://')}", store="memory://",
            # faust makes <datadir>/v1/tables even for the memory store; keep it out of the cwd.
            datadir=str(faust_dir), web_enabled=web_port > 0, web_bind=s.web_host, web_port=web_port or 6066,
            web_host=s.web_host,
        )
        app.BootStrategy = _HostOnly
        app.boot_strategy = _HostOnly(app)
        app.task(self._run_loop)
        if self.rows_writer is not None:
            app.task(self._run_rows_writer)
        if web_port > 0:
            from gmv.streams.web import register_views

            register_views(app, self)
        return app

    async def _run_loop(self) -> None:
        async def ingest() -> None:
            try:
                await self.loop.start()
                await self.loop.run(lambda: self.app.should_stop)
            finally:
                await self.loop.close()

        await self._guarded("the ingest loop", ingest())

    async def _run_rows_writer(self) -> None:
        assert self.rows_writer is not None
        await self._guarded("the rows writer", self.rows_writer.run(lambda: self.app.should_stop))

    async def _guarded(self, what: str, job: Awaitable[None]) -> None:
        """Run one of the worker's tasks. Input never raises (it is validated and dead-lettered):
        an error is infrastructure (ClickHouse gone past the retry budget, the broker gone) or a
        bug, so the worker stops; offsets stay uncommitted and a restart re-processes the batch,
        idempotently. ``SinkStopped`` is a stop that was asked for (``abort``)."""
        try:
            await job
        except asyncio.CancelledError:
            raise
        except SinkStopped:
            self._abandoned = True  # told to stop mid-write: nothing after it was committed
        except Exception as e:
            self._crash = e
            log.exception("%s failed; stopping the worker (offsets stay uncommitted)", what)
            await self.app.crash(e)

    def host_task(self, what: str, run: Callable[[Callable[[], bool]], Awaitable[None]]) -> None:
        """Run ``run(should_stop)`` alongside the loop (call before ``start``). Unlike the loop, its
        failure is logged and the worker goes on: an add-on (the alert evaluator) never stops ingest."""
        async def hosted() -> None:
            try:
                await run(lambda: self.app.should_stop)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; the worker goes on without it", what)

        self.app.task(hosted)

    # -- what the tools ask -------------------------------------------------------------------
    @property
    def ready(self) -> asyncio.Event:
        return self.loop.ready

    @property
    def crashed(self) -> bool:
        return self._crash is not None

    def crash_reason(self) -> str:
        return f"{type(self._crash).__name__}: {self._crash}" if self._crash else "stopped"

    async def drain(self, final: bool = True) -> None:
        """End of input: attribute everything pending (``final``), store, commit, and bring every
        rollup and score up to date."""
        await self.loop.drain(final)

    def sink_failing_for(self) -> float | None:
        """Seconds ClickHouse writes have been failing (None while they succeed)."""
        since = (self.own_sink or self.sink).failing_since  # a TopicSink alone never fails this way
        return None if since is None else time.monotonic() - since

    async def shutdown(self, drain: bool, timeout_s: float) -> str:
        """Stop within ``timeout_s`` whatever ClickHouse does: store and commit what is in hand
        (attribute everything pending too, with ``drain``) unless ClickHouse writes are failing
        or the time runs out; then abandon the write in flight. Nothing unstored is committed:
        the next start re-processes it. Returns one line saying what is left."""
        failing = self.sink_failing_for()
        if failing is None:
            try:
                await asyncio.wait_for(self.drain(final=drain), timeout_s)
            except TimeoutError:
                failing = self.sink_failing_for()
            except SinkStopped:
                pass
        self.abort()
        await self.stop()
        if failing is None and not self._abandoned:
            return "stopped; everything consumed is stored and committed"
        reason = f"ClickHouse writes failing for {failing:.0f}s" if failing is not None else \
            f"ClickHouse did not finish within {timeout_s:.0f}s"
        return (f"stopped without storing what was in flight ({reason}): {self.loop.uncommitted():,} messages "
                "are not committed, so the next start re-processes them from the last commit (nothing is lost)")

    def abort(self) -> None:
        """Stop at once: abandon ClickHouse retries and the write in flight."""
        for sink in {self.sink, self.own_sink} - {None}:
            sink.abort()
        self.store.abandon()

    async def end_offsets(self, topic: str) -> dict[tuple[str, int], int]:
        return await self.loop.end_offsets(topic)

    async def unconsumed(self, topics: list[str]) -> int:
        return await self.loop.unconsumed(topics)

    def lag(self) -> int:
        return self.loop.lag()

    @property
    def counters(self) -> IngestCounters:
        return self.stats.counters

    def stats_snapshot(self) -> dict[str, Any]:
        orders, refunds = self.processor.pending()
        st = self.stats
        return {
            "counters": st.counters.summary(),
            "per_topic": st.counters.per_topic(),
            "batches": st.batches,
            "seconds_in": {k: round(v, 3) for k, v in st.seconds_in.items()},
            "rows_written": self.sink.rows_written,
            "rows_writer": None if self.rows_writer is None else {
                "active": self.rows_writer.active, "rows_written": self.rows_writer.rows_written,
                "next_offset": self.rows_writer.next_offset},
            "uptime_s": round(time.monotonic() - st.started_at, 1),
            "lag": self.lag(),
            "pending_orders": orders,
            "held_refunds": refunds,
            "sink_failing_s": self.sink_failing_for(),
            "partitions": sorted(self.loop.owned),
            "next_offsets": {f"{t}:{p}": o for (t, p), o in sorted(self.loop.next_offsets.items())},
            **{name: report() for name, report in self.reporters.items()},
        }

    # -- running -------------------------------------------------------------------
    async def start(self) -> asyncio.Task:
        worker = _HostWorker(self.app, loglevel=self.settings.log_level, quiet=True,
                              redirect_stdouts=False, loop=asyncio.get_running_loop(),
                              override_logging=False)
        self._faust_worker = worker
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.web_host, self.settings.metrics_port)
        return asyncio.create_task(worker.start(), name="faust-worker")

    async def stop(self) -> None:
        worker = getattr(self, "_faust_worker", None)
        if worker is not None:
            await worker.stop()
        self.metrics.close()
