"""The state changelog: a compacted topic whose partition ``p`` holds source partition ``p``'s journal.

It plays the role of a faust table's changelog, written and recovered by the
worker itself: journal entries are produced once per batch (not once per
event), flushed before the batch's ClickHouse write and offset commit, and
read back from the beginning when a partition is assigned.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

log = logging.getLogger(__name__)


class StateChangelog:
    def __init__(self, bootstrap: str, topic: str, producer: AIOKafkaProducer) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.producer = producer

    async def read(self, partitions: list[int]) -> dict[int, list[tuple[str, bytes | None]]]:
        """Every record of the given changelog partitions, in offset order (``None`` = deleted)."""
        out: dict[int, list[tuple[str, bytes | None]]] = {p: [] for p in partitions}
        if not partitions:
            return out
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", group_id=None, fetch_max_bytes=16 * 1024 * 1024)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            todo = {tp for tp in tps if ends[tp] > starts[tp]}
            for tp in tps:
                consumer.seek(tp, starts[tp])
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=1000)
                for tp, records in batch.items():
                    for r in records:
                        if r.offset < ends[tp]:
                            out[tp.partition].append((r.key.decode(), r.value))
                    if records and records[-1].offset + 1 >= ends[tp]:
                        todo.discard(tp)
                    elif await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
        finally:
            await consumer.stop()
        return out

    async def put(self, partition: int, key: str, value: bytes | None) -> asyncio.Future:
        """Queue a record; the returned future says whether the broker took it."""
        return await self.producer.send(self.topic, key=key.encode(), value=value, partition=partition)
