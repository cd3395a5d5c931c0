"""``gmv demo``: the whole product in one command, proving its numbers against ground truth.

Starts the embedded broker and ClickHouse under the data dir, the worker (which serves the
dashboard), and the simulator (``gmv.tools.demo_story``). Prints a progress line; Ctrl-C (or the
end of ``--duration``, or of the story) stops the simulator, lets the worker consume everything it
sent, attributes what is pending, and prints a summary and the reconciliation lines
(``gmv.tools.reconcile``): net GMV per model and stage to the fen, every trust score, the expected
alerts. Exit status 0 only when everything matches. A rerun on the same data dir continues the story.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from gmv.schemas.errors import RunFailed
from gmv.schemas.outputs import MODELS, STAGES
from gmv.streams.settings import Settings
from gmv.streams.worker import GmvWorker
from gmv.tools.demo_story import DemoOptions, DemoState, Story, load_dimensions, story_messages
from gmv.tools.embedded import free_port, port_open, require_free_port
from gmv.tools.launch import Launch, LaunchOptions, alert_rules
from gmv.tools.reconcile import Report, reconcile
from gmv.tools.runtime import dashboard_link
from gmv.tools.signals import StopSignals
from gmv.tools.simulator import SCENARIOS

ALERTS_SQL = ("SELECT rule, count() AS n, countIf(state = 'firing') FROM {db:Identifier}.alerts "
              "GROUP BY rule ORDER BY rule")
# Net GMV up to an event time: the progress lines show it up to the attribution watermark, where every
# order is credited. Beyond it, refunds (of orders credited earlier) are stored as they come while the
# orders paid meanwhile still wait (attribution_delay, or a worker catching up at a rerun's start):
# all-time, the figure would fall below the one before for no refund of its time.
NET_SQL = ("SELECT toInt64(sum(credit_fen)) FROM {db:Identifier}.attributed_gmv WHERE model = 'last_touch' "
           "AND toUnixTimestamp64Milli(event_time) < {upto:Int64}")
STORED_TO_SQL = ("SELECT toInt64(max(toUnixTimestamp64Milli(event_time))) + 1 FROM {db:Identifier}.attributed_gmv "
                 "WHERE model = 'last_touch'")


def _say(line: str) -> None:
    print(f"gmv demo: {line}", file=sys.stderr, flush=True)


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


class Demo:
    def __init__(self, settings: Settings, options: DemoOptions,
                 wrap_client: Callable[[Any], Any] | None = None) -> None:
        self.settings = settings
        self.options = options
        self.wrap_client = wrap_client
        self.stop = asyncio.Event()
        self._sql_runner: Any = None

    async def run(self) -> int:
        s = self.settings
        s.data_path.mkdir(parents=True, exist_ok=True)
        state = DemoState.of(s.data_path, self.options)
        scenario = SCENARIOS[state.scenario]
        alert_rules(s)  # a bad rules file is the first thing said, before the port
        port = self._web_port(s)
        launch = Launch(s, LaunchOptions(web_port=port), self.wrap_client)
        story: Story | None = None

        def left() -> str:
            if story is not None:
                story.kill()
            if launch.runtime.kafka is not None:
                launch.runtime.kafka.stop(wait=6.0)  # bounded: SIGINT, 6 s, then SIGKILL
            pending = launch.worker.status(extra=False).uncommitted if launch.worker is not None else 0
            return (f"{pending:,} messages are not committed and will be re-processed when the demo continues "
                    "(nothing is lost; no reconciliation this time)")

        signals = StopSignals("demo", left).install()
        self.stop = signals.requested
        try:
            _say(f"scenario {scenario.name!r} ({scenario.title}), seed {state.seed}; data in {s.data_path}")
            self.settings = s = launch.open()
            folder = load_dimensions(s, launch.runtime.client, state, endless=self.options.duration is None)
            _say(f"dimension data loaded from {folder} (account bindings, SKU catalog; gmv load-dim)")
            worker = await launch.start()
            self._sql_runner = launch.runtime.sql_runner()
            url = dashboard_link(s, port)
            _say(f"dashboard on {url}  (gmv sql works meanwhile; Ctrl-C stops)")
            if state.emitted:
                _say(f"continuing the story after {state.messages or state.emitted:,} messages sent by earlier runs")
            story = Story(s, state, self.options)
            story.start(launch.bootstrap)
            await self._watch(worker, story)
            truth = await story.finish()
            if signals.signal_name == "SIGTERM":
                # Asked to stop, not to finish: store what is in hand (unless ClickHouse is failing), no drain.
                signals.arm_watchdog(s.stop_timeout_s + 15)
                line = await worker.shutdown(drain=False, timeout_s=s.stop_timeout_s)
                signals.disarm()
                _say(f"SIGTERM: {line}; not reconciled")
                return 1
            failing = worker.sink_failing_for()
            if failing is not None:
                _say(f"ClickHouse writes have been failing for {failing:.0f}s; the demo waits for them to recover "
                     "before it reconciles. Ctrl-C again (or SIGTERM) stops now: nothing is lost, the next run "
                     "continues")
            _say(f"{story.why_stopped(self.stop.is_set())}; consuming what it sent, then attributing pending orders")
            await self._wait_consumed(worker)
            await worker.drain(final=True)
            if launch.evaluator is not None:
                await launch.evaluator.finish()
            lag_max_age_s = launch.rules.rules.consumer_lag.max_age_s if launch.rules is not None else None
            report = await asyncio.to_thread(reconcile, self._sql_runner_tsv, s.clickhouse_database, truth,
                                             s.topic_prefix, s.worker_instance_id, launch.evaluator is not None,
                                             lag_max_age_s)
            self._summary(worker, truth, story.sent, report)
            for line in report.lines():
                print(line, flush=True)
            if launch.evaluator is not None:
                await self._alerts_summary()
            if self.options.keep_serving and not worker.crashed:
                self.stop.clear()
                signals.signal_name = ""
                _say(f"the dashboard stays up on {url}; Ctrl-C to exit")
                await self.stop.wait()
            return 0 if report.ok else 1
        finally:
            if story is not None:
                story.close()
            await launch.stop()
            launch.close()

    def _web_port(self, s: Settings) -> int:
        """The dashboard's port: the one asked for (``--web-port`` / GMV_WEB_PORT), which must be free;
        else 6066, or a free one when 6066 is taken (and the demo says so)."""
        if s.web_port:
            require_free_port(s.web_host, s.web_port, s.source("web_port"))
            return s.web_port
        if not port_open(s.web_host, 6066):
            return 6066
        port = free_port()
        _say(f"port 6066 is in use by another program; the dashboard takes port {port} instead "
             "(--web-port chooses one)")
        return port

    async def _watch(self, worker: GmvWorker, story: Story) -> None:
        """A progress line every 2 s until the simulator stops (or we are asked to)."""
        t0 = time.monotonic()
        last_t, last_received, last_sent = t0, 0, 0
        # What earlier runs stored is complete (each ended attributing every pending order): the
        # figure starts there, and follows the watermark once this run's passes it.
        stored_to = await self._stored_to()
        said_live = False
        while not self.stop.is_set() and story.running:
            if worker.crashed:
                raise RunFailed(f"the worker stopped: {worker.crash_reason()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 2.0)
            now = time.monotonic()
            st = worker.status(extra=False)
            c = st.summary()
            dt = max(now - last_t, 1e-6)
            sent_rate = (story.sent - last_sent) / dt
            rate = (c["received"] - last_received) / dt
            last_t, last_received, last_sent = now, c["received"], story.sent
            gmv = await self._net_so_far(max(st.rolled_up_to_ms, stored_to))
            if story.live and not said_live:
                said_live = True
                _say("the story caught up with the clock; its world goes on in real time (new lives, refunds and "
                     "reviews of earlier orders) until Ctrl-C")
            # both counts are this run's: a rerun does not send again what earlier runs sent
            print(f"  {now - t0:5.0f}s  sent {story.sent:>9,} ({sent_rate:6,.0f}/s)  consumed {c['received']:>9,} "
                  f"({rate:6,.0f}/s)  lag {st.lag:>6,}  net GMV {_yuan(gmv)}  "
                  f"dead letters {c['dead_lettered']:,}", file=sys.stderr, flush=True)

    async def _net_so_far(self, upto_ms: int) -> int:
        try:
            return int((await asyncio.to_thread(self._sql, NET_SQL, {"upto": str(upto_ms)})).strip() or 0)
        except Exception:
            return 0

    async def _stored_to(self) -> int:
        try:
            return int((await asyncio.to_thread(self._sql, STORED_TO_SQL)).strip() or 0)
        except Exception:
            return 0

    def _sql(self, query: str, params: dict[str, str] | None = None) -> bytes:
        return self._sql_runner(query, "tsv", {"db": self.settings.clickhouse_database, **(params or {})})

    def _sql_runner_tsv(self, query: str, params: dict[str, Any]) -> bytes:
        return self._sql_runner(query, "tsv", params)

    async def _wait_consumed(self, worker: GmvWorker, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        topics = [*self.settings.source_topics, self.settings.rekeyed_topic]
        while True:
            behind = await worker.unconsumed(topics)
            if behind == 0:
                return
            if worker.crashed:
                raise RunFailed(f"the worker stopped before consuming everything: {worker.crash_reason()}")
            if time.monotonic() > deadline:
                raise RunFailed(f"{behind} messages still unconsumed after {timeout_s:.0f}s")
            await asyncio.sleep(0.2)

    async def _alerts_summary(self) -> None:
        """The alerts of this demo's data: per rule, how many fired and how many are still open."""
        out = await asyncio.to_thread(self._sql, ALERTS_SQL)
        lines = [line.split("\t") for line in out.decode().splitlines()]
        if not lines:
            print("alerts: none fired")
            return
        print("alerts: " + ", ".join(f"{rule} {n} ({open_} open)" for rule, n, open_ in lines)
              + "  (gmv alerts lists them)")

    @staticmethod
    def _summary(worker: GmvWorker, truth: dict[str, Any], sent: int, report: Report) -> None:
        c = worker.status(extra=False).summary()
        msgs = truth.get("messages", {})
        pauses = msgs.get("pause", 0)
        print(f"summary: this run sent {sent:,} messages and consumed received={c['received']:,} "
              f"accepted={c['accepted']:,} duplicates={c['duplicates']:,} dead_lettered={c['dead_lettered']:,}; "
              f"the story so far: {story_messages(truth):,} messages ({msgs.get('duplicate', 0):,} re-sent "
              f"duplicates, {msgs.get('malformed', 0):,} malformed)"
              + (f" and {pauses} pause{'s' if pauses > 1 else ''} of the sender, which sent nothing" if pauses else ""))
        print(f"summary: {truth['orders']:,} orders, gross {_yuan(truth['gross_fen'])}, refunds "
              f"{_yuan(truth['refund_fen'])} ({truth['refunds']:,}), net {_yuan(truth['net_fen'])}")
        print("  net GMV credited per model and stage, in fen:")
        for m in MODELS:
            cells = "  ".join(f"{st}={report.credits.clickhouse.get(m, {}).get(st, 0):,}" for st in STAGES)
            print(f"  {m:<15} {cells}")
