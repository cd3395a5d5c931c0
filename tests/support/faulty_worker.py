"""A ``gmv worker`` process whose ClickHouse fails or stalls on demand (``tests.support.faulty_clickhouse``),
and what the consumer group says of it: its committed offsets, its members."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kafka.admin import KafkaAdminClient

from gmv.tools.embedded import free_port
from tests.support.waiting import wait_for, worker_stats

ROOT = Path(__file__).resolve().parents[2]


def start_faulty_worker(env: dict[str, str], fault: Path) -> tuple[subprocess.Popen, int]:
    """A ``gmv worker`` whose ClickHouse writes fail while ``fault`` exists (and whose refresh statements
    are slow while ``fault.slow`` does), once it owns every partition; and its web port."""
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.support.faulty_clickhouse", str(fault), "worker", "--web-port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: (worker_stats(port) or {}).get("partitions") == [0, 1, 2, 3], 90, "the worker to own its partitions")
    except BaseException:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        raise
    return worker, port


def committed(env: dict[str, str]) -> int:
    """The offsets the worker's consumer group has committed, summed over its partitions."""
    admin = KafkaAdminClient(bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"])
    try:
        offsets = admin.list_group_offsets(env["GMV_APP_ID"]).get(env["GMV_APP_ID"], {})
    finally:
        admin.close()
    return sum(max(m.offset, 0) for m in offsets.values())


def group_members(env: dict[str, str]) -> set[str]:
    """The member ids of the worker's consumer group, as its coordinator describes it."""
    admin = KafkaAdminClient(bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"])
    try:
        group = admin.describe_groups([env["GMV_APP_ID"]])[env["GMV_APP_ID"]]
    finally:
        admin.close()
    return {m["member_id"] for m in group["members"]}
