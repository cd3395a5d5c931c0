"""``gmv simulate``: write a scenario to JSONL or send it to Kafka, with its ground truth.

The same scenario, seed, scale and ``--start`` give byte-identical output.
"""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from gmv.schemas.errors import RunFailed
from gmv.schemas.events import TOPIC_NAMES
from gmv.tools.simulator.scenarios import DAY_MS, HOUR_MS, SCENARIOS, default_start
from gmv.tools.simulator.truth import GroundTruth, event_ms
from gmv.tools.simulator.world import World


def write_jsonl(world: World, out: Path, truth: GroundTruth, max_messages: int | None = None) -> int:
    n = 0
    with open(out, "wb") as fh:
        for msg in world.messages():
            if max_messages is not None and n >= max_messages:
                break
            if msg.kind == "pause":
                continue  # a file has no sending time to pause
            fh.write(msg.value + b"\n")
            truth.observe(msg)
            n += 1
    return n


class KafkaWriter:
    """Sends the stream to the source topics at a target rate; stops on request, flushing first."""

    def __init__(self, bootstrap: str, topics: dict[str, str], compression: str | None = "lz4") -> None:
        from kafka import KafkaProducer

        self.topics = topics  # event_type -> topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024,
                                      acks="all", max_request_size=2 * 1024 * 1024, compression_type=compression)
        self.failures: list[str] = []
        self.stop = False
        self.ended = False  # the scenario ran out of messages (not stopped, not out of time)
        self.sent = 0  # messages this run sent to Kafka (not the skipped ones, not the pause markers)
        self.pauses = 0  # pause markers among the messages emitted so far: a pause sends nothing
        self.live = False  # the stream caught up with the wall clock: it goes on in real time

    def run(self, world: World, truth: GroundTruth, rate: float, duration_s: float | None = None,
            skip: int = 0, max_messages: int | None = None,
            on_progress: Callable[[int, bool, bool], None] | None = None, realtime: bool = False) -> int:
        """Returns messages emitted in all (skipped ones included): the resume point. ``on_progress``
        gets (emitted, done, ended): ``ended`` once the scenario's story has no message left.
        ``realtime``: no event is sent before the wall clock reaches its event time (an endless world
        catches up with the clock at ``rate``, then goes on as time passes)."""
        n = sent = 0
        self.ended = False
        self.sent = self.pauses = 0
        started = time.monotonic()
        started_wall = time.time()
        last_report = 0.0
        for msg in world.messages():
            if max_messages is not None and n >= max_messages:
                break
            if realtime and n >= skip and msg.event is not None:  # before it counts: it may not go
                ahead_s = event_ms(msg.event["event_time"]) / 1000 - time.time()
                if ahead_s > 0:
                    self.producer.flush()
                    if not self.live:
                        self.live = True
                        if on_progress is not None:
                            on_progress(n, False, False)
                    resume_wall = time.time() + ahead_s
                    while not self.stop and time.time() < resume_wall:
                        time.sleep(min(0.2, max(resume_wall - time.time(), 0.0)))
                    if self.stop:
                        break
                    # paced from here: the Kafka timestamps say when each message went, not when a
                    # rate begun long ago would have sent it
                    started, started_wall = time.monotonic() - sent / rate, time.time() - sent / rate
            n += 1
            truth.observe(msg)
            if msg.kind == "pause":
                self.pauses += 1
            if n <= skip:
                continue  # sent by an earlier run on this data dir: regenerated only for the truth
            if msg.kind == "pause":
                # The sender stops; its schedule does not: what was due meanwhile goes out at once
                # afterwards, stamped with the time it was due (as a buffering upstream would).
                self.producer.flush()
                resume = time.monotonic() + msg.pause_s
                while not self.stop and time.monotonic() < resume:
                    time.sleep(min(0.2, resume - time.monotonic()))
                continue
            due_ms = int((started_wall + sent / rate) * 1000)
            fut = self.producer.send(self.topics[msg.topic_type], key=msg.key.encode() if msg.key else None,
                                     value=msg.value, timestamp_ms=due_ms)
            fut.add_errback(lambda e: self.failures.append(str(e)))
            sent += 1
            self.sent = sent
            now = time.monotonic()
            ahead = sent / rate - (now - started)
            if ahead > 0.02:
                time.sleep(ahead)
            if on_progress is not None and now - last_report >= 0.5:
                self.producer.flush()
                on_progress(n, False, False)
                last_report = now
            if self.stop or (duration_s is not None and now - started >= duration_s):
                break
        else:
            self.ended = True  # the story has no message left
        self.producer.flush()
        self.producer.close()
        if self.failures:
            raise RunFailed(f"{len(self.failures)} messages could not be sent (first: {self.failures[0]})")
        if on_progress is not None:
            on_progress(n, True, self.ended)
        return n


