"""The faust app: topics, tables, the ingest agent and web views, wired to the sink.

``GmvWorker`` builds one faust app from ``Settings``. Its agent consumes the
source topics as raw bytes in ``take_events`` batches; for each batch it runs
the pure ``BatchProcessor``, writes the journal (state) entries, sends dead
letters to the DLQ topic, and flushes the ClickHouse sink — and only then lets
faust ack the batch. Faust flushes the producer (changelog, DLQ) before it
commits offsets, so offsets are committed after both state and ClickHouse
hold what the batch produced: at-least-once, with exact totals because every
row is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust

from sinks.clickhouse import ClickHouseSink
from streams.ingest import SourceMessage
from streams.pipeline import BatchProcessor, IngestCounters
from streams.settings import Settings
from streams.tables import JournalTable

log = logging.getLogger(__name__)


class GmvWorker:
    """One worker process: a faust app and the state it owns."""

    def __init__(self, settings: Settings, bootstrap: str, sink: ClickHouseSink,
                 sql_runner: Callable[[str, str], bytes] | None = None, web_port: int = 0) -> None:
        self.settings = settings
        self.sink = sink
        self.sql_runner = sql_runner
        self.processor = BatchProcessor(settings, extra_topics={settings.unrouted_topic: None})
        self.counters = IngestCounters()
        self.next_offsets: dict[tuple[str, int], int] = {}
        self.batches = 0
        self.started_at = time.monotonic()
        self._crash: BaseException | None = None
        self._loaded: set[int] = set()
        self.seen_msgs: dict[tuple[str, int], int] = {}  # messages handled per (topic, partition)
        self.web_port = web_port
        s = settings
        self.app = faust.App(
            s.app_id,
            broker=f"kafka://{bootstrap.replace(',', ';kafka://')}",
            store="memory://",
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=1.0,
            broker_commit_every=10_000,
            broker_commit_interval=1.0,
            consumer_auto_offset_reset="earliest",
            producer_linger_ms=5,
            stream_wait_empty=False,
            web_enabled=web_port > 0,
            web_bind=s.web_host,
            web_port=web_port or 6066,
            web_host=s.web_host,
            table_cleanup_interval=3600,
        )
        self.source_topics = self.app.topic(
            *s.source_topics, s.unrouted_topic, key_type=bytes, value_type=bytes,
            key_serializer="raw", value_serializer="raw", partitions=s.partitions,
        )
        self.dlq_topic = self.app.topic(s.dlq_topic, key_type=bytes, value_type=bytes,
                                        key_serializer="raw", value_serializer="raw", partitions=s.partitions)
        self.journal: JournalTable = self.app.tables.add(JournalTable(
            self.app, name="journal", default=None, partitions=s.partitions,
            key_type=str, value_type=bytes,
            help="batch journal of per-partition stream state (dedup, touchpoints, orders)",
        ))
        self.app.agent(self.source_topics, name="ingest")(self._ingest)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        if web_port > 0:
            from streams.views import register_views

            register_views(self)

    async def _on_revoked(self, sender: Any, revoked: set, **kwargs: Any) -> None:
        # Revoked partitions may come back later with state changed by another
        # worker: forget them here, rebuild from the recovered journal then.
        parts = {tp.partition for tp in revoked}
        self.processor.forget(parts)
        self._loaded -= parts

    def _ensure_loaded(self, partitions: set[int]) -> None:
        for p in partitions - self._loaded:
            self.processor.forget({p})
            self.processor.partition_state(p).load(self.journal.partition_items(p))
            self._loaded.add(p)

    async def _ingest(self, stream: faust.StreamT) -> None:
        async for events in stream.take_events(self.settings.batch_max, within=self.settings.batch_within_s):
            msgs = [
                SourceMessage.from_kafka(m.topic, m.partition, m.offset, m.key, m.value, m.headers)
                for m in (e.message for e in events)
            ]
            try:
                await self.handle_batch(msgs)
            except Exception as e:
                # Input never raises here (it is validated and dead-lettered); this is
                # infrastructure (ClickHouse gone past the retry budget) or a bug. Stop
                # the worker rather than let faust's supervisor restart the agent past
                # an un-flushed batch: its offsets stay uncommitted and a restart
                # re-processes it, idempotently.
                self._crash = e
                log.exception("the ingest agent failed; stopping the worker (offsets stay uncommitted)")
                await self.app.crash(e)
                raise

    async def handle_batch(self, msgs: list[SourceMessage]) -> None:
        self._ensure_loaded({m.partition for m in msgs})
        result = self.processor.process(msgs, datetime.now(UTC))
        for key, value in result.journal_puts:
            self.journal[key] = value
        for key in result.journal_dels:
            self.journal.pop(key, None)
        for dl in result.dead_letters:
            await self.dlq_topic.send(
                key=dl.msg.key, value=dl.raw,
                headers=[("gmv-reason-code", dl.reason_code.encode()), ("gmv-reason", dl.reason.encode()[:4000]),
                         ("gmv-source-topic", dl.msg.topic.encode()),
                         ("gmv-source-partition", str(dl.msg.partition).encode()),
                         ("gmv-source-offset", str(dl.msg.offset).encode()),
                         ("gmv-element-index", str(dl.index).encode()), ("gmv-src", dl.src.encode())],
            )
        for table, rows in result.rows.items():
            if rows:
                self.sink.add(table, rows)
        await self.sink.flush()
        # Everything the batch produced is in ClickHouse (and queued for Kafka,
        # which faust flushes before committing): the batch may now be acked.
        for m in msgs:  # consumption audit: every offset of a partition must be seen (see runner)
            k = (m.topic, m.partition)
            self.seen_msgs[k] = self.seen_msgs.get(k, 0) + 1
        for key, off in result.next_offsets.items():
            if off > self.next_offsets.get(key, 0):
                self.next_offsets[key] = off
        self.counters.by_topic.update(result.counters.by_topic)
        self.batches += 1

    @property
    def crashed(self) -> bool:
        return self._crash is not None

    def crash_reason(self) -> str:
        return f"{type(self._crash).__name__}: {self._crash}" if self._crash else "stopped"

    async def drain(self) -> None:
        """End of input (``gmv run``, bounded demo): settle everything pending, flush, commit.

        Faust commits on an interval; stopping right after the last batch could
        leave its offsets uncommitted (harmless: a replay is idempotent, but the
        next run would re-read them), so commit explicitly once the acks land.
        """
        await self.sink.flush()
        await asyncio.sleep(0.3)  # the take_events generator acks the last batch on its next step
        if self.app.consumer is not None and self.app.consumer.assignment():
            await self.app.consumer.commit()

    def stats(self) -> dict[str, Any]:
        return {
            "counters": self.counters.summary(),
            "per_topic": self.counters.per_topic(),
            "batches": self.batches,
            "rows_written": self.sink.rows_written,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "next_offsets": {f"{t}:{p}": o for (t, p), o in sorted(self.next_offsets.items())},
        }

    # -- running -------------------------------------------------------------------
    async def start(self) -> asyncio.Task:
        worker = faust.Worker(self.app, loglevel=self.settings.log_level, quiet=True,
                              redirect_stdouts=False, loop=asyncio.get_running_loop(),
                              override_logging=False)
        self._faust_worker = worker
        return asyncio.create_task(worker.start(), name="faust-worker")

    async def stop(self) -> None:
        worker = getattr(self, "_faust_worker", None)
        if worker is not None:
            await worker.stop()
