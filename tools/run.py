"""``gmv run --events FILE.jsonl``: produce a file, run the pipeline until all of it is flushed.

Each line is stamped with ``gmv-src: file:<sha256[:16]>:<line>``: running the
same file again is recognised as a replay of the same messages (not as
duplicates), re-derives identical rows, and so changes no total.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gmv.schemas.errors import NotFound, RunFailed
from gmv.streams.core.decode import OVERSIZE_HEADER, RAW_KEEP_BYTES, SRC_HEADER
from gmv.streams.settings import Settings
from gmv.streams.worker import GmvWorker
from gmv.tools.embedded import free_port
from gmv.tools.launch import Launch, LaunchOptions


@dataclass
class RunReport:
    lines: int
    seconds: float
    counts: dict[str, int]
    per_topic: dict[str, dict[str, int]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # business alert changes this run emitted

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "seconds": round(self.seconds, 3), **self.counts, "per_topic": self.per_topic,
                "alerts": self.alerts}


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def route_line(line: bytes, settings: Settings) -> tuple[str, bytes | None]:
    """(topic, key) for a line; lines that cannot be routed go to the unrouted topic to be dead-lettered."""
    by_type = {et: topic for topic, et in settings.source_topics.items()}
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        return settings.unrouted_topic, None
    first = doc[0] if isinstance(doc, list) and doc else doc
    if not isinstance(first, dict):
        return settings.unrouted_topic, None
    topic = by_type.get(first.get("event_type"))  # type: ignore[arg-type]
    if topic is None:
        return settings.unrouted_topic, None
    key = first.get("user_id") or first.get("live_id")
    # errors="replace": a lone surrogate (\ud800) is valid JSON text but not UTF-8; the event is
    # dead-lettered by the worker, the key only has to route it.
    return topic, key.encode("utf-8", "replace") if isinstance(key, str) and key else None


def produce_file(settings: Settings, bootstrap: str, path: Path, progress: bool = True,
                 starts: dict | None = None) -> tuple[int, dict]:
    """Produce every non-blank line; returns (lines, end offsets per (topic, partition) to consume).

    ``starts`` (if given) receives the committed offset each of those partitions resumes from.
    """
    starts = starts if starts is not None else {}
    from kafka import KafkaProducer, TopicPartition

    digest = file_digest(path)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024,
                             max_request_size=4 * settings.max_message_bytes + 1024, acks="all",
                             compression_type=settings.producer_compression)
    n = 0
    failures: list[str] = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            headers = [(SRC_HEADER, f"file:{digest}:{lineno}".encode())]
            if len(line) > settings.max_message_bytes:
                # The broker would refuse it (and the producer batch around it): send the
                # head, marked, so the worker dead-letters it as too large, with its size.
                topic, key = settings.unrouted_topic, None
                headers.append((OVERSIZE_HEADER, str(len(line)).encode()))
                line = line[:RAW_KEEP_BYTES]
            else:
                topic, key = route_line(line, settings)
            fut = producer.send(topic, key=key, value=line, headers=headers)
            fut.add_errback(lambda e, ln=lineno: failures.append(f"line {ln}: {e}"))
            n += 1
            if progress and n % 50_000 == 0:
                print(f"  produced {n} lines", file=sys.stderr, flush=True)
    producer.flush()
    producer.close()
    if failures:
        raise RunFailed(f"{len(failures)} lines could not be produced (first: {failures[0]}); "
                           "check the broker's message size limit")
    from kafka import KafkaConsumer

    # A consumer with the group id but no subscription reads the group's
    # committed offsets without joining (and so without a rebalance).
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=settings.app_id, enable_auto_commit=False)
    try:
        topics = [*settings.source_topics, settings.unrouted_topic]
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        ends = {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(tps).items()}
        committed = {(tp.topic, tp.partition): consumer.committed(tp) or 0 for tp in tps}
    finally:
        consumer.close()
    # Only partitions with something not yet committed need to be waited for.
    todo = {tp: end for tp, end in ends.items() if end > max(committed.get(tp, 0), 0)}
    starts.update({tp: max(committed.get(tp, 0), 0) for tp in todo})
    return n, todo


async def run_file(settings: Settings, path: Path, progress: bool = True) -> RunReport:
    if not path.is_file():
        raise NotFound(f"no such events file: {path}")
    t0 = time.monotonic()
    # A replay: business rules only (it is behind the wall clock by design).
    launch = Launch(settings, LaunchOptions(web_port=free_port(), attribute_at_end=True, pipeline_rules=False))
    try:
        settings = launch.open()
        starts: dict = {}
        lines, targets = produce_file(settings, launch.bootstrap, path, progress, starts)
        worker = await launch.start()
        assert launch.task is not None
        await _wait_consumed(worker, launch.task, targets, lines, progress)
        # Events a producer keyed by something other than user_id were forwarded to their
        # user's partition while the file was consumed: wait for those too.
        rekeyed = await worker.end_offsets(settings.rekeyed_topic)
        await _wait_consumed(worker, launch.task, {tp: end for tp, end in rekeyed.items()
                                                   if end > worker.offsets.stored.get(tp, 0)}, lines, progress)
        await worker.drain()
        evaluator = launch.evaluator
        if evaluator is not None and not await evaluator.finish():
            print("gmv run: some alert receivers did not take every alert (see the warnings above); "
                  "gmv.alerts holds them", file=sys.stderr, flush=True)
        skipped = {tp: (end - starts[tp]) - worker.stats.seen_msgs.get(tp, 0) for tp, end in targets.items()
                   if (end - starts[tp]) > worker.stats.seen_msgs.get(tp, 0)}
        if skipped:
            # Never print counts that silently miss input: fail loudly instead.
            raise RunFailed(
                f"the consumer skipped {sum(skipped.values())} messages "
                f"({', '.join(f'{t}[{p}]: {n}' for (t, p), n in sorted(skipped.items()))}); "
                "the counts of this run are incomplete; run it again (a replay changes no total)"
            )
        status = worker.status(extra=False)
        alerts = [a.to_json() for a in evaluator.fired] if evaluator is not None else []
        return RunReport(lines, time.monotonic() - t0, status.summary(), status.per_topic(), alerts)
    finally:
        await launch.stop()
        launch.close()


async def _wait_consumed(worker: GmvWorker, task: asyncio.Task, targets: dict, lines: int, progress: bool) -> None:
    last = 0.0
    while True:
        if all(worker.offsets.stored.get(tp, 0) >= end for tp, end in targets.items()):
            return
        if task.done() or worker.host.should_stop or worker.crashed:
            raise RunFailed(f"the worker stopped before consuming everything: {worker.crash_reason()}")
        now = time.monotonic()
        if progress and now - last >= 2.0:
            c = worker.status(extra=False).summary()
            print(f"  consumed {c['received']} events (accepted {c['accepted']}, duplicates {c['duplicates']}, "
                  f"dead-lettered {c['dead_lettered']}) of {lines} lines", file=sys.stderr, flush=True)
            last = now
        await asyncio.sleep(0.1)
