"""The state changelog: a compacted topic whose partition ``p`` holds source partition ``p``'s records
(format: ``gmv.streams.core.journal``), keyed by record so that compaction keeps live state only.

Records go out in producer batches built here (one ``send`` per record costs ~10 µs of Python, a
batch append ~0.6 µs); each batch's acknowledgement gives the offsets its records took, which the
local store remembers (``Staged.persist``). Recovery reads a partition from an offset on, in chunks,
so that neither a restart (the tail past what the local store holds) nor a restore onto an empty
store (the whole compacted partition) holds more than a chunk in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

log = logging.getLogger(__name__)

# Records handed to the caller at once while recovering: its store writes are made per chunk.
CHUNK_RECORDS = 20_000

# How a changelog topic is compacted: segments roll often enough that compaction (which never
# touches the active segment) keeps a restore close to the live state, and tombstones stay long
# enough for a worker away for a while to read them (a longer absence restores from scratch).
COMPACTION_CONFIGS = {
    "cleanup.policy": "compact",
    "segment.ms": str(10 * 60_000),
    "segment.bytes": str(64 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.25",
    "delete.retention.ms": str(24 * 3_600_000),
}


READ_IDLE_POLLS = 60  # one-second polls without a record, while records are due, before giving up


class ChangelogUnreadable(RuntimeError):
    """Records the changelog says it has do not come."""


class StateChangelog:
    def __init__(self, bootstrap: str, topic: str, producer: AIOKafkaProducer) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.producer = producer

    # -- writing ---------------------------------------------------------------------------------
    async def send(self, records: Iterable[tuple[int, str, bytes | None]]) -> list[asyncio.Future]:
        """Queue (partition, key, value) records in producer batches; each future gives its batch's
        (partition, next offset)."""
        by_partition: dict[int, list[tuple[str, bytes | None]]] = {}
        for p, key, value in records:
            by_partition.setdefault(p, []).append((key, value))
        futures = []
        for p, items in by_partition.items():
            batch, n = self.producer.create_batch(), 0
            for key, value in items:
                kb = key.encode("utf-8", "surrogatepass")
                if batch.append(key=kb, value=value, timestamp=None) is None:
                    futures.append(await self._send(batch, p, n))
                    batch, n = self.producer.create_batch(), 0
                    if batch.append(key=kb, value=value, timestamp=None) is None:
                        raise ValueError(f"a changelog record of {len(value or b'')} bytes does not fit a batch")
                n += 1
            if n:
                futures.append(await self._send(batch, p, n))
        return futures

    async def _send(self, batch, partition: int, n: int) -> asyncio.Future:  # noqa: ANN001 (aiokafka's BatchBuilder)
        batch.close()
        sent = await self.producer.send_batch(batch, self.topic, partition=partition)
        return asyncio.ensure_future(_next_offset(sent, partition, n))

    # -- reading ---------------------------------------------------------------------------------
    async def bounds(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """(log start, end) offsets of each partition."""
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            starts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
            return {tp.partition: (starts[tp], ends[tp]) for tp in tps}
        finally:
            await consumer.stop()

    async def read(self, partition: int, start: int, end: int
                   ) -> AsyncIterator[tuple[list[tuple[str, bytes | None]], int]]:
        """Records [start, end) of one partition in offset order, in chunks: (records, the offset after
        the chunk's last one)."""
        if start >= end:
            return
        consumer = self._consumer()
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            chunk: list[tuple[str, bytes | None]] = []
            position, idle = start, 0
            while position < end:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=CHUNK_RECORDS)
                records = batch.get(tp, [])
                if not records:
                    position = max(position, await consumer.position(tp))
                    idle += 1
                    if idle >= READ_IDLE_POLLS:
                        raise ChangelogUnreadable(
                            f"changelog {self.topic} partition {partition} gave nothing past offset {position} "
                            f"(end {end}) for {idle} s: is the broker up? The worker restarts its recovery")
                    continue
                idle = 0
                for r in records:
                    if r.offset >= end:
                        break
                    chunk.append((r.key.decode("utf-8", "surrogatepass"), r.value))
                    position = r.offset + 1
                else:
                    position = max(position, records[-1].offset + 1)
                if len(chunk) >= CHUNK_RECORDS or position >= end:
                    yield chunk, position if position < end else end
                    chunk = []
            if chunk:
                yield chunk, end
        finally:
            await consumer.stop()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None, fetch_max_bytes=16 * 1024 * 1024)


async def _next_offset(sent: asyncio.Future, partition: int, n: int) -> tuple[int, int]:
    meta = await sent
    return partition, meta.offset + n