def write_dimension_files(dims: dict[str, list[dict]], folder: Path) -> dict[str, Path]:
    """``accounts.csv`` and ``skus.csv`` in ``folder``, in the shape ``gmv load-dim`` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, rows in dims.items():
        path = out[kind] = folder / f"{kind}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return out


def main(argv: list[str] | None = None) -> int:
    """``gmv simulate``: write a scenario to JSONL or Kafka, and its ground truth."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="gmv simulate", description="The load generator: write a scenario to a JSONL file (--out) or send it "
        "to Kafka (--kafka), with its ground truth (--truth) for gmv reconcile.")
    ap.add_argument("--scenario", default="mixed", choices=sorted(SCENARIOS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="audience multiplier: more events per simulated minute")
    ap.add_argument("--start", help="scenario start (ISO-8601 with offset); default: midnight Asia/Shanghai "
                                    "<days> days ago")
    ap.add_argument("--out", type=Path, help="write JSONL here (one message per line)")
    ap.add_argument("--kafka", help="bootstrap servers: send to the source topics instead")
    ap.add_argument("--topic-prefix", default="gmv.")
    ap.add_argument("--rate", type=float, default=2000.0, help="messages/s to Kafka (default 2000)")
    ap.add_argument("--compression", default="lz4", choices=["none", "gzip", "lz4"],
                    help="producer compression (default lz4, as production producers of JSON would use)")
    ap.add_argument("--duration", type=float, help="stop sending to Kafka after this many seconds")
    ap.add_argument("--max-messages", type=int, help="stop after this many messages")
    ap.add_argument("--skip", type=int, default=0, help="regenerate but do not send the first N messages (resume)")
    ap.add_argument("--truth", type=Path, help="write the ground truth JSON here")
    ap.add_argument("--dims", type=Path, help="write the matching dimension files here (accounts.csv, skus.csv) "
                                              "for gmv load-dim")
    ap.add_argument("--engaged-ms", type=int, default=3000)
    ap.add_argument("--lookback-days", type=float, default=7.0)
    ap.add_argument("--half-life-hours", type=float, default=24.0)
    ap.add_argument("--incident-pause", type=float, help="incidents preset: how long the sender pauses (default 45 s)")
    ap.add_argument("--progress", action="store_true", help="print a JSON progress line to stdout every 0.5 s")
    ap.add_argument("--endless", action="store_true",
                    help="with --kafka: after the scenario's days the world goes on (new days, lives, refunds and "
                         "reviews of earlier orders), no event sent before its time: until stopped. The presets "
                         "told for their planned incidents (incidents, routines) end with their story")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    a = ap.parse_args(argv)
    if a.list:
        for sc in SCENARIOS.values():
            print(f"{sc.name:<12} {sc.days} days  {sc.title}")
        return 0
    if bool(a.out) == bool(a.kafka):
        ap.error("give exactly one of --out FILE.jsonl or --kafka BOOTSTRAP")
    if a.scale <= 0:
        ap.error("--scale must be > 0")
    if a.endless and not a.kafka:
        ap.error("--endless needs --kafka: a file has no end to wait for")
    sc = SCENARIOS[a.scenario].scaled(a.scale)
    start = datetime.fromisoformat(a.start) if a.start else default_start(sc.days)
    if start.tzinfo is None:
        ap.error("--start needs a UTC offset, e.g. 2026-11-01T00:00:00+08:00")
    endless = a.endless and not sc.ends  # a story of planned incidents ends with them, --endless or not
    world = World(sc, a.seed, start, engaged_ms=a.engaged_ms, endless=endless)
    truth = GroundTruth(a.engaged_ms, int(a.lookback_days * DAY_MS), int(a.half_life_hours * HOUR_MS))
    truth.expected_alerts = world.incidents.expected  # filled in as the world plans its days
    if world.routines is not None:
        truth.alerts_judged_from_ms = world.routines.judged_from_ms(world.start_ms)
    dims = world.dimensions()
    truth.set_dimensions(dims)
    if a.dims:
        write_dimension_files(dims, a.dims)
    if a.incident_pause is not None:
        world.incidents.pause_s = a.incident_pause
    header = {"scenario": sc.name, "seed": a.seed, "scale": a.scale, "start": start.isoformat()}
    t0 = time.monotonic()
    if a.out:
        n = write_jsonl(world, a.out, truth, a.max_messages)
    else:
        topics = {event_type: f"{a.topic_prefix}{name}" for event_type, name in TOPIC_NAMES.items()}
        writer = KafkaWriter(a.kafka, topics, None if a.compression == "none" else a.compression)
        signal.signal(signal.SIGINT, lambda *_: setattr(writer, "stop", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(writer, "stop", True))

        def progress(emitted: int, done: bool, ended: bool) -> None:
            # emitted: the resume point (--skip); sent: this run's messages; messages: the story's so far
            if a.progress:
                print(json.dumps({"emitted": emitted, "sent": writer.sent, "messages": emitted - writer.pauses,
                                  "live": writer.live, "done": done, "ended": ended}), flush=True)

        n = writer.run(world, truth, a.rate, a.duration, a.skip, a.max_messages, progress, realtime=endless)
    result = {**header, "emitted": n, "seconds": round(time.monotonic() - t0, 2), **truth.summary()}
    if not a.out:
        result["sent"] = writer.sent  # this run's: a resumed run skips what earlier runs sent
    if a.truth:
        tmp = a.truth.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(a.truth)
    if not a.progress:
        bulky = ("net_by_model_stage", "expected_scores", "expected_cookbook", "expected_markov")  # --truth has them
        print(json.dumps({k: v for k, v in result.items() if k not in bulky}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
