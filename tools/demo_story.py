"""The demo's story: which scenario a data dir holds and how far it was sent (``demo.json``), and the
simulator process that sends the rest of it.

A rerun on the same data dir continues the same story: ``demo.json`` remembers the scenario, seed,
start, scale and how many messages were emitted; the simulator regenerates that prefix (for the
ground truth) without re-sending it. Format of ``demo.json``: one JSON object
``{"scenario": str, "seed": int, "start": ISO-8601 with offset, "scale": float, "emitted": int,
"messages": int, "story": int}`` (``emitted``: the resume point in the simulator's stream, which counts the
incidents' pause markers; ``messages``: the messages sent, which does not),
rewritten whole (write to ``demo.tmp``, then rename) as the simulator reports progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gmv.schemas.errors import ConfigurationError, RunFailed
from gmv.streams.settings import Settings
from gmv.tools.children import die_with_parent
from gmv.tools.simulator import SCENARIOS, default_start


@dataclass(frozen=True)
class DemoOptions:
    scenario: str | None = None  # None: the data dir's, or mixed
    seed: int | None = None
    scale: float | None = None
    rate: float = 1500.0
    duration: float | None = None
    keep_serving: bool = False
    incident_pause: float | None = None


# The simulator's stories as this version tells them (tests/unit/test_simulator.py pins them): a data
# dir holding an earlier telling cannot continue, its prefix would regenerate other messages.
# 2: live rooms with viewers sell every few minutes (Scenario.steady_live_sales).
STORY_VERSION = 2


@dataclass
class DemoState:
    scenario: str
    seed: int
    start: str
    scale: float = 1.0
    emitted: int = 0  # the resume point (--skip): pause markers included
    messages: int = 0  # messages sent by all runs so far: pause markers excluded
    story: int = 1  # STORY_VERSION of the simulator that began it (a demo.json without it: 1)

    @classmethod
    def load(cls, path: Path) -> DemoState | None:
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def of(cls, data_path: Path, options: DemoOptions) -> DemoState:
        """The data dir's story, or a new one; a rerun asking for another story is refused."""
        state = cls.load(data_path / "demo.json")
        if state is None:
            name = options.scenario or "mixed"
            return DemoState(name, options.seed if options.seed is not None else 1,
                             default_start(SCENARIOS[name].days).isoformat(),
                             options.scale if options.scale is not None else SCENARIOS[name].demo_scale,
                             story=STORY_VERSION)
        if state.story != STORY_VERSION:
            raise ConfigurationError(
                f"{data_path} holds a demo begun by an earlier gmv, whose simulator told the story "
                f"{state.scenario!r} differently; it cannot be continued: use another --data-dir (or delete this one)")
        if (options.scenario and options.scenario != state.scenario) or \
                (options.seed is not None and options.seed != state.seed) or \
                (options.scale is not None and options.scale != state.scale):
            raise ConfigurationError(
                f"{data_path} holds the demo of scenario {state.scenario!r} (seed {state.seed}, scale "
                f"{state.scale:g}); a rerun continues it. For another scenario, seed or scale, use another --data-dir")
        return state


