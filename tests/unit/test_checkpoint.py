"""The checkpoint's refresh lane (gmv.streams.checkpoint): one refresh at a time, none dropped.

The real ``RollupScheduler`` and ``WorkerStats``; the outbox and sink are stand-ins that record
what they were asked (no broker, no ClickHouse: the order of the calls is the rule checked)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gmv.sinks.base import RollupWork
from gmv.streams.checkpoint import Checkpoint
from gmv.streams.rollup_scheduler import RollupScheduler
from gmv.streams.stats import WorkerStats

MINUTE = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


class Outbox:
    started = True

    def __init__(self) -> None:
        self.marks: list[dict] = []

    async def put_marks(self, marks: dict) -> None:
        self.marks.append(marks)


class Sink:
    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.refreshed: list[RollupWork] = []
        self.hold = hold

    async def flush(self, everything: bool = True) -> int:
        return 0

    async def refresh(self, work: RollupWork) -> None:
        if self.hold is not None:
            await self.hold.wait()
        self.refreshed.append(work)


def checkpoint(sink: Sink) -> tuple[Checkpoint, RollupScheduler]:
    scheduler = RollupScheduler(0.0)
    return Checkpoint(Outbox(), sink, None, scheduler, WorkerStats()), scheduler  # type: ignore[arg-type]


def test_a_refresh_asked_for_after_the_lane_ended_and_before_anyone_waited_for_it_still_runs():
    async def run() -> list[RollupWork]:
        sink = Sink()
        cp, scheduler = checkpoint(sink)
        cp._start_refresh(slow=False)
        await asyncio.sleep(0.01)  # the lane ran and ended; nobody has waited for it yet
        assert cp._refreshing is not None and cp._refreshing.done()
        scheduler.note_stale({MINUTE})
        cp._start_refresh(slow=False)
        await cp.wait_refreshed()
        return sink.refreshed

    refreshed = asyncio.run(run())
    assert [w.funnel_minutes for w in refreshed] == [set(), {MINUTE}]


def test_refreshes_asked_for_while_one_runs_are_run_once_after_it_with_everything_noted():
    async def run() -> list[RollupWork]:
        hold = asyncio.Event()
        sink = Sink(hold)
        cp, scheduler = checkpoint(sink)
        cp._start_refresh(slow=False)
        await asyncio.sleep(0.01)
        for minute in (MINUTE, MINUTE.replace(minute=1)):
            scheduler.note_stale({minute})
            cp._start_refresh(slow=False)
        hold.set()
        await cp.wait_refreshed()
        return sink.refreshed

    refreshed = asyncio.run(run())
    assert [w.funnel_minutes for w in refreshed] == [set(), {MINUTE, MINUTE.replace(minute=1)}]


def test_a_failed_refresh_is_not_replaced_and_its_failure_reaches_whoever_waits():
    class Failing(Sink):
        async def refresh(self, work: RollupWork) -> None:
            raise RuntimeError("ClickHouse said no")

    async def run() -> str:
        cp, _ = checkpoint(Failing())
        cp._start_refresh(slow=False)
        await asyncio.sleep(0.01)
        failed = cp._refreshing
        cp._start_refresh(slow=False)
        assert cp._refreshing is failed
        try:
            await cp.wait_stored()
        except RuntimeError as e:
            return str(e)
        return "no failure"

    assert asyncio.run(run()) == "ClickHouse said no"
