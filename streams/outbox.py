"""The worker's producer: journal entries, forwards, dead letters and journal marks (``Checkpoint``
steps 1 and 5)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer

from gmv.streams.changelog import StateChangelog
from gmv.streams.core.processor import BatchResult
from gmv.streams.groups import KafkaSettings

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, kafka: KafkaSettings, bootstrap: str) -> None:
        self.kafka = kafka
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None
        self.changelog: StateChangelog | None = None

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
        send that failed raises here, before any row or offset depends on it."""
        producer, changelog = self.producer, self.changelog
        assert producer is not None and changelog is not None, "Outbox.start() first"
        topics = self.kafka.topics
        sends: list[asyncio.Future] = []
        for key, value in result.journal_puts:
            sends.append(await changelog.put(int(key.split("|", 1)[0]), key, value))
        for key in result.journal_dels:
            sends.append(await changelog.put(int(key.split("|", 1)[0]), key, None))
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
        await producer.flush()
        await asyncio.gather(*sends)

    async def put_marks(self, marks: dict[int, tuple[str, bytes]]) -> None:
        """Journal marks (partition -> its mark's key and value): ClickHouse holds the rows they cover."""
        if not marks or self.changelog is None:
            return
        sends = [await self.changelog.put(p, key, value) for p, (key, value) in marks.items()]
        await asyncio.gather(*sends)