class Story:
    """The simulator, in a process of its own (a core of its own), sending the rest of the story."""

    def __init__(self, settings: Settings, state: DemoState, options: DemoOptions) -> None:
        self.settings = settings
        self.state = state
        self.options = options
        self.state_path = settings.data_path / "demo.json"
        self.truth_path = settings.data_path / "demo-truth.json"
        self.resumed = state.emitted
        self.emitted = state.emitted
        self.sent = 0  # messages this run sent (the progress lines' "sent", next to its "consumed")
        self.messages = state.messages or state.emitted  # the story's so far (a demo.json before it: emitted)
        self.ended = False  # the scenario ran out of story (not stopped, not out of time)
        self.live = False  # an endless world caught up with the wall clock: it goes on in real time
        self.proc: subprocess.Popen | None = None
        self._started = 0.0
        self._reader: asyncio.Task | None = None

    def start(self, bootstrap: str) -> None:
        s, st, o = self.settings, self.state, self.options
        cmd = [sys.executable, "-m", "gmv.tools.simulator", "--scenario", st.scenario, "--seed", str(st.seed),
               "--start", st.start, "--kafka", bootstrap, "--topic-prefix", s.topic_prefix, "--scale", str(st.scale),
               "--rate", str(o.rate), "--skip", str(st.emitted), "--truth", str(self.truth_path),
               "--engaged-ms", str(s.engaged_ms), "--lookback-days", str(s.lookback.total_seconds() / 86400),
               "--half-life-hours", str(s.half_life.total_seconds() / 3600), "--progress"]
        if o.duration is not None:
            cmd += ["--duration", str(o.duration)]
        else:  # until Ctrl-C: the world goes on after the scenario's days, in real time once caught up
            cmd += ["--endless"]
        if o.incident_pause is not None:
            cmd += ["--incident-pause", str(o.incident_pause)]
        # Its own session: a Ctrl-C reaches the demo, which stops the simulator in order.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=die_with_parent())
        self._started = time.monotonic()
        self._reader = asyncio.create_task(self._read_progress())

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def _read_progress(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await asyncio.to_thread(self.proc.stdout.readline)
            if not line:
                return
            with contextlib.suppress(ValueError, KeyError):
                doc = json.loads(line)
                self.emitted = int(doc["emitted"])
                self.sent = int(doc.get("sent", self.sent))
                self.messages = int(doc.get("messages", self.emitted))
                self.ended = self.ended or bool(doc.get("ended"))
                self.live = self.live or bool(doc.get("live"))
                if self.emitted > self.state.emitted:
                    self.state.emitted = self.emitted  # a crash of the demo resumes near here
                    self.state.messages = self.messages
                    self.state.save(self.state_path)

    async def finish(self) -> dict[str, Any]:
        """Stop sending (if it has not), wait for the simulator; its ground truth."""
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(proc.wait, 60)
        if self._reader is not None:
            await self._reader
        if proc.returncode != 0:
            raise RunFailed(f"the simulator failed (exit {proc.returncode}); see its error above")
        truth = json.loads(self.truth_path.read_text())
        self.state.emitted = truth["emitted"]
        self.state.messages = self.messages = story_messages(truth)
        self.sent = int(truth.get("sent", self.sent))
        self.state.save(self.state_path)
        return truth

    def kill(self) -> None:
        """At once (a second Ctrl-C)."""
        if self.running:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def why_stopped(self, asked_to_stop: bool) -> str:
        """One line: why the simulator stopped sending."""
        ran = time.monotonic() - self._started
        duration = self.options.duration
        if self.ended and self.emitted <= self.resumed:
            return (f"the story of this data dir was sent in full by earlier runs ({self.messages:,} messages); nothing "
                    "left to send, so this run reconciles what is stored (a new story needs another --data-dir)")
        if self.ended:
            planned = f" of the {duration:.0f} s asked for" if duration is not None else ""
            return (f"the scenario's story ended after {ran:.0f} s{planned} ({self.messages:,} messages in all); the "
                    "simulator has nothing more to send")
        if asked_to_stop:
            return "stopped as asked"
        return f"--duration {duration:g} s reached" if duration is not None else "the simulator stopped"


def story_messages(truth: dict[str, Any]) -> int:
    """The messages the story sent so far, by the ground truth: a pause of the sender is no message."""
    return sum(n for kind, n in truth.get("messages", {}).items() if kind != "pause")


def load_dimensions(settings: Settings, client: Any, state: DemoState, endless: bool = False) -> Path:
    """The scenario's account bindings and SKU catalog, written under the data dir (as ``gmv simulate
    --dims`` would) and loaded as ``gmv load-dim`` would: the cookbook views need them. ``endless``:
    the catalog also lists the days after the scenario's, up to tomorrow (a rerun loads the days since)."""
    from gmv.tools.load_dim import insert_rows, validate_file
    from gmv.tools.simulator.cli import write_dimension_files
    from gmv.tools.simulator.dimensions import dimensions
    from gmv.tools.simulator.world import World

    start = datetime.fromisoformat(state.start)
    world = World(SCENARIOS[state.scenario].scaled(state.scale), state.seed, start)
    days = world.sc.days
    if endless:
        days = max(days, (datetime.now(start.tzinfo) - start).days + 1)
    folder = settings.data_path / "dims"
    dims = dimensions(world.state.shops, days, world.start_ms, world.seed_label)
    for kind, path in write_dimension_files(dims, folder).items():
        rows, errors = validate_file(kind, path)
        if errors:
            raise RunFailed(f"the simulator's {kind} file does not validate: {errors[0]}")
        insert_rows(client, settings.clickhouse_database, kind, rows)
    return folder
