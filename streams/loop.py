"""The ingest loop: a plain aiokafka consumer with manual commits, feeding the batch processor.

Why not a faust agent: faust's stream delivery drops messages across consumer-group
generations and then commits past them (docs/architecture.md; faust-streaming issues
#216/#221), and its per-message machinery is far slower than this loop (the bench's
``faust_floor`` figure). Exact GMV needs every offset:

    getmany (≤ batch_max records) → BatchProcessor (pure: validate, dedup, attribute)
    → Checkpoint (journal → rows → offsets → rollups → marks; ``gmv.streams.checkpoint``)

The loop also keeps the Kafka read progress (newest Kafka timestamp read per topic and
partition, and which partitions are caught up): attribution waits for it, so a lagging
worker never attributes an order before reading the touches sent after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from gmv.streams.changelog import StateChangelog
from gmv.streams.checkpoint import Checkpoint
from gmv.streams.core.decode import SourceMessage
from gmv.streams.core.journal import partition_of
from gmv.streams.core.processor import BatchProcessor, BatchResult
from gmv.streams.core.progress import ReadProgress
from gmv.streams.groups import KafkaSettings
from gmv.streams.membership import AbandonedMembers
from gmv.streams.offsets import Offsets
from gmv.streams.recovery import Recovery
from gmv.streams.rollup_scheduler import RollupScheduler
from gmv.streams.stats import WorkerStats

log = logging.getLogger(__name__)

# Larger pieces mean fewer inserts (each costs about the same whatever its size) but less overlap
# of one piece's insert with the next one's processing; best of 1.5, 3, 6 and 12 MiB in A/B runs.
PIECE_BYTES = 6 * 1024 * 1024


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, loop: IngestLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The batch in flight commits its own offsets while the partitions are still ours, and
        # its marks are written; then the states go.
        if not revoked:
            # The first join (or a member that held nothing): no batch, state or mark of ours to
            # settle. What start-up noted (stale minutes a killed process left) waits for the first
            # refresh rather than holding the join: that refresh, run here, kept a restart from
            # consuming for seconds (6.4 s in the 2M soak).
            return
        async with self.loop.lock:
            # The slow refresh may stay owed: it held the revoke (and the group) for seconds.
            await self.loop.checkpoint.settle(slow=False)
            self.loop.release_partitions({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if self.loop.members is not None:  # the member id this assignment came with, before any commit
            self.loop.members.note()
        async with self.loop.lock:
            await self.loop.offsets.note_committed(assigned)
            await self.loop.recover_partitions({tp.partition for tp in assigned})


class IngestLoop:
    def __init__(self, kafka: KafkaSettings, bootstrap: str, processor: BatchProcessor, checkpoint: Checkpoint,
                 offsets: Offsets, scheduler: RollupScheduler, stats: WorkerStats,
                 changelog: Callable[[], StateChangelog | None], attribute_at_end: bool = False) -> None:
        self.kafka = kafka
        self.bootstrap = bootstrap
        self.processor = processor
        self.checkpoint = checkpoint
        self.offsets = offsets
        self.scheduler = scheduler  # told whether a backlog is being read (its cadence depends on it)
        self.stats = stats
        self.changelog = changelog  # the outbox's, once started: recovery reads the journal back
        self.attribute_at_end = attribute_at_end  # `gmv run`: a batch replay attributes at end of input
        self.consumer: AIOKafkaConsumer | None = None
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()  # partitions assigned and their state recovered
        self.owned: set[int] = set()
        self.progress = ReadProgress(processor.config.state_topics)
        self.recovery = Recovery(processor)
        self._recovered = BatchResult()
        # A recovery that failed (aiokafka only logs what its rebalance listener raises): the loop stops
        # on it rather than consume a partition whose state is behind its changelog.
        self._recovery_failed: BaseException | None = None
        self.members: AbandonedMembers | None = None
        self._sweeping: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        k = self.kafka
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=k.app_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=int(k.session_timeout_s * 1000),
            heartbeat_interval_ms=max(300, int(k.session_timeout_s * 1000) // 5),
            # Past this without a getmany, aiokafka gives the partitions up (a static member drops
            # its generation silently) and rejoins ~20 s later. The loop stops reading while a batch
            # waits on ClickHouse: a refresh of a big day held it over the old 20 s, and the 3M soak
            # lost its group 4 times. A dead worker is noticed by the session timeout instead.
            max_poll_interval_ms=int(k.max_poll_interval_s * 1000),
            # Static membership: a restarted worker takes over its predecessor's membership at
            # once, instead of waiting for a killed process's session to lapse (which noida-db
            # does not do while a rebalance is in progress).
            group_instance_id=k.worker_instance_id or None,
            partition_assignment_strategy=(RangePartitionAssignor,),  # co-partitioned: views/lives/orders p together
            fetch_max_bytes=32 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024,
            client_id=client_id(k.worker_instance_id),  # names this worker's member ids in the group
        )
        await self.consumer.start()
        self.offsets.consumer = self.consumer
        self.consumer.subscribe(k.topics.consumed, listener=_Rebalance(self))
        # Member ids aiokafka abandons are removed from the group (gmv.streams.membership).
        self.members = AbandonedMembers(self.consumer, k.app_id)
        self._sweeping = asyncio.create_task(self.members.run(lambda: self.consumer is None), name="gmv-members")

    async def close(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sweeping
            self._sweeping = None
        if self.consumer is not None:
            try:
                await self.consumer.stop()
            except Exception:
                log.debug("closing the consumer failed", exc_info=True)
            self.consumer = None
            self.offsets.consumer = None

    async def run(self, should_stop: Callable[[], bool]) -> None:
        """Fetch, process and store until told to stop; then store what is in flight."""
        k = self.kafka
        consumer = self.consumer
        assert consumer is not None, "start() first"
        while not should_stop():
            data = await consumer.getmany(timeout_ms=int(k.batch_within_s * 1000), max_records=k.batch_max)
            if self._recovery_failed is not None:
                raise self._recovery_failed
            if consumer.assignment():
                self.ready.set()
            msgs = [SourceMessage.from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers, r.timestamp)
                    for records in data.values() for r in records]
            if data:  # each partition's first record is its oldest
                self.stats.read(min(records[0].timestamp for records in data.values() if records))
            self.progress.returned_by_consumer(msgs)
            # Bounded pieces: one piece's ClickHouse write (C++, off the GIL) overlaps the next
            # one's processing, even when a fetch is a few 1,000-event producer batches.
            for piece in _pieces(msgs, PIECE_BYTES):
                async with self.lock:
                    await self.handle_batch(piece)
        async with self.lock:
            await self.checkpoint.settle(slow=False)

    # -- one batch -----------------------------------------------------------------------
    async def handle_batch(self, msgs: list[SourceMessage], final: bool = False) -> None:
        """Process a batch and hand it to the checkpoint; its rows and offsets are stored in the
        background while the next batch is fetched and processed. ``final`` waits for everything."""
        if self.checkpoint.finished:
            await self.checkpoint.wait_stored()  # surfaces a failed write at once, even when input is idle
        now = datetime.now(UTC)
        self.stats.arrived(msgs)
        with self.stats.timing("process"):
            c0 = time.thread_time()
            result = self.processor.process(msgs, now) if msgs else BatchResult()
            self.offsets.processed(result.next_offsets)
            self.progress.note(msgs)  # read means processed: later pieces of the fetch are not yet
            if self._recovered.has_output():
                result.merge(self._recovered)
                self._recovered = BatchResult()
            if final or not self.attribute_at_end:
                await self._refresh_caught_up()
                result.merge(self.processor.attribute_due(now, final=final, read_to=self.progress.read_to,
                                                          read_past=self.progress.read_past))
            self.processor.commit_journal(result)
            result.watermark_ms = self.processor.attribution_watermark_ms(self.progress.reading(self.owned))
            marks = self.processor.marks(result.touched_partitions)
            self.stats.seconds_in["process_cpu"] += time.thread_time() - c0
        if msgs or result.has_output():
            await self.checkpoint.submit(result, msgs, marks, final)
        else:
            await self.checkpoint.when_idle()
            if final:
                await self.checkpoint.wait_stored()

    async def drain(self, final: bool = True) -> None:
        """End of input (``gmv run``, bounded demo): attribute everything pending, store, commit.

        ``final=False`` (a worker stopping): store and commit only; pending orders stay in the
        journal and are attributed on time by whichever worker owns them next.
        """
        async with self.lock:
            if self.consumer is None or self.changelog() is None:
                return  # not started yet, or stopped (and stored) on its way out
            await self.handle_batch([], final=final)
            # A stop leaves the slow refresh owed: it could hold the stop for seconds, and the next start
            # does it first (the end of input does it now: what it prints is final).
            await self.checkpoint.settle(slow=final)

    # -- read progress ---------------------------------------------------------------------
    async def _refresh_caught_up(self) -> None:
        """Which (topic, partition) pairs are read up to their high watermark."""
        c = self.consumer
        if c is None:
            return
        done: set[tuple[str, int]] = set()
        assigned = c.assignment()
        for tp in assigned:
            try:
                high, polled_ms = c.highwater(tp), c.last_poll_timestamp(tp) or 0  # one fetch's: ``high`` as of then
                pos = await c.position(tp)
            except Exception:  # not assigned any more (a rebalance under way)
                continue
            key = (tp.topic, tp.partition)
            if self.progress.is_caught_up(key, high, pos, self.offsets.handled.get(key, 0)):
                done.add(key)
                self.progress.polled_ms[key] = polled_ms
        self.progress.caught_up = done
        self.scheduler.backlog = len(done) < len(assigned)

    # -- partitions ---------------------------------------------------------------------------
    def release_partitions(self, parts: set[int]) -> None:
        # What a recovery left for the next batch, of partitions that go: not written here any more.
        rec = self._recovered
        rec.staged = [st for st in rec.staged if st.store.number not in parts]
        rec.journal_puts = [kv for kv in rec.journal_puts if partition_of(kv[0]) not in parts]
        self.processor.forget(parts)
        self.owned -= parts
        self.progress.forget(parts)
        self.offsets.forget(parts)

    async def recover_partitions(self, parts: set[int]) -> None:
        new = sorted(parts - self.owned)
        changelog = self.changelog()
        if not new or changelog is None:
            return
        try:
            self._recovered.merge(await self.recovery.recover(changelog, new))
        except Exception as e:
            self._recovery_failed = e
            raise
        self.owned.update(new)

    # -- what the tools ask ----------------------------------------------------------------
    async def end_offsets(self, topic: str) -> dict[tuple[str, int], int]:
        if self.consumer is None:
            return {}
        tps = [TopicPartition(topic, p) for p in range(self.kafka.partitions)]
        ends = await self.consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}

    async def unconsumed(self, topics: list[str]) -> int:
        """Messages on these topics not yet stored by this worker (nor committed before it started)."""
        c = self.consumer
        if c is None:
            raise AssertionError("the worker is not consuming: start() first")
        total = 0
        for topic in topics:
            for (t, p), end in (await self.end_offsets(topic)).items():
                done = self.offsets.stored.get((t, p))
                if done is None:
                    done = await c.committed(TopicPartition(t, p)) or 0
                total += max(0, end - done)
        return total


def client_id(instance_id: str) -> str:
    """The consumer's client id: ``gmv-<instance id>``, or for a dynamic member ``gmv-<host>-<pid>``."""
    if instance_id:
        return f"gmv-{instance_id}"
    return f"gmv-{socket.gethostname()}-{os.getpid()}"


def _pieces(msgs: list[SourceMessage], max_bytes: int) -> list[list[SourceMessage]]:
    out: list[list[SourceMessage]] = [[]]
    size = 0
    for m in msgs:
        n = len(m.value) if m.value else 0
        if out[-1] and size + n > max_bytes:
            out.append([])
            size = 0
        out[-1].append(m)
        size += n
    return out
