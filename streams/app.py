"""The worker: a faust app (lifecycle, web views) running the batched ingest loop.

Why the source topics are not consumed through a faust agent: faust's stream
delivery drops messages across consumer-group generations and then commits
past them (measured here: ~2 in 8 resumed runs skipped hundreds of offsets;
see faust-streaming issues #216/#221), and its per-message machinery caps a
stock agent at a few thousand events/s on this hardware. Exact GMV needs
every offset, so the ingest loop (``GmvWorker._run``) runs inside the faust worker
on a plain aiokafka consumer with manual commits:

    getmany (≤ batch_max records) → BatchProcessor (pure) → journal to the
    state changelog, DLQ and rekeyed sends → producer flush → [in the
    background, while the next batch is processed] ClickHouse (or the rows
    topic) → commit offsets; minute rollups and journal marks after every
    batch while caught up, every ``rollup_interval_s`` under a backlog

so offsets are committed only after state and ClickHouse hold what the batch
produced: at-least-once, with exact totals because every row is idempotent and
every decision is journalled before its rows are written.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError

from sinks.clickhouse import ClickHouseSink
from sinks.schema import ATTRIBUTED_GMV, FUNNEL_EVENTS
from sinks.topic import RowsWriter, TopicSink
from streams.changelog import StateChangelog
from streams.ingest import SourceMessage
from streams.kafka_compat import install_aiokafka_tuning
from streams.pipeline import BatchProcessor, BatchResult, IngestCounters
from streams.settings import Settings
from streams.state import from_ms

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: GmvWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Wait for the batch in flight: it commits its own offsets before the partitions go.
        async with self.worker.lock:
            await self.worker.settle()  # its offsets are committed while the partitions are still ours
            await self.worker.refresh_rollups()  # and its marks written by the states that journalled it
            self.worker.release_partitions({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.worker.lock:
            await self.worker.recover_partitions({tp.partition for tp in assigned})


class GmvWorker:
    """One worker process: the ingest loop, the state it owns, and the web views."""

    def __init__(self, settings: Settings, bootstrap: str, sink: ClickHouseSink | None,
                 sql_runner: Callable[[str, str], bytes] | None = None, web_port: int = 0,
                 attribute_at_end: bool = False) -> None:
        """``sink`` is this process's ClickHouse (None if another process owns it). In
        ``sink_mode=topic`` rows go through the rows topic, and a process with a sink also
        runs the one ``RowsWriter``."""
        self.settings = settings
        self.bootstrap = bootstrap
        self.rows_writer: RowsWriter | None = None
        if settings.sink_mode == "topic":
            self.sink: ClickHouseSink | TopicSink = TopicSink(lambda: self._producer, settings.rows_topic)
            if sink is not None:
                self.rows_writer = RowsWriter(bootstrap, settings.rows_topic, f"{settings.app_id}-rows-writer",
                                              sink, settings.session_timeout_s)
        elif sink is None:
            raise ValueError("sink_mode=direct needs ClickHouse in this process; use sink_mode=topic")
        else:
            self.sink = sink
        self.sql_runner = sql_runner
        self.attribute_at_end = attribute_at_end  # `gmv run`: a batch replay attributes at end of input
        self.processor = BatchProcessor(settings, extra_topics={settings.unrouted_topic: None,
                                                                settings.rekeyed_topic: None})
        self.counters = IngestCounters()
        self.next_offsets: dict[tuple[str, int], int] = {}
        self.seen_msgs: dict[tuple[str, int], int] = {}  # messages handled per (topic, partition): a skip guard
        self.batches = 0
        self.first_batch_at: float | None = None  # monotonic time the first messages arrived
        install_aiokafka_tuning()  # idle consumers (faust's too) stop spinning; lz4 at its fast level
        self.timings: dict[str, float] = dict.fromkeys(
            ("process", "process_cpu", "journal", "store_wait", "sink", "rollups", "commit"), 0.0)
        self.started_at = time.monotonic()
        self.lock = asyncio.Lock()
        self.owned: set[int] = set()
        self._recovered = BatchResult()
        self._inflight: asyncio.Task | None = None  # the batch being written to ClickHouse
        self._rollup_gmv: set[datetime] = set()  # minutes whose rollups are due a refresh
        self._rollup_funnel: set[datetime] = set()
        self._marks_due: dict[int, int] = {}  # partition -> journal seq whose rows are in the facts
        self._last_rollup = 0.0
        self._commit_owed = False  # a commit failed (rebalance) and nothing committed since
        self._backlog = True  # some assigned partition is not read to its high watermark (last look)
        self._crash: BaseException | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._changelog: StateChangelog | None = None
        self.ready = asyncio.Event()
        self.last_batch_at = 0.0
        self.web_port = web_port
        s = settings
        self.topics = [*s.source_topics, s.unrouted_topic, s.rekeyed_topic]
        faust_dir = s.data_path / "faust"
        faust_dir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            # faust hosts the web views and the loop's lifecycle. Its consumer group is this
            # process's own (a killed worker's stale membership in a shared group would hold up
            # the next start for faust's rebalance timeout); it reads only the control topic.
            f"{s.app_id}-web-{uuid.uuid4().hex[:8]}",
            broker=f"kafka://{bootstrap.replace(',', ';kafka://')}",
            store="memory://",
            # faust makes <datadir>/v1/tables even for the memory store; keep it out of the cwd.
            datadir=str(faust_dir),
            web_enabled=web_port > 0,
            web_bind=s.web_host,
            web_port=web_port or 6066,
            web_host=s.web_host,
            topic_replication_factor=s.replication_factor,
            topic_disable_leader=True,
            consumer_auto_offset_reset="latest",
        )
        self.app.task(self._run)
        if self.rows_writer is not None:
            writer = self.rows_writer

            async def write_rows() -> None:
                try:
                    await writer.run(lambda: self.app.should_stop)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # ClickHouse gone past the retry budget: stop, offsets uncommitted
                    self._crash = e
                    log.exception("the rows writer failed; stopping the worker")
                    await self.app.crash(e)

            self.app.task(write_rows)
        control = self.app.topic(s.control_topic, value_serializer="raw", partitions=1)
        self.app.agent(control, name="control")(self._control)
        if web_port > 0:
            from streams.views import register_views

            register_views(self)

    async def _control(self, stream: faust.StreamT) -> None:
        """Operator messages (reserved; consumed and ignored for now)."""
        async for _ in stream:
            pass

    # -- partitions ---------------------------------------------------------------
    def release_partitions(self, parts: set[int]) -> None:
        self.processor.forget(parts)
        self.owned -= parts

    async def recover_partitions(self, parts: set[int]) -> None:
        new = sorted(parts - self.owned)
        if not new or self._changelog is None:
            return
        t0 = time.monotonic()
        journals = await self._changelog.read(new)
        for p in new:
            self._recovered.merge(self.processor.load(p, journals[p]))
            self.owned.add(p)
        log.info("recovered state of partitions %s (%d journal records) in %.2fs", new,
                 sum(len(v) for v in journals.values()), time.monotonic() - t0)

    # -- the loop -------------------------------------------------------------------
    async def _run(self) -> None:
        s = self.settings
        # The stream state is millions of long-lived, acyclic objects: the default collector
        # thresholds rescan them every few thousand allocations (~25% of the hot loop, measured).
        # Collect rarely; objects from start-up (faust, modules) are frozen out of every scan.
        gc.collect()
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                          compression_type=s.producer_compression,
                                          max_request_size=4 * s.max_message_bytes + 65536,
                                          max_batch_size=1024 * 1024)
        await self._producer.start()
        self._changelog = StateChangelog(self.bootstrap, s.changelog_topic, self._producer)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=s.app_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=max(300, int(s.session_timeout_s * 1000) // 5),
            # Also the JoinGroup rebalance timeout: how long a restarted worker may wait for a
            # killed one's membership to lapse. A batch stuck longer (ClickHouse down) loses its
            # partitions and is re-processed by their next owner, idempotently.
            max_poll_interval_ms=int(s.rebalance_timeout_s * 1000),
            # Static membership: a restarted worker takes over its predecessor's membership at
            # once, instead of waiting for a killed process's session to lapse (which noida-db,
            # measured, does not do while a rebalance is in progress).
            group_instance_id=s.worker_instance_id or None,
            partition_assignment_strategy=(RangePartitionAssignor,),  # co-partitioned: views/lives/orders p together
            fetch_max_bytes=32 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await self._consumer.start()
        self._consumer.subscribe(self.topics, listener=_Rebalance(self))
        try:
            while not self.app.should_stop:
                data = await self._consumer.getmany(timeout_ms=int(s.batch_within_s * 1000),
                                                    max_records=s.batch_max)
                if self._consumer.assignment():
                    self.ready.set()  # partitions assigned and their state recovered
                msgs = [SourceMessage.from_kafka(r.topic, r.partition, r.offset, r.key, r.value, r.headers, r.timestamp)
                        for records in data.values() for r in records]
                # Bounded pieces: one piece's ClickHouse write (C++, off the GIL) overlaps the
                # next one's processing, even when a fetch is a few 1,000-event producer batches.
                for piece in _pieces(msgs, PIECE_BYTES):
                    async with self.lock:
                        await self.handle_batch(piece)
            async with self.lock:
                await self.settle()
                await self.refresh_rollups()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # Input never raises here (it is validated and dead-lettered): this is infrastructure
            # (ClickHouse gone past the retry budget, the broker gone) or a bug. Stop the worker;
            # the batch's offsets stay uncommitted and a restart re-processes it, idempotently.
            self._crash = e
            log.exception("the ingest loop failed; stopping the worker (offsets stay uncommitted)")
            await self.app.crash(e)
        finally:
            await self._close_clients()

    async def handle_batch(self, msgs: list[SourceMessage], final: bool = False) -> None:
        """Process a batch and journal it; its ClickHouse write and offset commit run in the
        background while the next batch is fetched and processed (see ``_store``).

        Order is kept: batch N+1's journal may go out before batch N's rows are in ClickHouse
        (each partition's mark says exactly which entries are covered), but N+1's rows and
        offsets always follow N's. ``final`` waits for everything.
        """
        if self._inflight is not None and self._inflight.done():
            await self.settle()  # surfaces a failed write at once, even when input is idle
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        c0 = time.thread_time()
        if msgs and self.first_batch_at is None:
            self.first_batch_at = time.monotonic()
        result = self.processor.process(msgs, now) if msgs else BatchResult()
        if self._recovered.touched_partitions or self._recovered.dead_letters:
            result.merge(self._recovered)
            self._recovered = BatchResult()
        if final or not self.attribute_at_end:
            result.merge(self.processor.attribute_due(now, final=final, caught_up=await self._caught_up()))
        self.processor.commit_journal(result)
        marks = {p: self.processor.partition_state(p).journal_seq for p in result.touched_partitions}
        self.timings["process"] += time.perf_counter() - t0
        self.timings["process_cpu"] += time.thread_time() - c0
        if msgs or result.touched_partitions or result.journal_puts or result.journal_dels:
            await self._send_journal(result)
            t_wait = time.perf_counter()
            await self.settle()
            self.timings["store_wait"] += time.perf_counter() - t_wait
            self._inflight = asyncio.create_task(self._store(result, msgs, marks, final), name="gmv-store")
            await asyncio.sleep(0)  # let it hand its insert to a thread before the next batch's CPU work
        elif self._inflight is None and self._commit_owed and not msgs:
            await self._commit(self.next_offsets)  # a commit lost to a rebalance, with no traffic since
        elif self._inflight is None and (self._rollup_gmv or self._rollup_funnel or self._marks_due) and \
                time.monotonic() - self._last_rollup >= self.settings.rollup_interval_s:
            await self.refresh_rollups()  # input went quiet: the last rows' minutes must not wait for more
        if final:
            await self.settle()

    async def _caught_up(self) -> set[tuple[str, int]] | None:
        """(topic, partition) pairs read up to their high watermark."""
        c = self._consumer
        if c is None:
            return None
        done: set[tuple[str, int]] = set()
        assigned = c.assignment()
        for tp in assigned:
            high = c.highwater(tp)
            try:
                pos = await c.position(tp)
            except Exception:  # not assigned any more (a rebalance under way)
                continue
            if high is not None and pos >= high:
                done.add((tp.topic, tp.partition))
        self._backlog = len(done) < len(assigned)
        return done

    async def settle(self) -> None:
        """Wait for the batch being written to ClickHouse (re-raises its failure)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _send_journal(self, result: BatchResult) -> None:
        """State and forwards are durable before ClickHouse sees any row derived from them:
        a send that failed stops the worker here, before any row or offset depends on it."""
        assert self._producer is not None and self._changelog is not None
        s = self.settings
        t0 = time.perf_counter()
        sends: list[asyncio.Future] = []
        for key, value in result.journal_puts:
            sends.append(await self._changelog.put(int(key.split("|", 1)[0]), key, value))
        for key in result.journal_dels:
            sends.append(await self._changelog.put(int(key.split("|", 1)[0]), key, None))
        for rk in result.rekeyed:
            sends.append(await self._producer.send(s.rekeyed_topic, key=rk.key, value=rk.value,
                                                   partition=rk.partition, headers=[("gmv-src", rk.src.encode())]))
        for dl in result.dead_letters:
            sends.append(await self._producer.send(
                s.dlq_topic, key=dl.msg.key, value=dl.raw,
                headers=[("gmv-reason-code", dl.reason_code.encode()), ("gmv-reason", dl.reason.encode()[:4000]),
                         ("gmv-source-topic", dl.msg.topic.encode()),
                         ("gmv-source-partition", str(dl.msg.partition).encode()),
                         ("gmv-source-offset", str(dl.msg.offset).encode()),
                         ("gmv-element-index", str(dl.index).encode()), ("gmv-src", dl.src.encode())],
            ))
        await self._producer.flush()
        await asyncio.gather(*sends)
        self.timings["journal"] += time.perf_counter() - t0

    async def _store(self, result: BatchResult, msgs: list[SourceMessage], marks: dict[int, int],
                     final: bool = False) -> None:
        """Rows to ClickHouse, then the offsets; then minute rollups and marks: after every
        batch while caught up, at most every ``rollup_interval_s`` under a backlog (each refresh
        is an INSERT…SELECT over the facts: per batch it would cost more than the batch)."""
        t1 = time.perf_counter()
        for table, rows in result.rows.items():
            if rows:
                self.sink.add(table, rows)
        await self.sink.flush()
        t2 = time.perf_counter()
        self.timings["sink"] += t2 - t1
        self._rollup_gmv.update(_minutes(r[14] for r in result.rows[ATTRIBUTED_GMV.name]))
        self._rollup_funnel.update(_minutes(r[1] for r in result.rows[FUNNEL_EVENTS.name]))
        self._marks_due.update(marks)
        # Offsets may go before the marks: rows of unmarked entries are re-emitted on recovery,
        # and their minutes re-rolled, so a crash here loses nothing.
        await self._commit(result.next_offsets)
        self.timings["commit"] += time.perf_counter() - t2
        for m in msgs:
            k = (m.topic, m.partition)
            self.seen_msgs[k] = self.seen_msgs.get(k, 0) + 1
        for key, off in result.next_offsets.items():
            if off > self.next_offsets.get(key, 0):
                self.next_offsets[key] = off
        self.counters.by_topic.update(result.counters.by_topic)
        self.batches += 1
        self.last_batch_at = time.time()
        # Caught up, the worker has time to spare: refresh after every batch (freshness). With a
        # backlog, at most every rollup_interval_s: each refresh is a query over the facts, and
        # catching up matters more than refreshing minutes that are behind anyway.
        if final or not self._backlog or time.monotonic() - self._last_rollup >= self.settings.rollup_interval_s:
            await self.refresh_rollups()

    async def refresh_rollups(self) -> None:
        """Recompute the minutes touched since the last refresh; then mark the journal entries
        whose rows are now in the facts and the rollups (a mark must never precede its rollup)."""
        if self._changelog is None:
            return  # the loop never started: nothing was written, nothing is due
        t0 = time.perf_counter()
        gmv, funnel = self._rollup_gmv, self._rollup_funnel
        self._rollup_gmv, self._rollup_funnel = set(), set()
        await self.sink.refresh_rollups(gmv, funnel)
        marks, self._marks_due = self._marks_due, {}
        for p, seq in marks.items():
            ps = self.processor.partitions.get(p)  # the writer that journalled it (never a new one)
            if ps is not None:
                key, value = ps.mark_key_value(seq)
                await self._changelog.put(p, key, value)
        self._last_rollup = time.monotonic()
        self.timings["rollups"] += time.perf_counter() - t0

    async def _commit(self, next_offsets: dict[tuple[str, int], int]) -> None:
        if not next_offsets or self._consumer is None:
            return
        assigned = self._consumer.assignment()
        offsets = {TopicPartition(t, p): off for (t, p), off in next_offsets.items()
                   if TopicPartition(t, p) in assigned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
            self._commit_owed = False
        except (CommitFailedError, KafkaError) as e:
            # The group rebalanced under this batch: if the partitions stay ours, the commit is
            # retried when the loop is next idle; if not, their new owner re-processes the batch.
            self._commit_owed = True
            log.warning("offset commit failed (%s); retried when idle, or re-processed by the new owner", e)

    async def _close_clients(self) -> None:
        if self._producer is not None:
            try:
                await self._producer.flush()
            except Exception:
                log.debug("final producer flush failed", exc_info=True)
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception:
                    log.debug("closing a Kafka client failed", exc_info=True)
        self._consumer = self._producer = None

    @property
    def crashed(self) -> bool:
        return self._crash is not None

    def crash_reason(self) -> str:
        return f"{type(self._crash).__name__}: {self._crash}" if self._crash else "stopped"

    async def drain(self, final: bool = True, coarse: bool = True) -> None:
        """End of input (``gmv run``, bounded demo): attribute everything pending, flush, commit.

        ``final=False`` (a worker stopping): flush and commit only; pending orders stay in the
        journal and are attributed on time by whichever worker owns them next.
        """
        async with self.lock:
            if self._producer is None or self._changelog is None:
                return  # the loop is not running: not started yet, or stopped (and settled) on its way out
            await self.handle_batch([], final=final)
            await self.settle()
            await self.refresh_rollups()
            if coarse:
                await asyncio.to_thread(self.sink.refresh_coarse_sync)  # hour/day rollups current at exit

    async def end_offsets(self, topic: str) -> dict[tuple[str, int], int]:
        if self._consumer is None:
            return {}
        tps = [TopicPartition(topic, p) for p in range(self.settings.partitions)]
        ends = await self._consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}

    async def unconsumed(self, topics: list[str]) -> int:
        """Messages on these topics not yet handled by this worker (nor committed before it started)."""
        c = self._consumer
        if c is None:
            raise RuntimeError("the worker is not consuming")
        total = 0
        for topic in topics:
            for (t, p), end in (await self.end_offsets(topic)).items():
                done = self.next_offsets.get((t, p))
                if done is None:
                    done = await c.committed(TopicPartition(t, p)) or 0
                total += max(0, end - done)
        return total

    def lag(self) -> int:
        """Messages on the assigned partitions not yet consumed (-1 if unknown)."""
        c = self._consumer
        if c is None:
            return -1
        total = 0
        for tp in c.assignment():
            high = c.highwater(tp)
            if high is None:
                return -1
            total += max(0, high - self.next_offsets.get((tp.topic, tp.partition), 0))
        return total

    def stats(self) -> dict[str, Any]:
        orders, refunds = self.processor.pending()
        return {
            "counters": self.counters.summary(),
            "per_topic": self.counters.per_topic(),
            "batches": self.batches,
            "seconds_in": {k: round(v, 3) for k, v in self.timings.items()},
            "rows_written": self.sink.rows_written,
            "rows_writer": None if self.rows_writer is None else {
                "active": self.rows_writer.active, "rows_written": self.rows_writer.rows_written,
                "next_offset": self.rows_writer.next_offset},
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "lag": self.lag(),
            "pending_orders": orders,
            "held_refunds": refunds,
            "partitions": sorted(self.owned),
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


# ~24k small events per processed piece. Larger pieces mean fewer inserts (each costs ~25 ms
# under load, whatever its size) but less overlap; measured best among 1.5, 3, 6 and 12 MiB.
PIECE_BYTES = 6 * 1024 * 1024


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


def _minutes(times: Iterable[float]) -> set[datetime]:
    """The minutes (UTC) of row times (epoch seconds, see ``streams.state.row_time``)."""
    return {from_ms(m * 60_000) for m in {int(t // 60) for t in times}}
