"""The checkpoint's refresh lane (gmv.streams.checkpoint): one refresh at a time, none dropped.

The real ``RollupScheduler`` and ``WorkerStats``; the outbox and sink are stand-ins that record
what they were asked (no broker, no ClickHouse: the order of the calls is the rule checked)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gmv.sinks.base import RollupWork
from gmv.sinks.exceptions import RefreshYielded
from gmv.streams.checkpoint import Checkpoint
from gmv.streams.core.journal import Confirmation
from gmv.streams.core.processor import BatchResult
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
    owes = False

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


class Calls(Outbox):
    """An outbox and an owing sink in one: every call, in order."""

    owes = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    async def put_marks(self, marks: dict) -> None:
        self.calls.append(("marks", sorted(c.pending_ids[0] for cs in marks.values() for c in cs)))

    async def flush(self, everything: bool = True) -> int:
        self.calls.append(("flush", everything))
        return 0

    async def refresh(self, work: RollupWork) -> None:
        self.calls.append(("refresh", "slow" if work.level_minutes or work.level_funnel_minutes else "fast"))

    async def record_owed(self, work: RollupWork) -> None:
        self.calls.append(("owed", sorted(work.level_minutes | work.level_funnel_minutes)))

    def yield_slow(self, on: bool) -> None:
        pass


def _noted(scheduler: RollupScheduler, minute: datetime, record: str) -> None:
    """A batch's record, whose credit minute is due a slow refresh."""
    scheduler.note_owed(RollupWork(level_minutes={minute}))
    scheduler.note(BatchResult(), {0: [Confirmation(None, [record])]})  # type: ignore[arg-type]


def _owing(sink: Calls) -> tuple[Checkpoint, RollupScheduler]:
    scheduler = RollupScheduler(0.0)
    return Checkpoint(sink, sink, None, scheduler, WorkerStats()), scheduler  # type: ignore[arg-type]


def test_marks_follow_a_fast_refresh_once_every_row_is_flushed_and_the_slow_work_they_owe_is_recorded():
    async def run() -> list[tuple]:
        sink = Calls()
        cp, scheduler = _owing(sink)
        _noted(scheduler, MINUTE, "touch/a")
        await cp.refresh(slow=False)
        return sink.calls

    assert asyncio.run(run()) == [("flush", True), ("refresh", "fast"), ("owed", [MINUTE]), ("marks", ["touch/a"])]


def test_owed_work_is_recorded_once_and_marks_follow_fast_refreshes_at_most_every_owed_interval():
    async def run() -> list[tuple]:
        sink = Calls()
        cp, scheduler = _owing(sink)
        _noted(scheduler, MINUTE, "touch/a")
        await cp.refresh(slow=False)
        _noted(scheduler, MINUTE, "touch/b")
        await cp.refresh(slow=False)  # within the interval: the marks wait
        await cp.refresh(slow=False, owe_now=True)  # a stop or a rebalance: now, and MINUTE is owed already
        return sink.calls[4:]

    assert asyncio.run(run()) == [("refresh", "fast"), ("marks", []),
                                  ("flush", True), ("refresh", "fast"), ("marks", ["touch/b"])]


def test_after_a_slow_refresh_what_comes_due_again_is_owed_again():
    async def run() -> list[tuple]:
        sink = Calls()
        cp, scheduler = _owing(sink)
        _noted(scheduler, MINUTE, "touch/a")
        await cp.refresh(slow=False)
        await cp.refresh(slow=True)
        _noted(scheduler, MINUTE, "touch/b")
        await cp.refresh(slow=False, owe_now=True)
        return sink.calls[4:]

    assert asyncio.run(run()) == [("flush", True), ("refresh", "slow"), ("marks", []),
                                  ("flush", True), ("refresh", "fast"), ("owed", [MINUTE]), ("marks", ["touch/b"])]


def test_a_sink_that_keeps_no_owed_work_holds_the_marks_until_the_slow_refresh():
    class NotOwing(Calls):
        owes = False

    async def run() -> list[tuple]:
        sink = NotOwing()
        cp, scheduler = _owing(sink)
        _noted(scheduler, MINUTE, "touch/a")
        await cp.refresh(slow=False, owe_now=True)
        await cp.settle(slow=False)  # a rebalance: with nowhere to owe it, the slow refresh runs
        return sink.calls

    assert asyncio.run(run()) == [("refresh", "fast"), ("marks", []),
                                  ("flush", True), ("refresh", "slow"), ("marks", ["touch/a"])]


def test_a_stop_or_a_rebalance_records_the_slow_work_no_mark_waits_for():
    async def run() -> list[tuple]:
        sink = Calls()
        cp, scheduler = _owing(sink)
        scheduler.note_stale({MINUTE})  # a view's funnel minute: its levels are due, no record is pending
        await cp.settle(slow=False)
        return sink.calls

    assert asyncio.run(run()) == [("flush", True), ("refresh", "fast"), ("owed", [MINUTE]), ("marks", [])]


def test_owed_work_whose_record_failed_is_recorded_by_the_next_release():
    class FailingOnce(Calls):
        async def record_owed(self, work: RollupWork) -> None:
            if not any(c[0] == "failed" for c in self.calls):
                self.calls.append(("failed",))
                raise RuntimeError("ClickHouse said no")
            await super().record_owed(work)

    async def run() -> list[tuple]:
        sink = FailingOnce()
        cp, scheduler = _owing(sink)
        _noted(scheduler, MINUTE, "touch/a")
        try:
            await cp.refresh(slow=False)
        except RuntimeError:
            pass
        _noted(scheduler, MINUTE, "touch/b")
        await cp.refresh(slow=False, owe_now=True)
        return sink.calls[3:]

    assert asyncio.run(run()) == [("flush", True), ("refresh", "fast"), ("owed", [MINUTE]), ("marks", ["touch/b"])]


def test_a_stop_during_a_slow_refresh_takes_the_lane_at_its_next_statement_and_owes_the_rest():
    class Slow(Calls):
        def __init__(self) -> None:
            super().__init__()
            self.hold = asyncio.Event()
            self.yielding = False

        def yield_slow(self, on: bool) -> None:
            self.yielding = on

        async def refresh(self, work: RollupWork) -> None:
            if work.level_minutes:  # a slow refresh: its statements run until a stop asks for the lane
                await self.hold.wait()
                if self.yielding:
                    self.calls.append(("yielded",))
                    raise RefreshYielded("a stop")
            await super().refresh(work)

    async def run() -> tuple[list[tuple], bool]:
        sink = Slow()
        cp, scheduler = _owing(sink)
        _noted(scheduler, MINUTE, "touch/a")
        cp._start_refresh(slow=True)
        await asyncio.sleep(0.01)
        stop = asyncio.create_task(cp.settle(slow=False))
        await asyncio.sleep(0.01)
        sink.hold.set()
        await stop
        return sink.calls, sink.yielding

    calls, yielding = asyncio.run(run())
    assert calls == [("flush", True), ("yielded",),
                     ("flush", True), ("refresh", "fast"), ("owed", [MINUTE]), ("marks", ["touch/a"])]
    assert not yielding  # the next slow refresh runs to its end
