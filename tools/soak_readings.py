"""What the soak benchmark (``python -m bench.soak``) reads off a running worker, parsed (pure but for reading
/proc and a folder).

- ``vmrss_bytes``: a ``/proc/<pid>/status`` text's resident set;
- ``restore_lines``: the worker's restore log line, in both forms (the state store's and today's journal's);
- ``state_figures``: the ``gmv_state_*`` metrics from a ``/metrics`` text, ``None`` for each one absent
  (the worker before the state store has none);
- ``tree_rss_bytes`` and ``du_bytes``: a process tree's RSS and a folder's disk use, read from the system;
- ``worker_env``: the ``--worker-env`` settings; ``summarise``: the soak's lines in a few figures.

Here rather than in ``bench/`` so that the unit tests can check it (tests never import the benchmarks).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

_VMRSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB\s*$", re.M)
_NUMBER = r"(\d[\d,]*)"
# The state store's line (gmv.streams.recovery): "restored state of partitions [0, 1]: 1234 changelog records
# read, 5678 live, in 0.52s"; the journal worker's: "recovered state of partitions [0, 1] (1234 journal records)
# in 0.52s".
_RESTORED = re.compile(r"restored state of partitions \[([\d, ]*)\]:\s*" + _NUMBER
                       + r" changelog records read(?:, \d[\d,]* live)?,? in ([\d.]+)s")
_RECOVERED = re.compile(r"recovered state of partitions \[([\d, ]*)\] \(" + _NUMBER
                        + r" journal records\) in ([\d.]+)s")
STATE_DOMAINS = ("dedup", "touches", "orders", "refunds", "reviews", "conversations", "pending")


def vmrss_bytes(status_text: str) -> int | None:
    """The ``VmRSS`` of a ``/proc/<pid>/status`` text in bytes (None for a process without one: a zombie)."""
    m = _VMRSS.search(status_text)
    return int(m.group(1)) * 1024 if m else None


@dataclass(frozen=True)
class RestoreLine:
    partitions: tuple[int, ...]
    records: int
    seconds: float
    form: str  # "changelog" (the state store's line) or "journal" (the worker before it)


def restore_lines(log_text: str) -> list[RestoreLine]:
    """Every restore line in a worker's log, in order (one per assignment that brought partitions)."""
    found: list[tuple[int, RestoreLine]] = []
    for pattern, form in ((_RESTORED, "changelog"), (_RECOVERED, "journal")):
        for m in pattern.finditer(log_text):
            parts = tuple(int(p) for p in m.group(1).replace(" ", "").split(",") if p)
            found.append((m.start(), RestoreLine(parts, int(m.group(2).replace(",", "")), float(m.group(3)), form)))
    return [line for _, line in sorted(found, key=lambda f: f[0])]


def state_figures(metrics_text: str) -> dict[str, Any]:
    """The state layer's gauges from a Prometheus text: keys per domain and in all, bytes in memory and on
    disk, cache hit ratio, restore records live and read, restore seconds; each None when absent."""
    keys: dict[str, float] = {}
    single: dict[str, float] = {}
    restore: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == "gmv_state_keys":
                keys[s.labels.get("domain", "")] = keys.get(s.labels.get("domain", ""), 0) + s.value
            elif s.name == "gmv_state_restore_records":
                restore[s.labels.get("source", "")] = restore.get(s.labels.get("source", ""), 0) + s.value
            elif s.name in ("gmv_state_memory_bytes", "gmv_state_disk_bytes", "gmv_state_cache_hit_ratio",
                            "gmv_state_restore_seconds"):
                single[s.name] = single.get(s.name, 0) + s.value
    total = int(sum(keys.values())) if keys else None
    disk = single.get("gmv_state_disk_bytes")
    return {
        "state_keys": total,
        "state_keys_by_domain": {d: int(v) for d, v in sorted(keys.items())} if keys else None,
        "state_memory_bytes": _int(single.get("gmv_state_memory_bytes")),
        "state_disk_bytes": _int(disk),
        "bytes_per_key": round(disk / total, 1) if disk is not None and total else None,
        "cache_hit_ratio": single.get("gmv_state_cache_hit_ratio"),
        "restore_records_live": _int(restore.get("live")),
        "restore_records_read": _int(restore.get("read")),
        "restore_seconds": single.get("gmv_state_restore_seconds"),
    }


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


def parent_pids(proc: Path = Path("/proc")) -> dict[int, int]:
    """pid -> parent pid of every process now (Linux)."""
    out: dict[int, int] = {}
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            out[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return out


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def tree_rss_bytes(root: int) -> int | None:
    """VmRSS of a process and its children summed (None if the process is gone)."""
    total, seen = 0, False
    for pid in descendants(root, parent_pids()):
        try:
            rss = vmrss_bytes(Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
        if rss is not None:
            total, seen = total + rss, True
    return total if seen else None


def du_bytes(path: Path) -> int | None:
    """Disk blocks used under ``path``, as ``du`` counts them (None when it does not exist)."""
    if not path.exists():
        return None
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue  # a part merged away meanwhile
    return total

# What the soak sets itself: where the worker runs and what it is asked through (topics, database, ports).
OWN_SETTINGS = frozenset({"GMV_DATA_DIR", "GMV_KAFKA_BOOTSTRAP_SERVERS", "GMV_CLICKHOUSE_DSN", "GMV_WEB_PORT",
                          "GMV_METRICS_PORT", "GMV_WEB_TOKEN", "GMV_APP_ID", "GMV_WORKER_INSTANCE_ID", "GMV_PARTITIONS",
                          "GMV_TOPIC_PREFIX", "GMV_CLICKHOUSE_DATABASE", "GMV_SINK_MODE", "GMV_LOG_LEVEL",
                          "GMV_STATE_CACHE_MB", "GMV_WEB_HOST"})


def worker_env(pairs: list[str]) -> dict[str, str]:
    """``--worker-env`` values as settings; ValueError (one line) for one that is not ``GMV_NAME=VALUE`` or
    that the soak sets itself."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.startswith("GMV_"):
            raise ValueError(f"--worker-env {pair!r}: give GMV_NAME=VALUE, e.g. GMV_LOOKBACK=5m")
        if name in OWN_SETTINGS:
            raise ValueError(f"--worker-env {name}: the soak sets it itself"
                             + (" (use --cache-mb)" if name == "GMV_STATE_CACHE_MB" else ""))
        out[name] = value
    return out


def summarise(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The soak in a few figures: RSS at the first and last step and its growth per million events between
    them, the last bytes per retained key, and each restart's seconds."""
    steps = [ln for ln in lines if ln["figure"] == "soak_step"]
    restarts = {ln["restart"]: ln for ln in lines if ln["figure"] == "soak_restart"}
    first, last = (steps[0], steps[-1]) if steps else ({}, {})
    grown = None
    if len(steps) > 1 and first["worker_rss_mb"] and last["worker_rss_mb"]:
        grown = round((last["worker_rss_mb"] - first["worker_rss_mb"])
                      / ((last["events_consumed"] - first["events_consumed"]) / 1e6), 1)
    return {"events": last.get("events_consumed"), "rss_mb_first_step": first.get("worker_rss_mb"),
            "rss_mb_last_step": last.get("worker_rss_mb"), "rss_mb_per_million_events": grown,
            "events_per_s_overall": last.get("events_per_s_overall"), "bytes_per_key": last.get("bytes_per_key"),
            "restart_same_dir_s": restarts.get("same_data_dir", {}).get("spawn_to_new_event_stored_s"),
            "restore_empty_store_s": restarts.get("empty_local_store", {}).get("spawn_to_new_event_stored_s")}
