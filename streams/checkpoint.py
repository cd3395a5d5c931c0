"""The commit order, owned in one place: what a processed batch must reach, and in which order.

For each batch the ingest loop hands over (``submit``), in this order:

1. **journal**: its journal entries (state changelog), forwards (rekeyed topic) and dead letters
   (DLQ topic) are acknowledged by the broker, before any row derived from them exists anywhere;
2. **rows**: its rows reach the sink (ClickHouse, or the rows topic to the one ClickHouse writer);
3. **offsets**: its source offsets are committed to the consumer group;
4. **rollups**: the minute rollups of its minutes are recomputed from the facts (at most every
   ``FRESH_INTERVAL_S`` while caught up, every ``rollup_interval_s`` under a backlog), and the slow
   refresh (markov, scores, levels) when it is due (``RollupScheduler``);
5. **marks**: the journal marks saying ClickHouse holds the rows of its entries, only after a
   refresh that leaves nothing covering those rows due, or after a fast refresh that first wrote
   the deferred rows and recorded the slow work still due in ``refresh_owed`` (``gmv.sinks.owed``).

Step 1 runs in the foreground. Steps 2–3 of batch N run in the background while batch N+1 is
fetched and processed (ClickHouse parses the rows in C++, off the GIL), and batch N+1's steps 2–3
start only after N's have ended. Steps 4–5 run in a lane of their own (the sink refreshes on a
session of its own): a refresh starts after the rows it covers are stored, takes every minute
noted by then, and may overlap the next batch's rows; one refresh runs at a time, and a refresh
asked for while one runs follows it. So rows, offsets, rollups and marks keep their order per
batch. A crash between any two steps loses nothing and counts nothing twice: offsets before rows
is impossible; rows without offsets are re-processed into identical rows (absorbed by the
ReplacingMergeTree); offsets without rollups or marks leave entries unconfirmed, whose rows are
re-emitted and whose minutes re-rolled at the next start (the funnel's, which have no journal
entry to re-emit, are found from the events rows stored since the last funnel refresh); marks
whose slow work is owed leave it in ``refresh_owed``, which the next start takes up.

The parts it drives (``Outbox``, the sink, ``Offsets``, ``RollupScheduler``, ``WorkerStats``) do not
know of each other or of the checkpoint: nothing calls back.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gmv.sinks.base import BatchingSink
from gmv.sinks.exceptions import RefreshYielded
from gmv.streams.core.decode import SourceMessage
from gmv.streams.core.processor import BatchResult
from gmv.streams.faults import crash_point
from gmv.streams.offsets import Offsets
from gmv.streams.outbox import Outbox
from gmv.streams.rollup_scheduler import Marks, RollupScheduler
from gmv.streams.stats import WorkerStats

log = logging.getLogger(__name__)

# A wait for the batch before this long is worth a line: reading stops meanwhile, and past
# GMV_MAX_POLL_INTERVAL_S the group takes the partitions away (the soak's slow refreshes did).
LONG_STORE_WAIT_S = 10.0


class Checkpoint:
    def __init__(self, outbox: Outbox, sink: BatchingSink, offsets: Offsets, scheduler: RollupScheduler,
                 stats: WorkerStats) -> None:
        self.outbox = outbox
        self.sink = sink
        self.offsets = offsets
        self.scheduler = scheduler
        self.stats = stats
        self._inflight: asyncio.Task | None = None
        self._refreshing: asyncio.Task | None = None  # the refresh lane's task, while one runs
        self._refresh_again: bool | None = None  # a refresh asked for while one ran (its ``slow``)
        self._refresh_lock = asyncio.Lock()
        self._abandoned = False

    @property
    def idle(self) -> bool:
        return self._inflight is None and self._refreshing is None

    @property
    def finished(self) -> bool:
        """The batch in flight, or the refresh, has ended (``wait_stored`` returns at once, or raises
        its failure)."""
        return any(t is not None and t.done() for t in (self._inflight, self._refreshing))

    async def submit(self, result: BatchResult, msgs: list[SourceMessage], marks: Marks, final: bool = False) -> None:
        """Step 1 now; steps 2–3 in the background, once the batch before is through them; steps 4–5
        in the refresh lane (``_start_refresh``), which may still be refreshing an earlier batch."""
        with self.stats.timing("journal"):
            await self.outbox.send(result)
        t0 = time.monotonic()
        with self.stats.timing("store_wait"):
            await self.wait_stored()
        if (waited := time.monotonic() - t0) >= LONG_STORE_WAIT_S:
            log.warning("reading waited %.1f s for ClickHouse to store the batch before (a refresh or a merge held "
                        "the engine); past GMV_MAX_POLL_INTERVAL_S the worker would give up its partitions",
                        waited)
        self._inflight = asyncio.create_task(self._store(result, msgs, marks, final), name="gmv-checkpoint")
        await asyncio.sleep(0)  # let it hand its insert to a thread before the next batch's CPU work
        if final:
            await self.wait_stored()

    async def _store(self, result: BatchResult, msgs: list[SourceMessage], marks: Marks, final: bool) -> None:
        with self.stats.timing("sink"):
            for table, rows in result.rows.items():
                if rows:
                    self.sink.add(table, rows)
            await self.sink.flush(everything=final)  # the trust facts wait for a refresh's full flush
        crash_point("before_offset_commit")
        with self.stats.timing("commit"):
            await self.offsets.commit(result.next_offsets)
        crash_point("after_offset_commit")
        self.stats.stored(result, msgs)
        self.scheduler.note(result, marks)
        if final:
            await self.wait_refreshed()
            await self.refresh(slow=True)
        elif self.scheduler.due():
            self._start_refresh(slow=self.scheduler.slow_due())

    def _start_refresh(self, slow: bool) -> None:
        """Steps 4-5 in their lane, beside the next batch's rows; one refresh at a time (one asked for
        while another runs follows it, and covers everything noted by then)."""
        lane = self._refreshing
        if lane is not None and not lane.done():
            self._refresh_again = slow or bool(self._refresh_again)
            return
        if lane is not None and (lane.cancelled() or lane.exception() is not None):
            return  # its failure is raised by the next wait_stored, which ends the worker
        self._refreshing = asyncio.create_task(self._refresh_lane(slow), name="gmv-refresh")

    async def _refresh_lane(self, slow: bool) -> None:
        while True:
            await self.refresh(slow)
            if self._refresh_again is None:
                return
            slow, self._refresh_again = self._refresh_again, None

    async def refresh(self, slow: bool = True, owe_now: bool = False) -> None:
        """Steps 4 and 5 for everything noted so far (``slow``: the scores and levels too; ``owe_now``: the
        marks follow this fast refresh whatever the interval, what they owe recorded)."""
        if not self.outbox.started or self._abandoned:
            return  # nothing was written, nothing is due; or the process gave up its writes (a stop)
        async with self._refresh_lock:
            with self.stats.timing("rollups"):
                r = self.scheduler.take(slow, owes=self.sink.owes, now=owe_now)
                if slow or r.owing:
                    await self.sink.flush()  # the trust facts that waited (a mark says every row is stored)
                try:
                    await self.sink.refresh(r.work)
                except RefreshYielded:  # a stop or a rebalance took the lane: this slow work is due again
                    self.scheduler.untake(r)
                    return
                if r.owed:
                    await self.sink.record_owed(r.owed)
                self.scheduler.applied(r)
                await self.outbox.put_marks(r.marks)
                if r.owing:
                    crash_point("after_owed_marks")

    async def wait_stored(self) -> None:
        """Wait for the batch in flight (re-raises its failure, or the refresh lane's)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task
        if self._refreshing is not None and self._refreshing.done():
            await self.wait_refreshed()

    async def wait_refreshed(self) -> None:
        """Wait for the refresh lane (re-raises its failure)."""
        task, self._refreshing = self._refreshing, None
        if task is not None:
            await task

    async def settle(self, slow: bool = True) -> None:
        """Everything through every step: the batch in flight, then every rollup and mark due (the end
        of input, a rebalance, a stop). ``slow=False``: the slow refresh may stay owed (a sink that keeps
        owed work): the marks follow the fast refresh, and this process or the next start does it."""
        await self.wait_stored()
        if slow or not self.sink.owes:
            await self.wait_refreshed()
            await self.refresh(slow=True)
            return
        self.sink.yield_slow(True)  # a slow refresh under way stops at its next statement, not its end
        try:
            await self.wait_refreshed()
            await self.refresh(slow=False, owe_now=True)
        finally:
            self.sink.yield_slow(False)

    async def when_idle(self) -> None:
        """Input went quiet: a commit a rebalance cost us, or the last minutes' rollups, must not wait
        for the next batch; nor, once input has been quiet a moment, the slow refresh (the markov
        credits, levels and scores of the last batches)."""
        if self.finished:
            await self.wait_stored()  # surfaces a failed write at once, even when input is idle
        if not self.idle:
            return
        if self.offsets.owed:
            await self.offsets.commit_owed()
        elif self.scheduler.pending and self.scheduler.interval_passed():
            self._start_refresh(slow=self.scheduler.slow_due(idle=True))

    def abandon(self) -> None:
        """The process is stopping: the write in flight will fail (``SinkStopped``); nobody waits for it."""
        for task in (self._inflight, self._refreshing):
            if task is not None:
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._inflight = self._refreshing = None
        self._abandoned = True
