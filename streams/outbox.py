"""The worker's producer: journal entries, forwards, dead letters and journal marks (``Checkpoint``
steps 1 and 5)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer

from gmv.streams.changelog import StateChangelog
from gmv.streams.core.journal import partition_of
from gmv.streams.core.processor import BatchResult
from gmv.streams.faults import crash_point
from gmv.streams.groups import KafkaSettings
from gmv.streams.rollup_scheduler import Marks

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, kafka: KafkaSettings, bootstrap: str) -> None:
        self.kafka = kafka
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None
        self.changelog: StateChangelog | None = None
        self._lock = asyncio.Lock()
        self.broken = False  # a send failed: the stores may lack records the changelog has

    @property
    def started(self) -> bool:
        return self.changelog is not None

    async def start(self) -> None:
        k = self.kafka
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                         compression_type=k.compression,
                                         max_request_size=4 * k.max_message_bytes + 65536,
                                         max_batch_size=1024 * 1024)
        await self.producer.start()
        self.changelog = StateChangelog(self.bootstrap, k.topics.changelog, self.producer)

    async def close(self) -> None:
        if self.producer is None:
            return
        try:
            await self.producer.flush()
            await self.producer.stop()
        except Exception:  # closing must not mask why we are closing
            log.debug("closing the producer failed", exc_info=True)
        self.producer, self.changelog = None, None

    async def send(self, result: BatchResult) -> None:
        """Everything the batch decided, durable before ClickHouse sees a row derived from it: a
        send that failed raises here, before any row or offset depends on it. Then the batch's state
        is written to the local stores, with the changelog offsets its records took."""
        assert self.producer is not None and self.changelog is not None, "Outbox.start() first"
        async with self._lock:  # a store's offset covers every record below it: one writer at a time
            try:
                await self._send_locked(result)
            except BaseException:
                self.broken = True  # some records may be in the changelog and not in the stores: no mark after
                raise

    async def _send_locked(self, result: BatchResult) -> None:
        producer, changelog = self.producer, self.changelog
        assert producer is not None and changelog is not None
        topics = self.kafka.topics
        crash_point("before_changelog")
        sends: list[asyncio.Future] = list(await changelog.send(
            (partition_of(key), key, value) for key, value in result.journal_puts))
        n_changelog = len(sends)
        await self._send_rest(result, topics, sends)
        await producer.flush()
        next_offsets = _next_offsets((await asyncio.gather(*sends))[:n_changelog])
        crash_point("before_store_write")
        for staged in result.staged:
            if not staged.store.closed:  # its partition went elsewhere meanwhile
                staged.persist(next_offsets.get(staged.store.number))
        crash_point("before_clickhouse")

    async def _send_rest(self, result: BatchResult, topics, sends: list[asyncio.Future]) -> None:  # noqa: ANN001
        producer = self.producer
        assert producer is not None
        for rk in result.rekeyed:
            sends.append(await producer.send(topics.rekeyed, key=rk.key, value=rk.value, partition=rk.partition,
                                             headers=[("gmv-src", rk.src.encode())]))
        for dl in result.dead_letters:
            sends.append(await producer.send(
                topics.dlq, key=dl.msg.key, value=dl.raw,
                headers=[("gmv-reason-code", dl.reason_code.encode()), ("gmv-reason", dl.reason.encode()[:4000]),
                         ("gmv-source-topic", dl.msg.topic.encode()),
                         ("gmv-source-partition", str(dl.msg.partition).encode()),
                         ("gmv-source-offset", str(dl.msg.offset).encode()),
                         ("gmv-element-index", str(dl.index).encode()), ("gmv-src", dl.src.encode())],
            ))

    async def put_marks(self, marks: Marks) -> None:
        """ClickHouse holds the rows of these pending records: their tombstones, then the stores."""
        if not marks or self.changelog is None or self.broken:
            return
        async with self._lock:
            if self.broken:
                return
            records, writes = [], []
            for p, confirmations in marks.items():
                for c in confirmations:
                    tombstones, changes = c.journal.confirm(c.pending_ids)
                    records.extend((p, key, None) for key, _ in tombstones)
                    writes.append((c.journal.store, changes))
            next_offsets = _next_offsets(await asyncio.gather(*await self.changelog.send(records)))
            # Every record below these offsets is in the stores: batches persist under this lock too.
            for store, changes in writes:
                if changes and not store.closed:
                    store.write_now(changes, next_offsets.get(store.number))


def _next_offsets(acked: list[tuple[int, int]]) -> dict[int, int]:
    """Per changelog partition, the offset after the last of its acknowledged batches."""
    out: dict[int, int] = {}
    for p, offset in acked:
        out[p] = max(out.get(p, 0), offset)
    return out
