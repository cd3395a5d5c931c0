"""One writer for many workers: rows travel through a Kafka topic to the process that owns ClickHouse.

The embedded ClickHouse (chdb) opens its data path from one process only, so with
several workers exactly one process may write (SPEC §6). In ``sink_mode=topic``
every worker hands its rows to ``TopicSink``, which produces them — already encoded
as ``JSONCompactEachRow``, one message per table and chunk — to ``<prefix>rows``;
``RowsWriter``, running in the process that owns ClickHouse, consumes that topic
and inserts each body as it is. It is the shape ClickHouse's own Kafka engine and
Kafka Connect use in production.

Exactness is unchanged: a worker commits its source offsets (and marks its journal)
only after its rows are acknowledged by the broker (acks=all), and the writer
commits the rows topic only after ClickHouse took them, so a crash on either side
re-sends or re-inserts rows that the ReplacingMergeTree behind each FINAL view
absorbs. Minute-rollup refreshes travel the same topic, after the rows they cover.
The topic has one partition: one writer is active, and order is total.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from gmv.schemas.catalogue import FACTS
from gmv.sinks.base import BatchingSink, RollupWork, decode_work, encode_work
from gmv.sinks.clickhouse import BINARY_TABLES, ClickHouseSink, json_rows

log = logging.getLogger(__name__)

ROLLUPS = "__rollups"
TABLE_HEADER = "gmv-table"
ROWS_HEADER = "gmv-rows"  # rows in the body
MAX_BODY = 768 * 1024  # under the broker's 1 MiB message limit


def encode_rows(table: str, rows: Sequence[Sequence[Any]]) -> list[tuple[bytes, int]]:
    """Rows -> (body, rows in it) under ``MAX_BODY`` (bytes columns of binary tables as base64 text)."""
    if table in BINARY_TABLES:
        rows = [tuple({"b64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v for v in r) for r in rows]
    bodies: list[tuple[bytes, int]] = []
    step = max(1, len(rows))
    i = 0
    while i < len(rows):
        chunk = rows[i:i + step]
        body = json_rows(chunk)
        if len(body) > MAX_BODY and step > 1:
            step = max(1, step // 2)
            continue
        bodies.append((body, len(chunk)))
        i += step
    return bodies


def decode_binary_rows(body: bytes) -> list[list[Any]]:
    # Rows are separated by commas (or, from older writers, newlines: JSON text holds no raw newline).
    rows = json.loads(b"[" + body.replace(b"\n", b",") + b"]")
    return [[base64.b64decode(v["b64"]) if isinstance(v, dict) and "b64" in v else v for v in r] for r in rows]


class TopicSink(BatchingSink):
    """The worker side: rows go to the rows topic, acknowledged by the broker before offsets move."""

    def __init__(self, producer: Callable[[], Any], topic: str, tables: Sequence = FACTS) -> None:
        super().__init__(tables)
        self._producer = producer  # the worker's aiokafka producer, once started
        self.topic = topic

    async def flush(self, everything: bool = True) -> int:
        batches = self._take_buffers()  # nothing waits here: the rows writer inserts them in bulk anyway
        if not batches:
            return 0
        encoded = await asyncio.to_thread(lambda: {n: encode_rows(n, r) for n, r in batches.items()})
        futures = []
        producer = self._producer()
        for name, bodies in encoded.items():
            for body, n in bodies:
                futures.append(await producer.send(self.topic, value=body, partition=0,
                                                   headers=[(TABLE_HEADER, name.encode()),
                                                            (ROWS_HEADER, str(n).encode())]))
        await producer.flush()
        await asyncio.gather(*futures)  # acknowledged by the broker before offsets move on
        n = sum(len(r) for r in batches.values())
        self.rows_written += n
        self.rows_by_table.update({name: len(rows) for name, rows in batches.items()})
        self.inserts += sum(len(b) for b in encoded.values())
        return n

    async def refresh(self, work: RollupWork) -> None:
        """The refresh travels the rows topic after the rows it covers: the writer carries it out."""
        if not work:
            return
        producer = self._producer()
        fut = await producer.send(self.topic, value=encode_work(work), partition=0,
                                  headers=[(TABLE_HEADER, ROLLUPS.encode())])
        await producer.flush()
        await fut


class RowsWriter:
    """The writer side: consumes the rows topic into ClickHouse, one insert per table per batch."""

    def __init__(self, bootstrap: str, topic: str, group: str, sink: ClickHouseSink, session_timeout_s: float) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.sink = sink
        self.session_timeout_s = session_timeout_s
        self.rows_written = 0
        self.next_offset = 0
        self.active = False

    async def run(self, should_stop: Callable[[], bool]) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=int(self.session_timeout_s * 1000),
            heartbeat_interval_ms=max(300, int(self.session_timeout_s * 1000) // 5),
            max_poll_interval_ms=600_000, fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024)
        await consumer.start()
        try:
            while not should_stop():
                data = await consumer.getmany(timeout_ms=200, max_records=2000)
                self.active = bool(consumer.assignment())
                records = [r for rs in data.values() for r in rs]
                if not records:
                    continue
                await asyncio.to_thread(self._write, records)
                last = records[-1]
                await consumer.commit({TopicPartition(last.topic, last.partition): last.offset + 1})
                self.next_offset = last.offset + 1
        finally:
            await consumer.stop()

    def _write(self, records: list[Any]) -> None:
        """Inserts in arrival order, a table's consecutive bodies joined into one insert; a refresh
        request is carried out after every row that came before it."""
        bodies: dict[str, list[bytes]] = {}
        counted = 0
        work = RollupWork()
        for r in records:
            headers = dict(r.headers or ())
            table = headers.get(TABLE_HEADER, b"").decode()
            if table == ROLLUPS:
                work.update(decode_work(r.value))
            elif table in self.sink.tables:
                bodies.setdefault(table, []).append(r.value)
                counted += int(headers.get(ROWS_HEADER, b"0") or 0)
            else:
                log.warning("rows topic: message for unknown table %r at offset %d skipped", table, r.offset)
        t0 = time.perf_counter()
        for table, parts in bodies.items():
            if table in BINARY_TABLES:
                self.sink.add(table, [row for body in parts for row in decode_binary_rows(body)])
                self.sink.flush_sync()
            else:
                self.sink.insert_json_sync(table, b",".join(parts))
        self.rows_written += counted
        if work:
            self.sink.refresh_sync(work)
        log.debug("rows writer: %d messages in %.3fs", len(records), time.perf_counter() - t0)
