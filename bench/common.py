"""What every benchmark phase shares: the embedded pair, the data, produce, CPU readings."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from gmv.schemas.events import TOPIC_NAMES
from gmv.streams.core.routing import partition_for_key
from gmv.tools.simulator import SCENARIOS, World

PARTITIONS = 4



def emit(figure: str, **fields: Any) -> dict[str, Any]:
    """One JSON line per figure, with the machine and versions."""
    line = {"figure": figure, **fields, "cores": os.cpu_count(), "python": platform.python_version(),
            "versions": {p: _v(p) for p in ("faust-streaming", "aiokafka", "clickhouse-connect", "chdb",
                                             "pydantic", "noida-db")}}
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return line


def _v(pkg: str) -> str:
    try:
        return version(pkg)
    except Exception:
        return "?"


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux), or None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Dataset:
    """N simulator messages (valid events, with the simulator's duplicates and malformed ones)."""

    messages: list[tuple[str, bytes | None, bytes]]  # (event_type, key, value)

    @classmethod
    def generate(cls, n: int, seed: int = 11) -> Dataset:
        world = World(SCENARIOS["mixed"].scaled(4), seed, datetime(2026, 11, 1, 16, 0, tzinfo=UTC))
        out: list[tuple[str, bytes | None, bytes]] = []
        for m in world.messages():
            if len(out) >= n:
                break
            out.append((m.topic_type, m.key.encode() if m.key else None, m.value))
        return cls(out)

    def batched(self, per_message: int = 1000) -> list[tuple[str, int, bytes]]:
        """Producer batches (SPEC §2): JSON arrays of up to ``per_message`` events of one topic, grouped
        by the partition their key maps to, so each array lands where its users' state lives."""
        groups: dict[tuple[str, int], list[bytes]] = {}
        out: list[tuple[str, int, bytes]] = []
        for et, key, value in self.messages:
            if key is None and et != "live_room":
                continue  # a malformed message: one bad JSON text would void its whole array
            p = partition_for_key(key.decode(), PARTITIONS) if key else 0
            g = groups.setdefault((et, p), [])
            g.append(value)
            if len(g) == per_message:
                out.append((et, p, b"[" + b",".join(g) + b"]"))
                g.clear()
        for (et, p), g in groups.items():
            if g:
                out.append((et, p, b"[" + b",".join(g) + b"]"))
        return out


def produce(bootstrap: str, prefix: str, data: Dataset, batched: bool = False) -> int:
    """Pre-produce the dataset to ``<prefix>views`` etc.; returns messages sent."""
    from kafka import KafkaProducer

    # lz4, as a production JSON producer would (and the pipeline's own default): the embedded
    # broker's background upkeep costs CPU in proportion to the bytes it holds.
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1024 * 1024,
                             max_request_size=4 * 1024 * 1024, acks="all", compression_type="lz4")
    n = 0
    if batched:
        for et, p, value in data.batched():
            producer.send(f"{prefix}{TOPIC_NAMES[et]}", value=value, partition=p)
            n += 1
    else:
        for et, key, value in data.messages:
            producer.send(f"{prefix}{TOPIC_NAMES[et]}", key=key, value=value)
            n += 1
    producer.flush()
    producer.close()
    return n

