"""The batch store/commit pipeline: what a batch sends to Kafka, then its rows, then its offsets.

Per batch, in this order (the exactness argument of the README):
1. ``Outbox.send``: journal entries to the state changelog, forwards to the rekeyed
   topic, dead letters to the DLQ — acknowledged before any row derived from them is
   written, so a crash never leaves a row without the decision behind it;
2. ``StorePipeline.submit``: rows to the sink, then the source offsets are committed.
   Step 2 of batch N runs in the background while batch N+1 is fetched and processed
   (its ClickHouse insert parses in C++, off the GIL); batch N+1's step 2 always waits
   for N's, so rows and offsets keep their order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from gmv.sinks.base import BatchingSink
from gmv.streams.changelog import StateChangelog
from gmv.streams.core.decode import SourceMessage
from gmv.streams.core.processor import BatchResult
from gmv.streams.settings import Settings
from gmv.streams.stats import WorkerStats

log = logging.getLogger(__name__)


class Outbox:
    """The worker's producer: journal entries, forwards, dead letters and marks."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None
        self.changelog: StateChangelog | None = None

    async def start(self) -> None:
        s = self.settings
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                         compression_type=s.producer_compression,
                                         max_request_size=4 * s.max_message_bytes + 65536,
                                         max_batch_size=1024 * 1024)
        await self.producer.start()
        self.changelog = StateChangelog(self.bootstrap, s.changelog_topic, self.producer)

    async def close(self) -> None:
        if self.producer is None:
            return
        try:
            await self.producer.flush()
            await self.producer.stop()
        except Exception:  # closing must not mask why we are closing
            log.debug("closing the producer failed", exc_info=True)
        self.producer = None

    async def send(self, result: BatchResult) -> None:
        """Everything the batch decided, durable before ClickHouse sees a row derived from it: a
        send that failed raises here, before any row or offset depends on it."""
        producer, changelog = self.producer, self.changelog
        assert producer is not None and changelog is not None, "Outbox.start() first"
        s = self.settings
        sends: list[asyncio.Future] = []
        for key, value in result.journal_puts:
            sends.append(await changelog.put(int(key.split("|", 1)[0]), key, value))
        for key in result.journal_dels:
            sends.append(await changelog.put(int(key.split("|", 1)[0]), key, None))
        for rk in result.rekeyed:
            sends.append(await producer.send(s.rekeyed_topic, key=rk.key, value=rk.value,
                                             partition=rk.partition, headers=[("gmv-src", rk.src.encode())]))
        for dl in result.dead_letters:
            sends.append(await producer.send(
                s.dlq_topic, key=dl.msg.key, value=dl.raw,
                headers=[("gmv-reason-code", dl.reason_code.encode()), ("gmv-reason", dl.reason.encode()[:4000]),
                         ("gmv-source-topic", dl.msg.topic.encode()),
                         ("gmv-source-partition", str(dl.msg.partition).encode()),
                         ("gmv-source-offset", str(dl.msg.offset).encode()),
                         ("gmv-element-index", str(dl.index).encode()), ("gmv-src", dl.src.encode())],
            ))
        await producer.flush()
        await asyncio.gather(*sends)

    async def put_mark(self, partition: int, key: str, value: bytes) -> None:
        assert self.changelog is not None
        await self.changelog.put(partition, key, value)


class StorePipeline:
    """Rows to the sink, then offsets; one batch in flight while the next is processed."""

    def __init__(self, sink: BatchingSink, stats: WorkerStats,
                 commit: Callable[[dict[tuple[str, int], int]], Awaitable[None]],
                 on_stored: Callable[[BatchResult, dict[int, int], bool], Awaitable[None]]) -> None:
        self.sink = sink
        self.stats = stats
        self._commit = commit
        self._on_stored = on_stored  # rollups and marks (``RollupScheduler.stored``)
        self._inflight: asyncio.Task | None = None

    @property
    def idle(self) -> bool:
        return self._inflight is None

    @property
    def finished(self) -> bool:
        """The write in flight has ended (``wait_stored`` returns at once, or raises its failure)."""
        return self._inflight is not None and self._inflight.done()

    async def submit(self, result: BatchResult, msgs: list[SourceMessage], marks: dict[int, int],
                     final: bool = False) -> None:
        """Start storing a batch once the previous one is stored."""
        with self.stats.timing("store_wait"):
            await self.wait_stored()
        self._inflight = asyncio.create_task(self._store(result, msgs, marks, final), name="gmv-store")
        await asyncio.sleep(0)  # let it hand its insert to a thread before the next batch's CPU work

    async def wait_stored(self) -> None:
        """Wait for the batch being written (re-raises its failure)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    def abandon(self) -> None:
        """The process is stopping: the write in flight will fail (``SinkStopped``); nobody waits for it."""
        task, self._inflight = self._inflight, None
        if task is not None:
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _store(self, result: BatchResult, msgs: list[SourceMessage], marks: dict[int, int],
                     final: bool) -> None:
        with self.stats.timing("sink"):
            for table, rows in result.rows.items():
                if rows:
                    self.sink.add(table, rows)
            await self.sink.flush(everything=final)  # the trust facts wait for the score refresh
        # Offsets may go before the marks: rows of unmarked entries are re-emitted on recovery,
        # and their minutes re-rolled, so a crash here loses nothing.
        with self.stats.timing("commit"):
            await self._commit(result.next_offsets)
        self.stats.stored(result, msgs)
        await self._on_stored(result, marks, final)
