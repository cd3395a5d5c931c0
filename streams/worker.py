"""The worker: a thin front over parts that each do one job.

- ``IngestLoop`` (``loop.py``): the aiokafka consumer, read progress, rebalances;
- ``BatchProcessor`` (``core/processor.py``): validation, dedup, attribution — pure;
- ``Checkpoint`` (``checkpoint.py``): the commit order — journal, rows, offsets, rollups, marks —
  over ``Outbox`` (``outbox.py``), the sink (``gmv.sinks``: ClickHouse directly, or the rows topic
  with ``sink_mode=topic``), ``Offsets`` (``offsets.py``) and ``RollupScheduler`` (its decisions);
- ``WorkerStats`` (``stats.py``): counters and where the time went;
- ``Host`` (``host.py``): faust's lifecycle, the web views (``web.py``) and the tasks beside the loop;
- ``WorkerMetrics`` (``metrics.py``): Prometheus.

Readers (web, metrics, the alert evaluator, the commands) get ``status``: a frozen ``WorkerStatus``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gmv.sinks.base import BatchingSink
from gmv.sinks.clickhouse import ClickHouseSink
from gmv.sinks.exceptions import SinkStopped
from gmv.sinks.readonly import Readers
from gmv.sinks.topic import RowsWriter, TopicSink
from gmv.streams.checkpoint import Checkpoint
from gmv.streams.core.processor import BatchProcessor
from gmv.streams.host import Host
from gmv.streams.kafka_compat import install_aiokafka_tuning
from gmv.streams.loop import IngestLoop
from gmv.streams.metrics import WorkerMetrics
from gmv.streams.offsets import Offsets
from gmv.streams.outbox import Outbox
from gmv.streams.recovery import state_report
from gmv.streams.rollup_scheduler import RollupScheduler
from gmv.streams.settings import Settings
from gmv.streams.state.stores import StateStores
from gmv.streams.stats import WorkerStats
from gmv.streams.status import WorkerStatus, copied
from gmv.streams.web import register_views

log = logging.getLogger(__name__)


class GmvWorker:
    """One worker process: the parts above, wired together, and what the tools ask of them."""

    def __init__(self, settings: Settings, bootstrap: str, sink: ClickHouseSink | None,
                 readers: Readers | None = None, web_port: int = 0,
                 attribute_at_end: bool = False) -> None:
        """``sink`` is this process's ClickHouse (None if another process owns it). In
        ``sink_mode=topic`` rows go through the rows topic, and a process with a sink also
        runs the one ``RowsWriter``. ``settings`` are resolved (``gmv.tools.launch``) and frozen."""
        install_aiokafka_tuning()  # idle consumers stop spinning; lz4 at its fast level
        self.settings = settings
        k, ch = settings.kafka, settings.clickhouse
        self.readers = readers
        self.stats = WorkerStats()
        self.processor = BatchProcessor(settings.attribution, StateStores(
            settings.state_path(settings.data_path) / k.topics.changelog, settings.state_cache_mb))
        self.outbox = Outbox(k, bootstrap)
        self.rows_writer: RowsWriter | None = None
        if ch.sink_mode == "topic":
            self.sink: BatchingSink = TopicSink(lambda: self.outbox.producer, k.topics.rows)
            if sink is not None:
                self.rows_writer = RowsWriter(bootstrap, k.topics.rows, f"{k.app_id}-rows-writer", sink,
                                              k.session_timeout_s)
        elif sink is None:
            raise ValueError("sink_mode=direct needs ClickHouse in this process; use sink_mode=topic")
        else:
            self.sink = sink
        self.own_sink = sink  # the ClickHouse this process writes (direct, or as the rows writer)
        self.offsets = Offsets()
        self.scheduler = RollupScheduler(ch.rollup_interval_s)
        self.checkpoint = Checkpoint(self.outbox, self.sink, self.offsets, self.scheduler, self.stats)
        self.loop = IngestLoop(k, bootstrap, self.processor, self.checkpoint, self.offsets, self.scheduler,
                               self.stats, lambda: self.outbox.changelog, attribute_at_end)
        self._crash: BaseException | None = None
        self._abandoned = False
        self.reporters: dict[str, Callable[[], Any]] = {}  # extra sections of ``/gmv/stats/`` (add-ons)
        self.metrics = WorkerMetrics(lambda: self.status(extra=False))
        self.stats.phase_observers.update({"process": self.metrics.batch_seconds.observe,
                                           "sink": self.metrics.flush_seconds.observe})
        self.stats.size_observer = self.metrics.batch_messages.observe
        self.web_port = web_port
        self.host = Host(k.app_id, bootstrap, settings.data_path, settings.web.host, web_port, settings.log_level)
        self.host.task(self._run_loop)
        if self.rows_writer is not None:
            self.host.task(self._run_rows_writer)
        if web_port > 0:
            register_views(self.host.app, settings.web, ch.database, self.status, readers)

    # -- the tasks ---------------------------------------------------------------------------
    async def _run_loop(self) -> None:
        async def ingest() -> None:
            try:
                await self.outbox.start()
                await self.loop.start()
                await self.loop.run(lambda: self.host.should_stop)
            finally:
                await self.loop.close()
                await self.outbox.close()
                self.processor.stores.close_all()

        await self._guarded("the ingest loop", ingest())

    async def _run_rows_writer(self) -> None:
        assert self.rows_writer is not None
        await self._guarded("the rows writer", self.rows_writer.run(lambda: self.host.should_stop))

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
            await self.host.crash(e)

    def host_task(self, what: str, run: Callable[[Callable[[], bool]], Awaitable[None]]) -> None:
        """Run ``run(should_stop)`` alongside the loop (call before ``start``). Unlike the loop, its
        failure is logged and the worker goes on: an add-on (the alert evaluator) never stops ingest."""
        async def hosted() -> None:
            try:
                await run(lambda: self.host.should_stop)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; the worker goes on without it", what)

        self.host.task(hosted)

    # -- what readers see ----------------------------------------------------------------------
    def status(self, extra: bool = True) -> WorkerStatus:
        """A frozen snapshot (safe from the metrics thread too: the maps are copied, retried if the
        event loop changed one meanwhile)."""
        st, s = self.stats, self.settings
        orders, held = copied(self.processor.pending)
        sink = self.own_sink or self.sink
        return WorkerStatus(
            taken_at=time.time(), worker_id=s.worker_instance_id, source_topics=tuple(s.source_topics),
            counters=dict(copied(st.counters.by_topic.items)), batches=st.batches, seconds_in=dict(st.seconds_in),
            lag=copied(self.offsets.lag), lag_per_partition=copied(self.offsets.lag_per_partition),
            partitions=tuple(sorted(self.loop.owned)), next_offsets=dict(copied(self.offsets.stored.items)),
            uncommitted=copied(lambda: self.offsets.uncommitted(self.loop.progress.first_offset)),
            pending_orders=orders, held_refunds=held, rolled_up_to_ms=self.scheduler.rolled_up_to_ms,
            scored_up_to_ms=self.scheduler.scored_up_to_ms, refresh_pending=self.scheduler.pending,
            earliest_minute=self.scheduler.earliest_minute,
            reads=tuple(copied(lambda: list(st.reads))), last_stored_at=st.last_batch_at,
            started_at=st.started_wall, uptime_s=time.monotonic() - st.started_at,
            rows_written=self.sink.rows_written, rows_by_table=dict(copied(self.sink.rows_by_table.items)),
            write_failures=sink.write_failures, sink_failing_s=self.sink_failing_for(),
            rows_writer=None if self.rows_writer is None else {
                "active": self.rows_writer.active, "rows_written": self.rows_writer.rows_written,
                "next_offset": self.rows_writer.next_offset},
            state=copied(lambda: state_report(self.processor, self.loop.recovery.last)),
            extra={name: report() for name, report in self.reporters.items()} if extra else {})

    @property
    def ready(self) -> asyncio.Event:
        return self.loop.ready

    @property
    def crashed(self) -> bool:
        return self._crash is not None

    def crash_reason(self) -> str:
        return f"{type(self._crash).__name__}: {self._crash}" if self._crash else "stopped"

    def sink_failing_for(self) -> float | None:
        """Seconds ClickHouse writes have been failing (None while they succeed)."""
        since = (self.own_sink or self.sink).failing_since  # a TopicSink alone never fails this way
        return None if since is None else time.monotonic() - since

    async def unconsumed(self, topics: list[str]) -> int:
        return await self.loop.unconsumed(topics)

    async def end_offsets(self, topic: str) -> dict[tuple[str, int], int]:
        return await self.loop.end_offsets(topic)

    # -- running -------------------------------------------------------------------------------
    async def start(self) -> asyncio.Task:
        if self.own_sink is not None:  # what a process killed before its refresh left stale, or owed
            self.scheduler.note_stale(await asyncio.to_thread(self.own_sink.stale_funnel_minutes))
            if self.sink is self.own_sink:  # (the rows writer's refreshes are other workers' requests)
                self.scheduler.note_owed(await asyncio.to_thread(self.own_sink.take_up_owed))
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.web_host, self.settings.metrics_port)
        return await self.host.start()

    async def drain(self, final: bool = True) -> None:
        """End of input: attribute everything pending (``final``), store, commit, and bring every
        rollup and score up to date."""
        await self.loop.drain(final)

    async def shutdown(self, drain: bool, timeout_s: float) -> str:
        """Stop within ``timeout_s`` whatever ClickHouse does: store and commit what is in hand
        (attribute everything pending too, with ``drain``) unless ClickHouse writes are failing
        or the time runs out; then abandon the write in flight. Nothing unstored is committed:
        the next start re-processes it. Returns one line saying what is left."""
        failing = self.sink_failing_for()
        timed_out = False
        if failing is None:
            try:
                await asyncio.wait_for(self.drain(final=drain), timeout_s)
            except TimeoutError:
                failing, timed_out = self.sink_failing_for(), True
            except SinkStopped:
                pass
        self.abort()
        unconfirmed = self.processor.unconfirmed_records()
        await self.stop()
        uncommitted = self.status(extra=False).uncommitted  # after the stop: a piece the loop took meanwhile too
        if failing is None and not self._abandoned and not uncommitted:
            if timed_out and unconfirmed:
                # Stored and committed, but what the marks follow (the last rows without offsets, the
                # refresh) did not end: nothing is lost, and the next start re-emits and refreshes it.
                return (f"stopped; everything consumed is stored and committed, but ClickHouse's last writes and "
                        f"rollup refresh did not finish within {timeout_s:.0f}s: the next start re-emits the rows of "
                        f"{unconfirmed:,} records not confirmed yet and refreshes their rollups (GMV_STOP_TIMEOUT_S "
                        "gives it longer)")
            owed = bool(self.own_sink.owed_open) if self.own_sink is not None and not drain else False
            return "stopped; everything consumed is stored and committed" + (
                "; the slow refresh still due (markov credits, levels, trust scores) is recorded as owed, and "
                "the next start does it first" if owed else "")
        reason = (f"ClickHouse writes failing for {failing:.0f}s" if failing is not None else
                  f"ClickHouse did not finish within {timeout_s:.0f}s" if timed_out else "stopped mid-write")
        return (f"stopped without storing what was in flight ({reason}): {uncommitted:,} "
                "messages are not committed, so the next start re-processes them from the last commit "
                "(nothing is lost)")

    def abort(self) -> None:
        """Stop at once: abandon ClickHouse retries and the write in flight."""
        for sink in {self.sink, self.own_sink} - {None}:
            sink.abort()
        self.checkpoint.abandon()

    async def stop(self) -> None:
        await self.host.stop()
        self.metrics.close()
